"""Small measuring helpers: timers, percentiles, recall, log-log slopes."""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np


@contextmanager
def timer(out: dict, key: str):
    """Store the wall time of the block (seconds) in ``out[key]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        out[key] = time.perf_counter() - t0


def percentile_ms(seconds: list[float], q: float) -> float:
    """The ``q``-th percentile of durations given in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(seconds), q) * 1000.0)


def recall_with_ties(found: np.ndarray, truth: np.ndarray, base: np.ndarray, queries: np.ndarray,
                     eps: float = 1e-5) -> float:
    """Recall@k where a found id counts when its exact score reaches the k-th true score (less ``eps``), as
    ann-benchmarks counts it: with duplicate vectors (real collections have them) the true top-k is one of
    several equally right answers, and id recall would penalise the others."""
    k = truth.shape[1]
    kth = np.einsum("ij,ij->i", queries, base[truth[:, -1]])
    hits = 0
    for row in range(found.shape[0]):
        ids = np.unique(found[row][found[row] >= 0])
        if ids.size:
            hits += min(k, int(np.sum(base[ids] @ queries[row] >= kth[row] - eps)))
    return hits / (found.shape[0] * k)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row's true top-k that ``found`` contains (ids; -1 never matches)."""
    k = truth.shape[1]
    hits = [np.intersect1d(f[f >= 0], t).size for f, t in zip(found, truth)]
    return float(np.mean(hits) / k)


def loglog_slope(xs, ys) -> float | None:
    """Least-squares slope of log(y) against log(x): the exponent b in y ~ x^b (None with < 2 usable points)."""
    pts = [(x, y) for x, y in zip(xs, ys) if x and y and x > 0 and y > 0]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return None
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


def ratio(a, b) -> float | None:
    """a / b, or None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return float(a) / float(b)
