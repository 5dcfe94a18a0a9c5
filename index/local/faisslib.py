"""FAISS itself: importing it (with the OpenMP policy we need) and what we read from its index structures.

Nothing here holds state: these are small functions over a FAISS index (its innermost index, what its training
needs, which ids it stores, what it costs in memory) used by the local vector index (index/local/vectors.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys

import numpy as np

from ..factory import FASTSCAN_RESIDENT_FACTOR

#: At most this many queries run on one FAISS thread.
SINGLE_THREAD_QUERIES = 16


def load_faiss():
    """The faiss module, imported on first use (it is heavy)."""
    if "faiss" not in sys.modules:
        # FAISS's bundled OpenMP busy-waits between parallel regions; with other work on the cores that turns
        # milliseconds of PQ / k-means training into seconds (measured 0.02 s -> 3.6 s on 2 shared cores).
        # Threads sleep instead, unless the user chose a policy. Read once, when FAISS's OpenMP loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss

    return faiss


def unwrap(index):
    """The innermost index under IndexIDMap2 / IndexPreTransform wrappers (downcast)."""
    faiss = load_faiss()
    index = faiss.downcast_index(index)
    while True:
        if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
            index = faiss.downcast_index(index.index)
        else:
            return index


def is_hnsw(index) -> bool:
    """Whether the innermost index is an HNSW graph (which has no ``remove_ids`` and no GPU kind)."""
    return isinstance(unwrap(index), load_faiss().IndexHNSW)


def training_points_needed(index) -> int:
    """FAISS's own minimum: 39 points per centroid of the largest k-means the index runs."""
    faiss = load_faiss()
    centroids = 0
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        centroids = ivf.nlist
    inner = unwrap(index)
    pq = getattr(inner, "pq", None)
    if pq is not None:
        centroids = max(centroids, int(pq.ksub))
    if isinstance(faiss.downcast_index(index), faiss.IndexPreTransform):
        centroids = max(centroids, 256)  # OPQ / ITQ rotations train a 256-centroid PQ
    return 39 * centroids if centroids else 1000


def ivf_list_ids(ivf) -> tuple[np.ndarray, np.ndarray]:
    """(ids, list numbers) of every vector stored in an IVF's inverted lists, in list order (unsorted)."""
    faiss = load_faiss()
    lists = ivf.invlists
    ids, nos = [], []
    for list_no in range(ivf.nlist):
        size = lists.list_size(list_no)
        if size:
            ids.append(faiss.rev_swig_ptr(lists.get_ids(list_no), size).copy())
            nos.append(np.full(size, list_no, dtype=np.int64))
    if not ids:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(ids).astype(np.int64), np.concatenate(nos)


def stored_ids(index, *, id_map: bool) -> np.ndarray:
    """Every id physically stored in ``index``, sorted: from its IndexIDMap2 table (``id_map``), else from its IVF
    lists."""
    faiss = load_faiss()
    if id_map:
        return np.sort(faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64))
    return np.sort(ivf_list_ids(faiss.try_extract_index_ivf(index))[0])


def resident_bytes(index, *, dim: int, n_stored: int, refined: bool, fastscan: bool) -> float:
    """Estimated resident bytes of a CPU index holding ``n_stored`` vectors: codes, graph links, ids and their
    hash-map entries, centroids (a refined type's exact vectors are not counted: they are the caller's)."""
    faiss = load_faiss()
    total = 40 * n_stored  # ids + their hash-map entries
    ivf = faiss.try_extract_index_ivf(index)
    inner = unwrap(index)
    if ivf is not None:
        if refined:
            total = 16 * n_stored  # inverted-list ids + our sorted ids; no direct map
        total += n_stored * int(ivf.code_size) + ivf.nlist * dim * 4
        pq = getattr(inner, "pq", None)
        if pq is not None:
            total += int(pq.M) * int(pq.ksub) * int(pq.dsub) * 4
        if fastscan:
            total *= FASTSCAN_RESIDENT_FACTOR
        return total
    if isinstance(inner, faiss.IndexHNSW):
        hnsw = inner.hnsw
        storage = faiss.downcast_index(inner.storage)
        total += int(storage.code_size) * n_stored if hasattr(storage, "code_size") else 4 * dim * n_stored
        total += hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        return total
    code_size = getattr(inner, "code_size", 4 * dim)
    return total + int(code_size) * n_stored


@contextlib.contextmanager
def threads_for(n_queries: int):
    """Run a few queries on one OpenMP thread: waking the pool costs more than it saves (ms under load)."""
    faiss = load_faiss()
    if n_queries > SINGLE_THREAD_QUERIES:
        yield
        return
    # With the libgomp bundled in faiss-cpu, omp_set_num_threads sets only the calling thread's setting:
    # concurrent searches on other threads keep theirs, and restoring ``before`` is per-thread too.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def release_freed_heap() -> None:
    """Give the memory freed by a load back to the system (glibc only; elsewhere nothing to do).

    Reading an index interleaves short-lived read buffers with the index's own arrays in the C heap; glibc keeps
    the freed holes, so without this a loaded IVF-PQ index held about twice its size in RssAnon.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
