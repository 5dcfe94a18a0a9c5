"""Searching a store: queries embedded per target space, fused or separate, one ranked list of files per target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from xsearch.errors import UsageError
from xsearch.fusion import FUSIONS, fuse_ranked, fuse_vectors
from xsearch.query import embed_query
from xsearch.types import Filters, Hit, Query

DEFAULT_K = 10
#: Targets searched through several tracks (indexes), merged per file: a video's pictures and its sound.
TRACKS_OF = {"video": ("video", "soundtrack")}
MATCHED = {"video": "picture", "soundtrack": "sound"}
#: Modalities whose offsets are window starts in seconds (hits get an ``end``).
WINDOWED = ("audio", "video", "soundtrack")


@dataclass
class SearchRequest:
    queries: list[Query]
    targets: list[str]
    k: int | None = None  # None: DEFAULT_K, quietly fewer on a small collection
    weights: list[float] = field(default_factory=list)
    fusion: str = "mean"
    threshold: float | None = None
    filters: Filters = field(default_factory=Filters)
    params: dict = field(default_factory=dict)  # nprobe / efSearch
    exclude_paths: tuple[str, ...] = ()


def run_search(store, encoder, req: SearchRequest) -> dict[str, list[Hit]]:
    """Search every target modality; returns {target: hits} (at most k files each, best first)."""
    if not req.queries:
        raise UsageError("no query: give a text, an image file or an audio file", code="query.none")
    req = replace(req, k=check_k(store, req.targets, req.k))
    if req.fusion not in FUSIONS:
        raise UsageError(f"unknown fusion {req.fusion!r}; choose {', '.join(FUSIONS)}", code="usage.bad_fusion",
                         fusion=req.fusion, choices=", ".join(FUSIONS))
    weights = req.weights or [1.0] * len(req.queries)
    if len(weights) != len(req.queries):
        raise UsageError(f"{len(weights)} weight(s) for {len(req.queries)} queries", code="usage.weights_count",
                         given=len(weights), queries=len(req.queries))
    by_space: dict[str, np.ndarray] = {}
    results = {}
    for target in req.targets:
        found = []
        for track in TRACKS_OF.get(target, (target,)):
            if track not in store.modalities:
                continue
            space = encoder.index_space(track)
            if space not in by_space:
                by_space[space] = np.stack([embed_query(encoder, q, space) for q in req.queries])
            found.append((track, search_vectors(store, track, by_space[space], weights, req)))
        hits = merge_tracks(target, found, req.k) if target in TRACKS_OF else (found[0][1] if found else [])
        results[target] = add_spans(hits, getattr(encoder, "audio_window_s", 0) or 0)
    return results


def merge_tracks(target: str, found: list[tuple[str, list[Hit]]], k: int) -> list[Hit]:
    """One list of files from several tracks: each file keeps its best moment, saying which track matched."""
    best: dict[str, Hit] = {}
    for track, hits in found:
        for h in hits:
            if h.path not in best or h.score > best[h.path].score:
                best[h.path] = replace(h, modality=target, matched=MATCHED.get(track))
    ranked = sorted(best.values(), key=lambda h: -h.score)[:k]
    return [replace(h, rank=rank) for rank, h in enumerate(ranked, 1)]


def add_spans(hits: list[Hit], window_s: float) -> list[Hit]:
    """Windowed hits get where their window ends (start + window, within the file's duration)."""
    if window_s <= 0:
        return hits
    for h in hits:
        if h.modality in WINDOWED:
            end = h.offset + window_s
            h.end = round(min(end, h.duration) if h.duration else end, 3)
    return hits


def search_vectors(store, target: str, vectors: np.ndarray, weights: Sequence[float],
                   req: SearchRequest) -> list[Hit]:
    """Best files of ``target`` for query vectors combined by ``req.fusion`` (feature or decision level)."""
    kwargs = dict(filters=req.filters, exclude_paths=req.exclude_paths, threshold=req.threshold,
                  params=req.params or None)
    if req.fusion == "mean" or len(vectors) == 1:
        return store.search_files(target, fuse_vectors(vectors, weights)[None, :], req.k, **kwargs)[0]
    per_query = store.search_files(target, vectors, req.k, **kwargs)
    by_item = {h.item_id: h for hits in per_query for h in hits}
    merged = fuse_ranked([[(h.item_id, h.score) for h in hits] for hits in per_query], weights, req.fusion, req.k)
    out = []
    for rank, (item, score) in enumerate(merged, 1):
        hit = replace(by_item[item], rank=rank, score=float(score))
        out.append(hit)
    return out


def check_k(store, targets: Sequence[str], k: int | None) -> int:
    """The k to use: ``None`` means DEFAULT_K; an explicit k must be at least 1 and no larger than the most
    files any target modality holds."""
    if k is None:
        return DEFAULT_K
    if k <= 0:
        raise UsageError(f"k must be at least 1, not {k}", code="usage.bad_k", k=k)
    n, target = max((store.file_count(t), t) for t in targets)
    if k > n:
        raise UsageError(f"k={k} is larger than the collection: it holds {n} {target} file(s)",
                         code="usage.k_too_large", k=k, n=n, modality=target)
    return k


def check_targets(store, targets: Sequence[str], explicit: bool) -> list[str]:
    """Targets that have items; an explicitly named empty target is an error."""
    usable = [t for t in targets if t in store.modalities and store.file_count(t) > 0]
    missing = [t for t in targets if t not in usable]
    if explicit and missing:
        raise UsageError(f"the collection has no {missing[0]} items to search", code="collection.no_items",
                         modality=missing[0])
    if not usable:
        raise UsageError("the collection is empty", code="collection.empty")
    return usable
