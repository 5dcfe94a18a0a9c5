"""Sorted int64 id arrays: how the vector index keeps its live ids and an HNSW's tombstones."""

from __future__ import annotations

import numpy as np


def as_ids(ids) -> np.ndarray:
    """``ids`` as a flat, C-contiguous int64 array."""
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).ravel())


def in_sorted(values: np.ndarray, sorted_arr: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``values`` are in the sorted array ``sorted_arr``."""
    if sorted_arr.size == 0 or values.size == 0:
        return np.zeros(values.shape, dtype=bool)
    pos = np.searchsorted(sorted_arr, values)
    pos[pos == sorted_arr.size] = 0
    return sorted_arr[pos] == values


def merge_sorted(a: np.ndarray, b_unique: np.ndarray) -> np.ndarray:
    """Insert sorted-unique ``b_unique`` (disjoint from ``a``) into sorted ``a``."""
    if b_unique.size == 0:
        return a
    return np.insert(a, np.searchsorted(a, b_unique), b_unique)
