"""Which stored vectors a search may return: all of them, all but an HNSW's tombstones, or the ids a filter allows.

A filter that allows few ids is answered exactly from their vectors: graph and IVF searches lose recall when the
filter is tight (most of what they visit is filtered out).
"""

from __future__ import annotations

import numpy as np

from .faisslib import load_faiss, unwrap
from .idsets import as_ids, in_sorted

#: Filtered searches over at most max(EXACT_FILTER_MIN, ntotal * EXACT_FILTER_FRACTION) allowed ids are
#: answered exactly from the allowed vectors.
EXACT_FILTER_MIN = 4096
EXACT_FILTER_FRACTION = 0.05


def selector(index, live_ids: np.ndarray, tombstones: np.ndarray, allowed_ids, keep: list):
    """What restricts a search of ``index``: None (nothing), a FAISS IDSelector (the allowed ids, or all but the
    tombstones), the allowed live ids themselves (an int64 array) when there are few enough to answer exactly with
    :func:`exact_search`, or False when none of them is live. ``keep`` collects what FAISS only points to."""
    faiss = load_faiss()
    if allowed_ids is not None:
        allowed = np.unique(as_ids(allowed_ids))
        allowed = allowed[in_sorted(allowed, live_ids)]
        if allowed.size == 0:
            return False
        exact_by_construction = isinstance(unwrap(index), faiss.IndexFlat)
        tight = allowed.size <= max(EXACT_FILTER_MIN, EXACT_FILTER_FRACTION * live_ids.size)
        if tight and not exact_by_construction:
            return allowed
        keep.append(allowed)
        return faiss.IDSelectorBatch(allowed.size, faiss.swig_ptr(allowed))
    if tombstones.size:
        inner = faiss.IDSelectorBatch(tombstones.size, faiss.swig_ptr(tombstones))
        keep.append(inner)
        return faiss.IDSelectorNot(inner)
    return None


def exact_search(q: np.ndarray, k: int, allowed: np.ndarray, vectors: np.ndarray):
    """Top-``k`` of the normalised queries ``q`` among ``allowed`` ids (``vectors``: theirs, in that order), by
    exact inner product: (scores float32 [nq, k], ids int64 [nq, k]) padded with -inf / -1."""
    faiss = load_faiss()
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    kk = min(k, allowed.size)
    d, pos = faiss.knn(q, vecs, kk, metric=faiss.METRIC_INNER_PRODUCT)
    scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
    labels = np.full((q.shape[0], k), -1, dtype=np.int64)
    scores[:, :kk] = d
    labels[:, :kk] = np.where(pos >= 0, allowed[np.clip(pos, 0, None)], -1)
    return scores, labels
