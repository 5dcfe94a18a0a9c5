"""Combining several queries: feature-level (one fused vector) or decision-level (merge ranked lists).

- ``mean`` (feature level): weighted mean of the query embeddings, renormalised. Negative weights subtract a
  concept ("dog" minus "grass"). Best when the queries describe one thing together.
- ``weighted`` (decision level): each query searched alone; an item's score is the weighted sum of its scores
  (missing = 0). Good when queries are different views whose scores are comparable.
- ``rrf`` (decision level): reciprocal rank fusion, Σ w / (60 + rank). Robust when score scales differ
  (e.g. text and audio queries); ignores score values.
- ``vote`` (decision level): items ranked by how many queries returned them in their top k (weighted), ties
  by best rank. For "must match most of my examples".
- ``hybrid`` (both levels): reciprocal rank fusion of the ``mean`` list (weight 1) with the per-query lists
  (weights w / Σ|w|, so together they count as much as the mean list), each list ``HYBRID_DEPTH`` deep; with
  re-ranking the re-ranker's list joins with weight 1 (xsearch.engine.search).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from xsearch.core.errors import UsageError

FUSIONS = ("mean", "weighted", "rrf", "vote", "hybrid")
RANKED_FUSIONS = ("weighted", "rrf", "vote")  # what fuse_ranked merges
RRF_K = 60
HYBRID_DEPTH = 50  # how deep each list of a hybrid fusion is read (at least k)


def fuse_vectors(vectors: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Weighted mean of unit query vectors ``[n, d]``, renormalised to unit length."""
    v = np.asarray(weights, dtype=np.float32)[:, None] * np.asarray(vectors, dtype=np.float32)
    fused = v.sum(0)
    norm = float(np.linalg.norm(fused))
    if norm < 1e-6:
        raise UsageError("the weighted queries cancel out; change the weights", code="usage.weights_cancel")
    return (fused / norm).astype(np.float32)


def fuse_ranked(lists: Sequence[Sequence[tuple[object, float]]], weights: Sequence[float], method: str,
                k: int) -> list[tuple[object, float]]:
    """Merge per-query ranked lists of ``(key, score)`` into one list of at most k ``(key, fused score)``."""
    if method not in RANKED_FUSIONS:
        raise UsageError(f"unknown fusion {method!r}; choose {', '.join(FUSIONS)}", code="usage.bad_fusion",
                         fusion=method, choices=", ".join(FUSIONS))
    fused: dict[object, float] = {}
    best_rank: dict[object, int] = {}
    for ranked, w in zip(lists, weights):
        for rank, (key, score) in enumerate(ranked, 1):
            if method == "weighted":
                contrib = w * float(score)
            elif method == "rrf":
                contrib = w / (RRF_K + rank)
            else:
                contrib = w
            fused[key] = fused.get(key, 0.0) + contrib
            best_rank[key] = min(best_rank.get(key, rank), rank)
    order = sorted(fused, key=lambda key: (-fused[key], best_rank[key]))
    return [(key, fused[key]) for key in order[:k]]


def fuse_hybrid(mean_list: Sequence[object], per_query: Sequence[Sequence[object]], weights: Sequence[float],
                k: int) -> list[tuple[object, float]]:
    """``hybrid``: RRF of the feature-level list (``mean_list``, weight 1) and the decision-level per-query lists
    (weight w / Σ|w| each); keys in ranked order in, at most k ``(key, score)`` out, best first."""
    total = sum(abs(float(w)) for w in weights) or 1.0
    lists = [[(key, 0.0) for key in mean_list]] + [[(key, 0.0) for key in ranked] for ranked in per_query]
    return fuse_ranked(lists, [1.0] + [float(w) / total for w in weights], "rrf", k)
