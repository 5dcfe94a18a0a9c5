"""Searching a store: queries embedded per target space, fused or separate, one ranked list of files per target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from xsearch.core.errors import UsageError
from xsearch.core.types import Filters, Hit, Query
from xsearch.engine import hybrid
from xsearch.engine.checks import check_fusion, check_k_fits
from xsearch.engine.fusion import FUSIONS, HYBRID_DEPTH, RRF_K, fuse_hybrid, fuse_ranked, fuse_vectors
from xsearch.engine.query import embed_query
from xsearch.media import modalities

DEFAULT_K = 10
#: With re-ranking, this many candidates per target (at least k) are read from the index and re-scored.
RERANK_DEPTH = 50


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
    reranker: object = None  # a loaded xsearch.encoders.reranker.Reranker: re-score the best candidates with it
    mode: str | None = None  # hybrid | vector | keyword; None: hybrid where a keyword index exists (engine.hybrid)


def run_search(store, encoder, req: SearchRequest) -> dict[str, list[Hit]]:
    """Search every target modality; returns {target: hits} (at most k files each, best first). ``req`` comes
    from the session, its queries, k and weights checked there (xsearch.engine.checks)."""
    req = replace(req, k=k_for(store, req.targets, req.k))
    check_fusion(req.fusion, FUSIONS)
    text = " ".join(q.value for q in req.queries if q.modality == "text")
    mode = hybrid.resolve_mode(store, req.mode, text, len(req.queries))
    weights = req.weights or [1.0] * len(req.queries)
    by_space: dict[str, np.ndarray] = {}
    results = {}
    first = req  # the first stage: with re-ranking, max(k, RERANK_DEPTH) candidates (as many as there are)
    if req.reranker is not None:
        most = max(store.file_count(t) for t in req.targets)
        first = replace(req, k=min(max(req.k, RERANK_DEPTH), most) if most else req.k)
    elif mode == "hybrid":
        first = replace(req, k=hybrid.depth(req.k))
    for target in req.targets:
        if mode == "keyword":
            results[target] = hybrid.keyword_hits(store, target, text, req.k, req)
            continue
        found = []
        for track in modalities.tracks_of(target):  # a video: its pictures and its sound, merged per file
            if track not in store.modalities:
                continue
            space = encoder.index_space(track)
            if space not in by_space:
                by_space[space] = np.stack([embed_query(encoder, q, space) for q in req.queries])
            found.append((track, search_vectors(store, track, by_space[space], weights, first)))
        hits = (merge_tracks(target, found, first.k) if modalities.multi_track(target)
                else (found[0][1] if found else []))
        if req.reranker is not None and hits:
            hits = rerank(store, req, target, by_space[encoder.index_space(target)], weights, hits)
        cosine = req.reranker is None and (req.fusion == "mean" or len(req.queries) == 1)
        if hits and cosine and not modalities.multi_track(target):
            from xsearch.engine import relevance

            query = fuse_vectors(by_space[encoder.index_space(target)], weights)
            hits = relevance.mark(store, target, query, hits, relevance.gap_for(store.model_spec))
        if mode == "hybrid":
            words = hybrid.keyword_hits(store, target, text, hybrid.depth(req.k), req)
            complete = {h.path for h in words if h.score >= hybrid.ALL_WORDS}
            hits = hybrid.fuse(hits, words, req.k, hybrid.n_words(text))
            hits = [replace(h, weak=False) if h.weak and h.path in complete else h for h in hits]  # holds every word
        results[target] = add_spans(hits, getattr(encoder, "audio_window_s", 0) or 0)
    return results


def rerank(store, req: SearchRequest, target: str, query_vectors: np.ndarray, weights: Sequence[float],
           hits: list[Hit]) -> list[Hit]:
    """Re-score candidate files with ``req.reranker`` (the query vectors against each file's stored items) and
    keep the best ``req.k``; ``score`` becomes the re-ranker's, ``retrieval_score`` keeps the index's. With
    ``hybrid`` fusion the re-ranker's ranking joins the reciprocal rank fusion instead (weight 1)."""
    rows = [store.file(h.path) for h in hits]
    items = store.file_items([r.id for r in rows if r is not None])
    tracks = modalities.tracks_of(target)
    candidates = []
    for row in rows:
        data = items.get(row.id, {}) if row is not None else {}
        candidates.append([(t, data[t][1]) for t in tracks if t in data and len(data[t][1])])
    queries = [(q.modality, v, w) for q, v, w in zip(req.queries, query_vectors, weights)]
    scores = req.reranker.score(queries, candidates)
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    if req.fusion == "hybrid" and len(req.queries) > 1:
        fused = {i: hits[i].score + 1.0 / (RRF_K + rank) for rank, i in enumerate(order, 1)}
        ranked = sorted(fused, key=lambda i: (-fused[i], i))[: req.k]
        return [replace(hits[i], rank=rank, score=float(fused[i]), retrieval_score=hits[i].score)
                for rank, i in enumerate(ranked, 1)]
    return [replace(hits[i], rank=rank, score=float(scores[i]), retrieval_score=hits[i].score)
            for rank, i in enumerate(order[: req.k], 1)]


def merge_tracks(target: str, found: list[tuple[str, list[Hit]]], k: int) -> list[Hit]:
    """One list of files from several tracks: each file keeps its best moment, saying which track matched."""
    best: dict[str, Hit] = {}
    for track, hits in found:
        for h in hits:
            if h.path not in best or h.score > best[h.path].score:
                best[h.path] = replace(h, modality=target, matched=modalities.track(track).matched or None)
    ranked = sorted(best.values(), key=lambda h: -h.score)[:k]
    return [replace(h, rank=rank) for rank, h in enumerate(ranked, 1)]


def add_spans(hits: list[Hit], window_s: float) -> list[Hit]:
    """Windowed hits get where their window ends (start + window, within the file's duration)."""
    if window_s <= 0:
        return hits
    for h in hits:
        if modalities.windowed(h.modality):
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
    if req.fusion == "hybrid":  # the mean vector's list and the per-query lists, merged by rank
        depth = max(req.k, HYBRID_DEPTH)
        lists = store.search_files(target, np.concatenate([fuse_vectors(vectors, weights)[None, :], vectors]),
                                   depth, **kwargs)
        by_path: dict[str, Hit] = {}
        for hits in lists:  # one hit per file (its best item for the mean vector, else for the first query)
            for h in hits:
                by_path.setdefault(h.path, h)
        merged = fuse_hybrid([h.path for h in lists[0]], [[h.path for h in hits] for hits in lists[1:]], weights,
                             req.k)
        return [replace(by_path[path], rank=rank, score=float(score)) for rank, (path, score) in enumerate(merged, 1)]
    per_query = store.search_files(target, vectors, req.k, **kwargs)
    by_item = {h.item_id: h for hits in per_query for h in hits}
    merged = fuse_ranked([[(h.item_id, h.score) for h in hits] for hits in per_query], weights, req.fusion, req.k)
    out = []
    for rank, (item, score) in enumerate(merged, 1):
        hit = replace(by_item[item], rank=rank, score=float(score))
        out.append(hit)
    return out


def k_for(store, targets: Sequence[str], k: int | None) -> int:
    """The k to use: ``None`` means DEFAULT_K; an explicit k (at least 1: xsearch.engine.checks.check_k) must be
    no larger than the most files any target modality holds."""
    if k is None:
        return DEFAULT_K
    n, target = max((store.file_count(t), t) for t in targets)
    return check_k_fits(k, n, target)


def usable_targets(store, targets: Sequence[str], explicit: bool) -> list[str]:
    """Targets that have items; an explicitly named empty target is an error."""
    usable = [t for t in targets if t in store.modalities and store.file_count(t) > 0]
    missing = [t for t in targets if t not in usable]
    if explicit and missing:
        raise UsageError(f"the collection has no {missing[0]} items to search", code="collection.no_items",
                         modality=missing[0])
    if not usable:
        raise UsageError("the collection is empty", code="collection.empty")
    return usable
