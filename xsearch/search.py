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
        space = encoder.index_space(target)
        if space not in by_space:
            by_space[space] = np.stack([embed_query(encoder, q, space) for q in req.queries])
        results[target] = search_vectors(store, target, by_space[space], weights, req)
    return results


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
