"""VectorIndex: one FAISS index for one modality, addressed by int64 ids.

Vectors are L2-normalised on the way in (add and search), so the inner product FAISS computes is the
cosine similarity. Index types are named only by FAISS index-factory strings ("Flat", "HNSW32",
"IVF1024,Flat", "IVF4096,PQ32", ...).

How ids are kept, per index type:

- IVF-based types (anything ``faiss.try_extract_index_ivf`` finds) store our ids natively, with a hash-table
  direct map for ``reconstruct`` and ``remove``. They are deliberately not wrapped in ``IndexIDMap2``:
  ``IndexIDMap2.remove_ids`` compacts its id table while the IVF lists keep their old positions, so every
  search after a removal would return wrong ids (checked on faiss 1.15.1).
- Every other type is wrapped in ``faiss.IndexIDMap2``.

Training (IVF, PQ, OPQ, SQ): an untrained index first collects vectors in an exact staging index (a Flat
index with the same ids, searchable and saved like any other). When the staging index holds
``training_points_needed`` vectors (39 points per centroid of the largest k-means the type runs, FAISS's own
minimum), the index trains on a random sample of at most 256 points per centroid of the staged vectors, moves
every staged vector in, and adds directly from then on. ``train(sample)`` trains explicitly instead.

Removal: types with ``remove_ids`` (Flat, IVF, PQ, SQ) remove in place. HNSW has no ``remove_ids``: removed ids
become tombstones that searches skip (an IDSelector), and once tombstones exceed ``TOMBSTONE_COMPACT_FRACTION``
of the stored vectors the index is rebuilt from its own stored vectors (cost of a fresh build, O(n log n)
distance computations; re-adding a tombstoned id also compacts first).

Files written by ``save`` are one self-checking container: a header with a JSON description (factory, dim,
tombstones, and the modality when the caller names it), the FAISS index as ``faiss.write_index`` writes it,
and a CRC32 trailer. ``load`` checks the CRC before FAISS parses anything, so a damaged file is a clear
``CollectionError``, never a crash. ``load`` never follows a symbolic link and reads only regular files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from xsearch.errors import CollectionError, UsageError

from .atomic import atomic_write, collection_os_error, open_regular

#: Below this many vectors an exact Flat index is fast enough and needs no training.
FLAT_MAX_VECTORS = 50_000
#: Graph degree for the HNSW index choose_factory picks.
HNSW_M = 32
#: HNSW build / search breadth. efSearch=128 gives recall@10 >= 0.99 on the clustered tests and benchmark.
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
#: IVF lists probed by default: nlist / IVF_NPROBE_DIVISOR, clamped to [IVF_NPROBE_MIN, IVF_NPROBE_MAX].
IVF_NPROBE_DIVISOR = 8
IVF_NPROBE_MIN = 16
IVF_NPROBE_MAX = 256
#: HNSW: tombstoned share of stored vectors that triggers a rebuild.
TOMBSTONE_COMPACT_FRACTION = 0.10
#: Filtered searches over at most max(EXACT_FILTER_MIN, ntotal * EXACT_FILTER_FRACTION) allowed ids are
#: answered exactly from the allowed vectors: graph and IVF searches lose recall when the filter is tight.
EXACT_FILTER_MIN = 4096
EXACT_FILTER_FRACTION = 0.05

_MAGIC = b"XSVECIDX"
_TRAILER_MAGIC = b"XSVECEND"
_FILE_FORMAT = 1
_HEADER = struct.Struct("<8sII")  # magic, meta length, meta crc32
_TRAILER = struct.Struct("<QI8s")  # blob length, blob crc32, magic
_STAGING = "staging"  # layout of an untrained index collecting vectors in an exact Flat index
_IDMAP = "idmap"
_NATIVE_IVF = "ivf"
_CHUNK = 65536


def _faiss():
    if "faiss" not in sys.modules:
        # FAISS's bundled OpenMP busy-waits between parallel regions; with other work on the cores that turns
        # milliseconds of PQ / k-means training into seconds (measured 0.02 s -> 3.6 s on 2 shared cores).
        # Threads sleep instead, unless the user chose a policy. Read once, when FAISS's OpenMP loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss

    return faiss


# ----------------------------------------------------------------------------------------------------------
# Choosing an index type


def ivf_nlist(n: int) -> int:
    """IVF list count for ``n`` vectors: the power of two nearest 4·sqrt(n), at least 16."""
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))


def default_nprobe(nlist: int) -> int:
    """Lists probed by default for an IVF index with ``nlist`` lists (see IVF_NPROBE_*)."""
    return int(min(nlist, max(IVF_NPROBE_MIN, min(IVF_NPROBE_MAX, nlist // IVF_NPROBE_DIVISOR))))


def bytes_per_vector(factory: str, dim: int) -> float:
    """Rough resident bytes per stored vector for the factory strings choose_factory returns."""
    head = factory.split(",")
    id_cost = 8.0 + 32.0  # the id itself + its hash-map entry (IndexIDMap2 rev_map / IVF direct map)
    if head[0].startswith("HNSW"):
        m = int(head[0][4:] or 32)
        return 4.0 * dim + 2 * m * 4 * 1.05 + 16 + id_cost  # level-0 links dominate the graph
    if head[0].startswith("IVF") and len(head) > 1:
        code = head[1]
        if code.startswith("PQ"):
            m, _, bits = code[2:].partition("x")
            return int(m) * int(bits or 8) / 8.0 + id_cost
        if code.startswith("SQ"):
            return dim * int(code[2:] or 8) / 8.0 + id_cost
        return 4.0 * dim + id_cost
    return 4.0 * dim + id_cost


def choose_factory(n: int, dim: int, memory_budget_bytes: int | None = None) -> str:
    """Pick a FAISS factory string for ``n`` vectors of ``dim`` dimensions.

    - fewer than FLAT_MAX_VECTORS: "Flat" (exact, no training; the budget is not consulted, since Flat at
      this size is at most 50k·4·dim bytes and smaller types could not be trained well);
    - otherwise "HNSW32" (best recall and latency, ~4·dim + 310 bytes per vector) when it fits the budget;
    - else "IVF{nlist},Flat" (exact codes, ~4·dim + 40 bytes), nlist = the power of two nearest 4·sqrt(n);
    - else "IVF{nlist},SQ8" (one byte per dimension, nearly lossless);
    - else "IVF{nlist},PQ{m}" with the largest m (a divisor of dim between dim/64 and dim/4) whose
      m + 40 bytes per vector fit; if none fits, the most compact of these.

    Without a budget only the first two rules apply. PQ trades recall for memory (recall@10 about 0.5 at
    m = dim/16 on clustered data): it is only chosen when memory forces it.
    """
    if n < FLAT_MAX_VECTORS:
        return "Flat"
    candidates = [f"HNSW{HNSW_M}"]
    if memory_budget_bytes is None:
        return candidates[0]
    nlist = ivf_nlist(n)
    candidates += [f"IVF{nlist},Flat", f"IVF{nlist},SQ8"]
    smallest_m = max(1, dim // 64)
    divisors = [m for m in range(max(dim // 4, smallest_m), smallest_m - 1, -1) if dim % m == 0]
    candidates += [f"IVF{nlist},PQ{m}" for m in divisors]
    for factory in candidates:
        if n * bytes_per_vector(factory, dim) <= memory_budget_bytes:
            return factory
    return candidates[-1]


def gpu_available() -> bool:
    """True when this FAISS build has GPU support and sees a GPU (XSEARCH_NO_GPU=1 turns GPU use off)."""
    if os.environ.get("XSEARCH_NO_GPU", "") not in ("", "0"):
        return False
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


# ----------------------------------------------------------------------------------------------------------
# Small helpers over FAISS structures


def _unwrap(index):
    """The innermost index under IndexIDMap2 / IndexPreTransform wrappers (downcast)."""
    faiss = _faiss()
    index = faiss.downcast_index(index)
    while True:
        if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
            index = faiss.downcast_index(index.index)
        else:
            return index


def _training_points_needed(index) -> int:
    """FAISS's own minimum: 39 points per centroid of the largest k-means the index runs."""
    faiss = _faiss()
    centroids = 0
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        centroids = ivf.nlist
    inner = _unwrap(index)
    pq = getattr(inner, "pq", None)
    if pq is not None:
        centroids = max(centroids, int(pq.ksub))
    if isinstance(faiss.downcast_index(index), faiss.IndexPreTransform):
        centroids = max(centroids, 256)  # OPQ / ITQ rotations train a 256-centroid PQ
    return 39 * centroids if centroids else 1000


def _as_ids(ids) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).ravel())
    return arr


def _sorted_unique(arr: np.ndarray) -> np.ndarray:
    return np.unique(arr)


def _in_sorted(values: np.ndarray, sorted_arr: np.ndarray) -> np.ndarray:
    """Boolean mask: which ``values`` are in the sorted array ``sorted_arr``."""
    if sorted_arr.size == 0 or values.size == 0:
        return np.zeros(values.shape, dtype=bool)
    pos = np.searchsorted(sorted_arr, values)
    pos[pos == sorted_arr.size] = 0
    return sorted_arr[pos] == values


def _merge_sorted(a: np.ndarray, b_unique: np.ndarray) -> np.ndarray:
    """Insert sorted-unique ``b_unique`` (disjoint from ``a``) into sorted ``a``."""
    if b_unique.size == 0:
        return a
    return np.insert(a, np.searchsorted(a, b_unique), b_unique)


def _damaged(path: Path, why: str) -> CollectionError:
    return CollectionError(f"vector index {path} is damaged ({why})", code="collection.vectors_damaged",
                           collection=str(path.parent), path=str(path), reason=why)


# ----------------------------------------------------------------------------------------------------------


SINGLE_THREAD_QUERIES = 16  # at most this many queries run on one FAISS thread


@contextlib.contextmanager
def _threads_for(n_queries: int):
    """Run a few queries on one OpenMP thread: waking the pool costs more than it saves (ms under load)."""
    faiss = _faiss()
    if n_queries > SINGLE_THREAD_QUERIES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class VectorIndex:
    """One FAISS inner-product index over L2-normalised vectors, addressed by int64 ids."""

    def __init__(self, dim: int, factory: str, *, use_gpu: bool | None = None):
        """Use :meth:`create` or :meth:`load`."""
        self._dim = int(dim)
        self._factory = factory
        self._index = None  # the CPU index, always the source of truth
        self._layout = _STAGING
        self._train_needed = 0
        self._ids = np.empty(0, dtype=np.int64)  # live ids, sorted
        self._tombstones = np.empty(0, dtype=np.int64)  # removed from an HNSW but still stored, sorted
        self._use_gpu = gpu_available() if use_gpu is None else bool(use_gpu)
        self._modality: str | None = None  # the modality named in the file this index was loaded from
        self._gpu_index = None
        self._gpu_note = "GPU not available" if not self._use_gpu else "GPU copy not built yet"

    # -- construction ------------------------------------------------------------------------------------

    @classmethod
    def create(cls, dim: int, factory: str = "Flat", *, use_gpu: bool | None = None) -> VectorIndex:
        """A new empty index of FAISS factory type ``factory`` (e.g. "Flat", "HNSW32", "IVF1024,Flat")."""
        if int(dim) <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self = cls(dim, factory, use_gpu=use_gpu)
        self._install_empty()
        return self

    def _new_target(self):
        """A fresh, empty index of this factory type, with our search defaults; returns (index, layout)."""
        faiss = _faiss()
        if self._factory.strip().upper().startswith("IDMAP"):
            raise UsageError(f"index type '{self._factory}' must not include IDMap: xsearch adds the id map itself")
        try:
            base = faiss.index_factory(self._dim, self._factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError:
            raise UsageError(
                f"'{self._factory}' is not a FAISS index-factory string for {self._dim} dimensions; "
                "use e.g. Flat, HNSW32, IVF1024,Flat or IVF4096,PQ32"
            ) from None
        inner = _unwrap(base)
        if hasattr(inner, "do_polysemous_training"):
            inner.do_polysemous_training = False  # only serves Hamming pre-filtering, which we never use
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        ivf = faiss.try_extract_index_ivf(base)
        if ivf is not None:
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            ivf.nprobe = default_nprobe(ivf.nlist)
            return base, _NATIVE_IVF
        return faiss.IndexIDMap2(base), _IDMAP

    def _install_empty(self) -> None:
        faiss = _faiss()
        target, layout = self._new_target()
        if target.is_trained:
            self._index, self._layout, self._train_needed = target, layout, 0
        else:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self._dim))
            self._layout = _STAGING
            self._train_needed = _training_points_needed(target)
        self._ids = np.empty(0, dtype=np.int64)
        self._tombstones = np.empty(0, dtype=np.int64)
        self._invalidate_gpu()

    # -- properties --------------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def factory(self) -> str:
        """The FAISS factory string of this index's type (also while it is still collecting training data)."""
        return self._factory

    @property
    def modality(self) -> str | None:
        """The modality recorded in the file this index was loaded from (None: a new index or an older file)."""
        return self._modality

    @property
    def ntotal(self) -> int:
        """Number of live vectors."""
        return int(self._ids.size)

    @property
    def is_trained(self) -> bool:
        """False while an IVF/PQ index is still collecting vectors in its exact staging index."""
        return self._layout != _STAGING

    def ids(self) -> np.ndarray:
        """Every live id, sorted ascending (int64)."""
        return self._ids.copy()

    def __contains__(self, item_id: int) -> bool:
        return bool(_in_sorted(np.array([item_id], dtype=np.int64), self._ids)[0])

    # -- writing -----------------------------------------------------------------------------------------

    def add(self, ids, vectors) -> None:
        """Add ``vectors`` (float32[n, dim], normalised here) under ``ids`` (int64[n], new and distinct)."""
        ids = _as_ids(ids)
        vecs = self._as_vectors(vectors, what="vectors")
        if ids.size != vecs.shape[0]:
            raise ValueError(f"{ids.size} ids for {vecs.shape[0]} vectors")
        if ids.size == 0:
            return
        uniq = _sorted_unique(ids)
        if uniq.size != ids.size:
            raise ValueError("ids in one add() call must be distinct")
        if ids.min() < 0:
            raise ValueError("ids must be non-negative")
        dup = _in_sorted(uniq, self._ids)
        if dup.any():
            raise ValueError(f"ids already in the index (remove them first): {uniq[dup][:10].tolist()}")
        if _in_sorted(uniq, self._tombstones).any():
            self.compact()
        self._index.add_with_ids(vecs, ids)
        self._ids = _merge_sorted(self._ids, uniq)
        self._invalidate_gpu()
        if self._layout == _STAGING and self.ntotal >= self._train_needed:
            self._train_from_staging()

    def train(self, sample) -> None:
        """Train an untrained IVF/PQ index on ``sample`` now and move the staged vectors in."""
        if self._layout != _STAGING:
            return
        sample = self._as_vectors(sample, what="training sample")
        centroids = max(1, self._train_needed // 39)
        if sample.shape[0] < centroids:
            raise ValueError(f"{self._factory} needs at least {centroids} training vectors, got {sample.shape[0]}")
        self._move_into_trained(sample)

    def remove(self, ids) -> int:
        """Remove ``ids`` (absent ids are ignored); returns how many were removed. See module doc for HNSW."""
        faiss = _faiss()
        ids = _sorted_unique(_as_ids(ids))
        ids = ids[_in_sorted(ids, self._ids)]
        if ids.size == 0:
            return 0
        if self._supports_remove():
            sel = faiss.IDSelectorArray(ids.size, faiss.swig_ptr(ids))
            removed = self._index.remove_ids(sel)
            if removed != ids.size:
                raise RuntimeError(f"FAISS removed {removed} of {ids.size} ids")
        else:
            self._tombstones = _merge_sorted(self._tombstones, ids)
        self._ids = np.setdiff1d(self._ids, ids, assume_unique=True)
        self._invalidate_gpu()
        stored = self._ids.size + self._tombstones.size
        if self._tombstones.size and self._tombstones.size > TOMBSTONE_COMPACT_FRACTION * stored:
            self.compact()
        return int(ids.size)

    def compact(self) -> None:
        """Rebuild an index holding tombstones so that removed vectors are physically gone."""
        if self._tombstones.size == 0:
            return
        self.rebuild(self._factory)

    def rebuild(self, factory: str | None = None) -> None:
        """Rebuild from this index's own vectors, optionally as another type (e.g. Flat -> HNSW32).

        Cost: every live vector is reconstructed (exact for Flat/HNSW/IVF-Flat, lossy for PQ/SQ) and added to a
        fresh index: O(n·dim) memory for the copy plus the new type's build time (training included).
        """
        ids = self._ids.copy()
        vecs = self.reconstruct(ids) if ids.size else np.empty((0, self._dim), dtype=np.float32)
        old = (self._factory, self._index, self._layout, self._train_needed, self._ids, self._tombstones)
        try:
            if factory is not None:
                self._factory = factory
            self._install_empty()
            if ids.size and self._layout == _STAGING and ids.size >= self._train_needed:
                self._move_into_trained(vecs, staged=(ids, vecs))
            else:
                for start in range(0, ids.size, _CHUNK):
                    self.add(ids[start:start + _CHUNK], vecs[start:start + _CHUNK])
        except BaseException:
            self._factory, self._index, self._layout, self._train_needed, self._ids, self._tombstones = old
            raise

    def _supports_remove(self) -> bool:
        return not isinstance(_unwrap(self._index), _faiss().IndexHNSW)

    def _train_from_staging(self) -> None:
        self._move_into_trained(None)

    def _move_into_trained(self, sample, staged=None) -> None:
        """Train the target type on ``sample`` (default: a sample of the staged vectors) and move them in."""
        if staged is None:
            ids = self._ids.copy()
            vecs = self.reconstruct(ids) if ids.size else np.empty((0, self._dim), dtype=np.float32)
        else:
            ids, vecs = staged
        target, layout = self._new_target()
        if sample is None:
            sample = vecs
        max_points = 256 * max(1, self._train_needed // 39)
        if sample.shape[0] > max_points:
            pick = np.random.default_rng(0).choice(sample.shape[0], size=max_points, replace=False)
            sample = sample[np.sort(pick)]
        target.train(np.ascontiguousarray(sample, dtype=np.float32))
        for start in range(0, ids.size, _CHUNK):
            target.add_with_ids(np.ascontiguousarray(vecs[start:start + _CHUNK]), ids[start:start + _CHUNK])
        self._index, self._layout, self._train_needed = target, layout, 0
        self._ids = _sorted_unique(ids)
        self._tombstones = np.empty(0, dtype=np.int64)
        self._invalidate_gpu()

    # -- reading -----------------------------------------------------------------------------------------

    def reconstruct(self, ids) -> np.ndarray:
        """The stored (normalised) vectors of ``ids``, float32[n, dim]; exact except for PQ/SQ codes."""
        ids = _as_ids(ids)
        if ids.size == 0:
            return np.empty((0, self._dim), dtype=np.float32)
        missing = ~_in_sorted(ids, self._ids)
        if missing.any():
            raise KeyError(f"ids not in the index: {ids[missing][:10].tolist()}")
        return self._index.reconstruct_batch(ids)

    def search(self, queries, k: int, *, allowed_ids=None, params: dict | None = None):
        """Top-``k`` by cosine for each query: (scores float32[q, k], ids int64[q, k]).

        Rows are padded with id -1 and score -inf when fewer than ``k`` vectors qualify. ``allowed_ids``
        restricts results to those ids (FAISS IDSelectorBatch; tight filters are answered exactly).
        ``params``: {"nprobe": int} for IVF types, {"efSearch": int} for HNSW; keys that do not apply to this
        index type are ignored, unknown keys raise ValueError.
        """
        faiss = _faiss()
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise UsageError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        params = dict(params or {})
        unknown = set(params) - {"nprobe", "efSearch"}
        if unknown:
            raise ValueError(f"unknown search parameters: {sorted(unknown)} (known: nprobe, efSearch)")
        q = self._as_vectors(queries, what="queries")
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        labels = np.full((q.shape[0], k), -1, dtype=np.int64)
        if q.shape[0] == 0 or self.ntotal == 0:
            return scores, labels

        selector = None
        keep = []  # keeps numpy buffers and selectors alive during the FAISS call
        if allowed_ids is not None:
            allowed = _sorted_unique(_as_ids(allowed_ids))
            allowed = allowed[_in_sorted(allowed, self._ids)]
            if allowed.size == 0:
                return scores, labels
            exact_by_construction = isinstance(_unwrap(self._index), faiss.IndexFlat)
            if not exact_by_construction and allowed.size <= max(EXACT_FILTER_MIN,
                                                                 EXACT_FILTER_FRACTION * self.ntotal):
                return self._exact_search(q, k, allowed)
            selector = faiss.IDSelectorBatch(allowed.size, faiss.swig_ptr(allowed))
            keep.append(allowed)
        elif self._tombstones.size:
            inner = faiss.IDSelectorBatch(self._tombstones.size, faiss.swig_ptr(self._tombstones))
            selector = faiss.IDSelectorNot(inner)
            keep.append(inner)

        if selector is None and self._use_gpu:
            gpu = self._gpu_clone()
            if gpu is not None:
                return self._gpu_search(gpu, q, k, params)

        search_params = self._search_params(selector, params, keep)
        with _threads_for(q.shape[0]):
            if search_params is None:
                d, i = self._index.search(q, k)
            else:
                d, i = self._index.search(q, k, params=search_params)
        return self._clean(d, i)

    def _search_params(self, selector, params: dict, keep: list):
        """FAISS SearchParameters for this index's structure, or None when defaults and no selector do."""
        faiss = _faiss()
        inner = _unwrap(self._index)
        ivf = faiss.try_extract_index_ivf(self._index)
        if selector is None and not ((ivf is not None and "nprobe" in params)
                                     or (isinstance(inner, faiss.IndexHNSW) and "efSearch" in params)):
            return None
        if ivf is not None:
            p = faiss.SearchParametersIVF()
            p.nprobe = int(params.get("nprobe", ivf.nprobe))
        elif isinstance(inner, faiss.IndexHNSW):
            p = faiss.SearchParametersHNSW()
            p.efSearch = int(params.get("efSearch", inner.hnsw.efSearch))
        else:
            p = faiss.SearchParameters()
        if selector is not None:
            p.sel = selector
        keep.append(p)
        outer = faiss.downcast_index(self._index)
        if isinstance(outer, faiss.IndexIDMap2):
            outer = faiss.downcast_index(outer.index)
        if isinstance(outer, faiss.IndexPreTransform):
            wrapper = faiss.SearchParametersPreTransform()
            wrapper.index_params = p
            keep.append(wrapper)
            return wrapper
        return p

    def _exact_search(self, q: np.ndarray, k: int, allowed: np.ndarray):
        faiss = _faiss()
        vecs = np.ascontiguousarray(self.reconstruct(allowed), dtype=np.float32)
        kk = min(k, allowed.size)
        d, pos = faiss.knn(q, vecs, kk, metric=faiss.METRIC_INNER_PRODUCT)
        scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        labels = np.full((q.shape[0], k), -1, dtype=np.int64)
        scores[:, :kk] = d
        labels[:, :kk] = np.where(pos >= 0, allowed[np.clip(pos, 0, None)], -1)
        return scores, labels

    @staticmethod
    def _clean(d: np.ndarray, i: np.ndarray):
        d = np.asarray(d, dtype=np.float32)
        i = np.asarray(i, dtype=np.int64)
        d[i < 0] = -np.inf
        return d, i

    def normalized(self, vectors) -> np.ndarray:
        """``vectors`` checked (shape [n, dim], finite, non-zero) and L2-normalised, as a float32 copy."""
        return self._as_vectors(vectors, what="vectors")

    def _as_vectors(self, vectors, *, what: str) -> np.ndarray:
        """A normalised float32 C-contiguous copy of ``vectors`` shaped [n, dim]."""
        arr = np.array(vectors, dtype=np.float32, copy=True)
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or (arr.size and arr.shape[1] != self._dim):
            raise ValueError(f"{what} must have shape [n, {self._dim}], got {list(np.shape(vectors))}")
        if arr.size == 0:
            return np.empty((0, self._dim), dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError(f"{what} contain an all-zero vector, which has no direction")
        arr /= norms
        return np.ascontiguousarray(arr)

    # -- GPU ---------------------------------------------------------------------------------------------

    def _invalidate_gpu(self) -> None:
        self._gpu_index = None
        if self._use_gpu:
            self._gpu_note = "GPU copy not built yet"

    def _gpu_clone(self):
        """The GPU copy of this index (built lazily after each change), or None when the type has no GPU kind."""
        if self._gpu_index is not None:
            return self._gpu_index
        faiss = _faiss()
        inner = _unwrap(self._index)
        if isinstance(inner, faiss.IndexHNSW):
            self._gpu_note = f"{self._factory} has no GPU implementation; searching on CPU"
            return None
        try:
            self._gpu_index = faiss.index_cpu_to_all_gpus(self._index)
        except RuntimeError as exc:  # FAISS throws for index types it cannot move to GPU
            self._gpu_note = f"{self._factory} cannot move to GPU ({str(exc).splitlines()[-1][:120]}); on CPU"
            return None
        self._gpu_note = f"searching on {faiss.get_num_gpus()} GPU(s)"
        return self._gpu_index

    def _gpu_search(self, gpu, q: np.ndarray, k: int, params: dict):
        faiss = _faiss()
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is not None:
            faiss.GpuParameterSpace().set_index_parameter(gpu, "nprobe", int(params.get("nprobe", ivf.nprobe)))
        d, i = gpu.search(q, k)
        return self._clean(d, i)

    # -- description -------------------------------------------------------------------------------------

    def search_defaults(self) -> dict:
        """The search parameters used when a search passes none."""
        faiss = _faiss()
        if self._layout == _STAGING:
            return {}
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is not None:
            return {"nprobe": int(ivf.nprobe)}
        inner = _unwrap(self._index)
        if isinstance(inner, faiss.IndexHNSW):
            return {"efSearch": int(inner.hnsw.efSearch)}
        return {}

    def memory_bytes(self) -> int:
        """Estimated resident bytes of the CPU index (codes, graph links, ids, centroids)."""
        faiss = _faiss()
        n_stored = self._ids.size + self._tombstones.size
        total = 40 * n_stored  # ids + their hash-map entries
        ivf = faiss.try_extract_index_ivf(self._index)
        inner = _unwrap(self._index)
        if ivf is not None:
            total += n_stored * int(ivf.code_size) + ivf.nlist * self._dim * 4
            pq = getattr(inner, "pq", None)
            if pq is not None:
                total += int(pq.M) * int(pq.ksub) * int(pq.dsub) * 4
            return int(total)
        if isinstance(inner, faiss.IndexHNSW):
            hnsw = inner.hnsw
            storage = faiss.downcast_index(inner.storage)
            total += int(storage.code_size) * n_stored if hasattr(storage, "code_size") else 4 * self._dim * n_stored
            total += hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
            return int(total)
        code_size = getattr(inner, "code_size", 4 * self._dim)
        return int(total + int(code_size) * n_stored)

    def describe(self) -> dict:
        """What this index is: type, size, training state, search defaults, memory, GPU use."""
        info = {
            "factory": self._factory,
            "dim": self._dim,
            "ntotal": self.ntotal,
            "metric": "inner_product (cosine on normalised vectors)",
            "trained": self.is_trained,
            "search_defaults": self.search_defaults(),
            "memory_bytes": self.memory_bytes(),
            "gpu": bool(self._use_gpu and self._gpu_index is not None),
            "gpu_note": self._gpu_note,
        }
        if self._layout == _STAGING:
            info["staging"] = (f"exact search until {self._train_needed} vectors are collected to train "
                               f"{self._factory} ({self.ntotal} so far)")
        if self._tombstones.size:
            info["tombstones"] = int(self._tombstones.size)
        return info

    # -- persistence -------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, *, modality: str | None = None) -> None:
        """Write atomically: a temp file in the same folder, fsync, os.replace, fsync the folder.

        ``modality`` is recorded in the header (a collection checks it on load, so a file of another modality
        copied over this one's name is caught).
        """
        faiss = _faiss()
        path = Path(path)
        header = {
            "format": _FILE_FORMAT,
            "factory": self._factory,
            "dim": self._dim,
            "layout": self._layout,
            "train_needed": self._train_needed,
            "ntotal": self.ntotal,
            "tombstones": self._tombstones.tolist(),
        }
        if modality is not None:
            header["modality"] = str(modality)
        meta = json.dumps(header).encode()
        with atomic_write(path, "wb") as f:
            f.write(_HEADER.pack(_MAGIC, len(meta), zlib.crc32(meta)))
            f.write(meta)
            state = {"crc": 0, "n": 0}

            def write(chunk: bytes) -> int:
                state["crc"] = zlib.crc32(chunk, state["crc"])
                state["n"] += len(chunk)
                f.write(chunk)
                return len(chunk)

            writer = faiss.PyCallbackIOWriter(write)
            faiss.write_index(self._index, writer)
            del writer  # flushes FAISS's buffer through `write`
            f.write(_TRAILER.pack(state["n"], state["crc"], _TRAILER_MAGIC))

    @classmethod
    def load(cls, path: str | os.PathLike, *, use_gpu: bool | None = None) -> VectorIndex:
        """Read a file written by :meth:`save`; a damaged file raises CollectionError.

        A missing file raises FileNotFoundError; a link, a special file or an unreadable file is a CollectionError.
        """
        faiss = _faiss()
        path = Path(path)
        fd = open_regular(path, os.O_RDONLY, collection=path.parent, doing="read")
        try:
            with open(fd, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                head = f.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    raise _damaged(path, "file is truncated")
                magic, meta_len, meta_crc = _HEADER.unpack(head)
                if magic != _MAGIC:
                    raise _damaged(path, "not an xsearch vector index")
                meta_bytes = f.read(meta_len)
                if len(meta_bytes) != meta_len or zlib.crc32(meta_bytes) != meta_crc:
                    raise _damaged(path, "header checksum mismatch")
                meta = json.loads(meta_bytes)
                if not isinstance(meta, dict):
                    raise _damaged(path, "header is not a JSON object")
                if meta.get("format", 0) > _FILE_FORMAT:
                    raise CollectionError(f"vector index {path} was written by a newer xsearch",
                                          code="collection.newer_format", collection=str(path.parent),
                                          path=str(path))
                blob_start = _HEADER.size + meta_len
                if size < blob_start + _TRAILER.size:
                    raise _damaged(path, "file is truncated")
                f.seek(size - _TRAILER.size)
                blob_len, blob_crc, end_magic = _TRAILER.unpack(f.read(_TRAILER.size))
                if end_magic != _TRAILER_MAGIC or blob_start + blob_len + _TRAILER.size != size:
                    raise _damaged(path, "file is truncated or has trailing bytes")
                f.seek(blob_start)
                crc, left = 0, blob_len
                while left:
                    chunk = f.read(min(left, 1 << 22))
                    if not chunk:
                        raise _damaged(path, "file is truncated")
                    crc = zlib.crc32(chunk, crc)
                    left -= len(chunk)
                if crc != blob_crc:
                    raise _damaged(path, "data checksum mismatch")
                f.seek(blob_start)
                reader = faiss.PyCallbackIOReader(f.read)
                try:
                    index = faiss.read_index(reader)
                finally:
                    del reader
        except CollectionError:
            raise
        except OSError as exc:  # a read error is not damage of the file's content
            raise collection_os_error(exc, path, collection=path.parent, doing="read") from None
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            first = (str(exc).splitlines() or [""])[0][:120]
            raise _damaged(path, f"{type(exc).__name__}: {first}") from None

        try:
            self = cls(int(meta["dim"]), str(meta["factory"]), use_gpu=use_gpu)
            if meta["layout"] not in (_STAGING, _IDMAP, _NATIVE_IVF):
                raise ValueError(f"unknown layout {meta['layout']!r}")
            self._layout = meta["layout"]
            self._train_needed = int(meta.get("train_needed", 0))
            self._tombstones = np.asarray(meta.get("tombstones", []), dtype=np.int64)
            modality = meta.get("modality")
            self._modality = str(modality) if modality is not None else None
        except (KeyError, ValueError, TypeError) as exc:
            raise _damaged(path, f"bad header ({type(exc).__name__}: {exc})") from None
        if index.d != self._dim:
            raise _damaged(path, f"index has {index.d} dimensions, header says {self._dim}")
        self._index = index
        stored = self._stored_ids()
        self._ids = np.setdiff1d(stored, self._tombstones, assume_unique=False)
        if self._ids.size != int(meta.get("ntotal", self._ids.size)):
            raise _damaged(path, "id count does not match the header")
        return self

    def _stored_ids(self) -> np.ndarray:
        """Every id physically stored (live and tombstoned), sorted."""
        faiss = _faiss()
        if self._layout in (_IDMAP, _STAGING):
            return np.sort(faiss.vector_to_array(faiss.downcast_index(self._index).id_map).astype(np.int64))
        ivf = faiss.try_extract_index_ivf(self._index)
        lists = ivf.invlists
        parts = []
        for list_no in range(ivf.nlist):
            n = lists.list_size(list_no)
            if n:
                parts.append(faiss.rev_swig_ptr(lists.get_ids(list_no), n).copy())
        return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.empty(0, dtype=np.int64)
