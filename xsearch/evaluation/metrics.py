"""Retrieval metrics: Recall@K, mAP and median rank, with their chance levels.

Recall@K here is the fraction of queries with at least one relevant gallery item in the top K (the CLIP /
open_clip ``get_clip_metrics`` convention). Median rank is the median, over queries, of the 1-based rank of the
first relevant item. Queries with no relevant item in the gallery are left out and counted.
"""

from __future__ import annotations

from math import lgamma
from typing import Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)


def relevance_from_labels(query_labels: Sequence, gallery_labels: Sequence) -> np.ndarray:
    """``relevant[i, j]`` is True when query i and gallery item j carry the same label."""
    q = np.asarray([str(x) for x in query_labels])
    g = np.asarray([str(x) for x in gallery_labels])
    return q[:, None] == g[None, :]


def ranks_from_ids(ranked_ids: np.ndarray, relevant_ids: Sequence[set]) -> list[np.ndarray]:
    """For each query, the 1-based positions of relevant ids within its ranked list (-1 ids are padding)."""
    out = []
    for row, rel in zip(ranked_ids, relevant_ids):
        out.append(np.array([i + 1 for i, x in enumerate(row) if x >= 0 and int(x) in rel], dtype=np.int64))
    return out


def metrics_from_positions(positions: Sequence[np.ndarray], n_relevant: Sequence[int],
                           ks: Sequence[int] = DEFAULT_KS) -> dict:
    """Metrics from each query's relevant positions (1-based, sorted) and its number of relevant items.

    A relevant item missing from a truncated ranked list counts as not retrieved (precision 0 for AP).
    """
    keep = [i for i, r in enumerate(n_relevant) if r > 0]
    out = {"queries": len(keep), "queries_without_relevant": len(n_relevant) - len(keep)}
    if not keep:
        return out
    first = np.array([positions[i][0] if len(positions[i]) else np.inf for i in keep])
    for k in ks:
        out[f"R@{k}"] = float(np.mean(first <= k))
    aps = []
    for i in keep:
        pos = np.sort(positions[i])
        aps.append(float(np.sum(np.arange(1, len(pos) + 1) / pos) / n_relevant[i]) if len(pos) else 0.0)
    out["mAP"] = float(np.mean(aps))
    out["median_rank"] = float(np.median(first))
    return out


def rank_metrics(scores: np.ndarray, relevant: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict:
    """Metrics for a full score matrix ``[queries, gallery]`` and a boolean relevance matrix of the same shape."""
    scores = np.asarray(scores)
    relevant = np.asarray(relevant, dtype=bool)
    order = np.argsort(-scores, axis=1, kind="stable")
    rel_sorted = np.take_along_axis(relevant, order, axis=1)
    positions = [np.flatnonzero(r) + 1 for r in rel_sorted]
    return metrics_from_positions(positions, relevant.sum(1).tolist(), ks)


def log_comb(n: int, k: int) -> float:
    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)


def p_first_within(n: int, r: int, k: int) -> float:
    """P(at least one of r relevant items is in the top k of a random ranking of n)."""
    if k >= n - r + 1:
        return 1.0
    return 1.0 - float(np.exp(log_comb(n - r, k) - log_comb(n, k)))


def chance_metrics(n_gallery: int, n_relevant: Sequence[int], ks: Sequence[int] = DEFAULT_KS) -> dict:
    """Expected metrics of a random ranking, given the gallery size and each query's number of relevant items."""
    rs = [int(r) for r in n_relevant if r > 0]
    if not rs:
        return {}
    n = int(n_gallery)
    out = {f"R@{k}": float(np.mean([p_first_within(n, r, k) for r in rs])) for k in ks}
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    # E[AP] of a random ranking (Bestgen 2015): (1/N) * (H_N + (r-1)/(N-1) * (N - H_N))
    out["mAP"] = float(np.mean([(harmonic + ((r - 1) / (n - 1) if n > 1 else 0.0) * (n - harmonic)) / n for r in rs]))
    medians = []
    for r in rs:
        t = 1
        while p_first_within(n, r, t) < 0.5:
            t += 1
        medians.append(t)
    out["median_rank"] = float(np.median(medians))
    return out
