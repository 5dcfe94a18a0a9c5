"""Searching a collection: fused or separate queries, one ranked list of files per target modality."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np

from xsearch.errors import UsageError
from xsearch.fusion import FUSIONS, fuse_ranked, fuse_vectors
from xsearch.query import Query, embed_query


@dataclass
class Hit:
    """One result: a file, its score, and where in it (audio window start in s, text passage index)."""

    rank: int
    score: float
    path: str
    modality: str
    offset: float
    item_id: int
    snippet: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    size: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Filters:
    """Catalog filters applied inside the vector search (FAISS ID selector)."""

    path_glob: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    min_size: int | None = None
    max_size: int | None = None
    since: object = None
    until: object = None

    def active(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


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


def run_search(collection, encoder, req: SearchRequest) -> dict[str, list[Hit]]:
    """Search every target modality; returns {target: hits} (at most k files each, best first)."""
    if not req.queries:
        raise UsageError("no query: give text, --image FILE or --audio FILE.")
    req = replace(req, k=check_k(collection, req.targets, req.k))
    if req.fusion not in FUSIONS:
        raise UsageError(f"unknown --fusion {req.fusion!r}; choose {', '.join(FUSIONS)}.")
    weights = req.weights or [1.0] * len(req.queries)
    if len(weights) != len(req.queries):
        raise UsageError(f"{len(weights)} weight(s) for {len(req.queries)} queries.")
    results = {}
    for target in req.targets:
        space = encoder.index_space(target)
        vectors = np.stack([embed_query(encoder, q, space) for q in req.queries])
        allowed = collection.catalog.filter_ids(target, **req.filters.active()) if req.filters.active() else None
        if req.fusion == "mean" or len(req.queries) == 1:
            hits = _search_files(collection, target, fuse_vectors(vectors, weights), req, allowed)
            ranked = [(h, h.score) for h in hits]
        else:
            per_query = [[(h.item_id, h) for h in _search_files(collection, target, v, req, allowed)] for v in vectors]
            by_item = {item: h for lst in per_query for item, h in lst}
            merged = fuse_ranked([[(item, h.score) for item, h in lst] for lst in per_query], weights, req.fusion,
                                 req.k)
            ranked = [(by_item[item], score) for item, score in merged]
        out = []
        for rank, (hit, score) in enumerate(ranked[: req.k], 1):
            hit.rank, hit.score = rank, float(score)
            out.append(hit)
        results[target] = out
    return results


def _search_files(collection, target: str, vector: np.ndarray, req: SearchRequest, allowed) -> list[Hit]:
    """Top-k *files* for one vector: items of the same file (audio windows, text passages) keep their best."""
    index = collection.index(target)
    total = index.ntotal if allowed is None else int(len(allowed))
    if total == 0:
        return []
    fetch = min(total, max(req.k * 4, req.k + 8))
    while True:
        scores, ids = collection.search(target, vector[None, :], fetch, allowed_ids=allowed, params=req.params or None)
        rows = collection.catalog.items(ids[0][ids[0] >= 0].tolist())
        hits, seen, below = [], set(), False
        for score, item_id in zip(scores[0], ids[0]):
            row = rows.get(int(item_id))
            if row is None or row.file_id in seen or row.path in req.exclude_paths:
                continue
            if req.threshold is not None and score < req.threshold:
                below = True
                break
            seen.add(row.file_id)
            hits.append(Hit(0, float(score), row.path, row.modality, float(row.offset), int(item_id), row.snippet,
                            row.width, row.height, row.duration, row.size))
        if len(hits) >= req.k or fetch >= total or below:
            return hits[: req.k]
        fetch = min(total, fetch * 4)


def item_count(collection, modality: str) -> int:
    return collection.catalog.counts().get(modality, {}).get("files", 0)


DEFAULT_K = 10


def check_k(collection, targets: Sequence[str], k: int | None) -> int:
    """The k to use: ``None`` means DEFAULT_K; an explicit k must be at least 1 and no larger than the most
    files any target modality holds."""
    if k is None:
        return DEFAULT_K
    if k <= 0:
        raise UsageError(f"-k must be at least 1, not {k}.")
    n, target = max((item_count(collection, t), t) for t in targets)
    if k > n:
        raise UsageError(f"-k {k} is larger than the collection: it holds {n} {target} file(s); use -k {n} or less.")
    return k


def check_targets(collection, targets: Sequence[str], explicit: bool) -> list[str]:
    """Targets that have items; an explicitly named empty target is an error."""
    usable = [t for t in targets if t in collection.modalities and item_count(collection, t) > 0]
    missing = [t for t in targets if t not in usable]
    if explicit and missing:
        raise UsageError(f"the collection has no {missing[0]} items to search; index some {missing[0]} files first.")
    if not usable:
        raise UsageError("the collection is empty; add files with `xsearch index <folder>`.")
    return usable
