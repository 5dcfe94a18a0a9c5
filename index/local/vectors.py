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

Refined types ("IVF4096,PQ64x4fs,Refine(SQfp16)", "...,RFlat"; FAISS's spelling of a refine stage): the first
stage (any factory string; fast-scan PQ, RaBitQ, SQ4, ...) returns k · k_factor candidates, re-scored with exact
float32 / float16 vectors kept in a sibling file ``<name>.vecs`` that is memory-mapped (index/exact.py), so
resident memory is the codes and ids only. FAISS's IndexRefine is not used: it addresses vectors by position and
cannot remove. A refined IVF keeps no direct map (reconstruct reads the exact store, removal scans the lists).
Fast-scan codes cannot be looked up by id, so a fast-scan type needs a refine stage.

Removal: types with ``remove_ids`` (Flat, IVF, PQ, SQ) remove in place. HNSW has no ``remove_ids``: removed ids
become tombstones that searches skip (an IDSelector), and once tombstones exceed ``TOMBSTONE_COMPACT_FRACTION``
of the stored vectors the index is rebuilt from its own stored vectors (cost of a fresh build, O(n log n)
distance computations; re-adding a tombstoned id also compacts first).

Files written by ``save`` are one self-checking container: a header with a JSON description (factory, dim,
tombstones, the modality when the caller names it, search defaults, why the type was chosen, and a refined
type's exact-vector file length and CRC), the FAISS index as ``faiss.write_index`` writes it, and a CRC32
trailer. ``load`` checks the CRC before FAISS parses anything, so a damaged file is a clear
``CollectionError``, never a crash. ``load`` never follows a symbolic link and reads only regular files.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from xsearch.core.errors import CollectionError, UsageError

from .atomic import atomic_write, collection_os_error, open_regular
from .exact import ExactStore, sidecar_path

#: Below this many vectors an exact Flat index is fast enough and needs no training.
FLAT_MAX_VECTORS = 50_000
#: Graph degree for the HNSW index choose_factory picks.
HNSW_M = 32
#: HNSW build / search breadth. efSearch=128 gives recall@10 >= 0.99 on the clustered tests and benchmark.
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
#: IVF lists probed before calibration: nlist / IVF_NPROBE_DIVISOR, clamped to [IVF_NPROBE_MIN, IVF_NPROBE_MAX].
IVF_NPROBE_DIVISOR = 8
IVF_NPROBE_MIN = 16
IVF_NPROBE_MAX = 256
#: Calibration of the search defaults (IVF types, unless a caller pinned them; _calibrate): after training, the
#: smallest nprobe (at least min(nlist, IVF_NPROBE_MIN)) whose probed lists hold CALIBRATION_RECALL of the true
#: 10 nearest neighbours of CALIBRATION_QUERIES stored vectors used as queries (themselves excluded), and for a
#: refined type the smallest k_factor of CALIBRATION_K_FACTORS whose candidates keep all but
#: CALIBRATION_RERANK_LOSS of what those lists hold; redone when the index has grown CALIBRATION_GROWTH× since.
#: A fixed share of the lists does not carry across data: nlist/8 held 0.92 of the neighbours at 20k clustered
#: 512-d vectors (IVF512) but 0.99 at 100k (IVF1024), and no re-ranking finds a neighbour in a list not probed.
CALIBRATION_RECALL = 0.98
CALIBRATION_QUERIES = 256
CALIBRATION_K = 10
CALIBRATION_GROWTH = 2.0
CALIBRATION_K_FACTORS = (10, 20, 40, 80)
CALIBRATION_RERANK_LOSS = 0.01
#: Refined types ("<first stage>,RFlat" / ",Refine(SQfp16)"): the first stage returns k · REFINE_K_FACTOR
#: candidates, re-scored with the exact vectors (see index/exact.py). At 200k clustered 512-d vectors,
#: IVF2048,PQ64x4fs re-ranked from 100 candidates reached recall@10 0.94, from 200 0.97.
REFINE_K_FACTOR = 20
#: IVF / PQ training uses at most this many points per centroid (FAISS's own cap is 256; k-means time is linear
#: in it, and recall after re-ranking did not move between 64 and 256 on the clustered benchmark).
TRAIN_POINTS_PER_CENTROID = 64
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


_REFINE_DTYPES = {"RFlat": "float32", "Refine(Flat)": "float32", "Refine(SQfp16)": "float16"}


def split_refine(factory: str) -> tuple[str, str | None]:
    """(first-stage factory, exact-vector type or None): "IVF4096,PQ64x4fs,Refine(SQfp16)" → ("IVF4096,PQ64x4fs",
    "float16"). FAISS's own IndexRefine keeps positions, not ids, and cannot remove; xsearch re-ranks with its own
    memory-mapped exact store instead (index/exact.py), under FAISS's spelling of the refine stage."""
    head, sep, tail = factory.rpartition(",")
    tail = tail.strip()
    if sep and (tail in _REFINE_DTYPES):
        return head.strip(), _REFINE_DTYPES[tail]
    if sep and (tail.startswith("Refine(") or tail.startswith("RFlat")):
        raise UsageError(f"refine stage '{tail}' is not supported: use RFlat (exact float32 vectors) or "
                         "Refine(SQfp16) (float16), e.g. IVF4096,PQ64x4fs,Refine(SQfp16)",
                         code="usage.bad_index_factory", factory=factory)
    return factory, None


def _code_bytes(code: str, dim: int) -> float | None:
    """Bytes of one vector's code for an IVF/flat code spec ("Flat", "PQ64x4fs", "SQ8", "RaBitQ4", ...)."""
    if code == "Flat":
        return 4.0 * dim
    if code.startswith("PQ"):
        spec = code[2:].rstrip("fsr")
        m, _, bits = spec.partition("x")
        return int(m) * int(bits or 8) / 8.0
    if code == "SQfp16" or code == "SQbf16":
        return 2.0 * dim
    if code.startswith("SQ"):
        return dim * int(code[2:] or 8) / 8.0
    if code.startswith("RaBitQ"):
        bits = int(code[6:].lstrip("fs") or 1)
        return dim * bits / 8.0 + (8 if bits == 1 else 20)
    return None


#: Resident bytes of an IVF index with fast-scan codes ("PQ64x4fs"), measured ÷ the sum of its parts below: 1.22 for
#: both IVF4096,PQ32x4fs and IVF4096,PQ64x4fs + Refine(SQfp16) at 1M × 512 (bench/results/cpu-2core-1m-memory.md):
#: fast-scan lists are padded to whole blocks of 32 codes, plus allocation slack.
FASTSCAN_RESIDENT_FACTOR = 1.22


def _is_fastscan(head: list[str]) -> bool:
    return head[0].startswith("IVF") and len(head) > 1 and head[-1].startswith("PQ") and head[-1].endswith("fs")


def bytes_per_vector(factory: str, dim: int, n: int | None = None) -> float:
    """Estimated resident bytes per stored vector of ``factory`` (ids, codes or vectors, graph links; with ``n``
    also the IVF centroids' share). A refine stage is memory-mapped and adds nothing here: see
    :func:`disk_bytes_per_vector`."""
    first, refine = split_refine(factory)
    head = first.split(",")
    id_cost = 8.0 + 32.0  # the id itself + its hash-map entry (IndexIDMap2 rev_map / IVF direct map)
    if head[0].startswith("HNSW"):
        m = int(head[0][4:].split("_")[0] or 32)
        code = _code_bytes(head[1], dim) if len(head) > 1 else None
        return (4.0 * dim if code is None else code) + 2 * m * 4 * 1.05 + 16 + id_cost
    if head[0].startswith("IVF") and len(head) > 1:
        if refine is not None:
            id_cost = 16.0  # the id in its inverted list + our sorted id array; no direct map (index/exact.py)
        code = _code_bytes(head[-1], dim)
        extra = 0.0
        if n:
            nlist = int(head[0][3:].split("_")[0])
            extra = nlist * dim * 4.0 / max(n, 1)
        total = (4.0 * dim if code is None else code) + id_cost + extra
        return total * FASTSCAN_RESIDENT_FACTOR if _is_fastscan(head) else total
    return 4.0 * dim + id_cost


def disk_bytes_per_vector(factory: str, dim: int, n: int | None = None) -> float:
    """Estimated bytes per vector on disk: the vector file, plus the exact-vector file of a refined type."""
    first, refine = split_refine(factory)
    disk = bytes_per_vector(first, dim, n)
    if refine is not None:
        disk += 8 + dim * (2 if refine == "float16" else 4)
    return disk


def choose_factory(n: int, dim: int, memory_budget_bytes: int | None = None,
                   latency_budget_ms: float | None = None) -> str:
    """The FAISS factory string index/budget.py's ``choose_index`` picks for ``n`` vectors of ``dim`` dimensions:
    "Flat" below FLAT_MAX_VECTORS; without a budget "HNSW32"; with a memory and/or latency budget the fastest
    candidate within them whose expected recall@10 reaches 0.95 (IVF-Flat, IVF-SQ8, HNSW32, or an IVF-PQ
    fast-scan first stage re-ranked with float16 exact vectors on disk,
    "IVF{nlist},PQ{dim/16, /8 or /4}x4fs,Refine(SQfp16)").
    """
    from .budget import choose_index

    return choose_index(n, dim, memory_budget_bytes, latency_budget_ms).factory


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


class VectorIndex:
    """One FAISS inner-product index over L2-normalised vectors, addressed by int64 ids."""

    def __init__(self, dim: int, factory: str, *, use_gpu: bool | None = None):
        """Use :meth:`create` or :meth:`load`."""
        self._dim = int(dim)
        self._factory = factory
        self._first, self._refine = split_refine(factory)  # first-stage factory, exact-vector type or None
        self._exact: ExactStore | None = None  # the refine stage's exact vectors (index/exact.py)
        self._k_factor = REFINE_K_FACTOR
        self._choice: dict | None = None  # why this type was chosen (index/budget.py), saved in the header
        self._pending_search: dict[str, int] = {}  # nprobe / efSearch to apply once trained (set_search_defaults)
        self._calibration: dict | None = None  # the last nprobe calibration (IVF types; see _calibrate_nprobe)
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
            base = faiss.index_factory(self._dim, self._first, faiss.METRIC_INNER_PRODUCT)
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
            fast_scan = isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFastScan)
            if fast_scan and self._refine is None:
                raise UsageError(f"'{self._factory}' stores fast-scan codes, which cannot be looked up by id; add a "
                                 f"refine stage, e.g. '{self._factory},Refine(SQfp16)'",
                                 code="usage.bad_index_factory", factory=self._factory)
            if self._refine is None:  # a refined type reconstructs from its exact store and removes by scanning
                ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            ivf.nprobe = default_nprobe(ivf.nlist)
            return base, _NATIVE_IVF
        return faiss.IndexIDMap2(base), _IDMAP

    def _install_empty(self, exact: ExactStore | None = None) -> None:
        """A fresh empty index of this factory type; a refined type gets ``exact`` or a new exact store."""
        faiss = _faiss()
        if self._refine is None:
            self._exact = None
        else:
            self._exact = exact if exact is not None and exact.dtype == self._refine else \
                ExactStore(self._dim, self._refine)
        target, layout = self._new_target()
        if target.is_trained:
            self._index, self._layout, self._train_needed = target, layout, 0
            self._apply_search_defaults()
        else:
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self._dim))
            self._layout = _STAGING
            self._train_needed = _training_points_needed(target)
        self._ids = np.empty(0, dtype=np.int64)
        self._tombstones = np.empty(0, dtype=np.int64)
        self._calibration = None
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
        if self._exact is not None:
            self._exact.add(ids, vecs)
        self._add_first_stage(ids, vecs, uniq)

    def _add_first_stage(self, ids: np.ndarray, vecs: np.ndarray, uniq: np.ndarray) -> None:
        self._index.add_with_ids(vecs, ids)
        self._ids = _merge_sorted(self._ids, uniq)
        self._invalidate_gpu()
        if self._layout == _STAGING and self.ntotal >= self._train_needed:
            self._train_from_staging()
        elif self._calibration is not None and self.ntotal >= CALIBRATION_GROWTH * self._calibration["n"] and \
                self._exact_vectors_at_hand():
            self._calibrate()

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
        source = self._vector_source()
        old = (self._factory, self._first, self._refine, self._exact, self._index, self._layout, self._train_needed,
               self._ids, self._tombstones, self._calibration)
        try:
            if factory is not None:
                self._factory = factory
                self._first, self._refine = split_refine(factory)
            keep = old[3] if old[3] is not None and old[3].dtype == self._refine else None
            self._install_empty(keep)  # the exact vectors stay as they are when the refine type does not change
            fill = self._exact is not None and keep is None
            if ids.size and self._layout == _STAGING and ids.size >= self._train_needed:
                if fill:
                    for start in range(0, ids.size, _CHUNK):
                        self._exact.add(ids[start:start + _CHUNK], source(ids[start:start + _CHUNK]))
                self._ids = ids
                self._move_into_trained(None, source=source)
            else:
                for start in range(0, ids.size, _CHUNK):
                    chunk = ids[start:start + _CHUNK]
                    vecs = source(chunk)
                    if fill:
                        self._exact.add(chunk, vecs)
                    self._add_first_stage(chunk, np.ascontiguousarray(vecs, dtype=np.float32), chunk)
        except BaseException:
            (self._factory, self._first, self._refine, self._exact, self._index, self._layout, self._train_needed,
             self._ids, self._tombstones, self._calibration) = old
            raise

    def _vector_source(self):
        """ids → float32 vectors of this index as it is now (exact store for refined types, else FAISS)."""
        exact, index, stored = self._exact, self._index, self._ids
        if exact is not None:
            return exact.vectors

        def reconstruct(ids):
            return index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64)) if len(ids) else \
                np.empty((0, self._dim), dtype=np.float32)

        del stored
        return reconstruct

    def _supports_remove(self) -> bool:
        return not isinstance(_unwrap(self._index), _faiss().IndexHNSW)

    def _train_from_staging(self) -> None:
        self._move_into_trained(None)

    def _move_into_trained(self, sample, source=None) -> None:
        """Train the target type on ``sample`` (default: a sample of the stored vectors) and move every stored
        vector in, chunk by chunk from ``source`` (ids → vectors; default: this index's own vectors)."""
        ids = self._ids.copy()
        source = source or self._vector_source()
        target, layout = self._new_target()
        max_points = TRAIN_POINTS_PER_CENTROID * max(1, self._train_needed // 39)
        if sample is None:
            pick = ids
            if ids.size > max_points:
                pick = np.sort(np.random.default_rng(0).choice(ids, size=max_points, replace=False))
            sample = source(pick)
        elif sample.shape[0] > max_points:
            pick = np.random.default_rng(0).choice(sample.shape[0], size=max_points, replace=False)
            sample = sample[np.sort(pick)]
        target.train(np.ascontiguousarray(sample, dtype=np.float32))
        del sample
        for start in range(0, ids.size, _CHUNK):
            chunk = ids[start:start + _CHUNK]
            target.add_with_ids(np.ascontiguousarray(source(chunk), dtype=np.float32), chunk)
        self._index, self._layout, self._train_needed = target, layout, 0
        self._ids = _sorted_unique(ids)
        self._tombstones = np.empty(0, dtype=np.int64)
        self._invalidate_gpu()
        self._calibration = None
        self._apply_search_defaults()  # a pinned nprobe first: k_factor is calibrated at the nprobe searches use
        self._calibrate(source)

    def _calibrate(self, source=None) -> None:
        """Set an IVF's nprobe to the smallest number of lists (at least min(nlist, IVF_NPROBE_MIN)) that hold
        CALIBRATION_RECALL of the true CALIBRATION_K nearest neighbours of a sample of stored vectors used as
        queries (each query itself excluded), and a refined type's k_factor to the smallest of
        CALIBRATION_K_FACTORS whose first-stage candidates lose at most CALIBRATION_RERANK_LOSS of those.

        nprobe is measured on the coarse stage alone (which lists a query probes, its centroids ranked as the IVF
        ranks them, and which list holds each neighbour), so it bounds the recall of any code or re-ranking
        behind it; k_factor by the first stage's own search at that nprobe. Either is left alone when a caller
        pinned it (set_search_defaults). The result is saved in the file header and shown by describe()."""
        faiss = _faiss()
        ivf = faiss.try_extract_index_ivf(self._index) if self._layout == _NATIVE_IVF else None
        if ivf is None or self.ntotal == 0:
            return
        pin_nprobe = "nprobe" in self._pending_search
        pin_k_factor = self._exact is None or "k_factor" in self._pending_search
        if pin_nprobe and pin_k_factor:
            return
        nlist, n, k = int(ivf.nlist), self.ntotal, CALIBRATION_K
        record = {"n": n, "k": k, "target": CALIBRATION_RECALL, "queries": 0, "recall": None}
        if n <= 4 * k:
            self._calibration = {**record, "nprobe": int(ivf.nprobe)}
            return
        source = source or self._vector_source()
        ids = self._ids
        rng = np.random.default_rng(n)
        query_ids = np.sort(rng.choice(ids, size=min(CALIBRATION_QUERIES, n), replace=False))
        queries = np.ascontiguousarray(source(query_ids), dtype=np.float32)
        neighbours = self._true_neighbours(queries, query_ids, k, source)
        valid = neighbours >= 0
        if not valid.any():
            return
        record["queries"] = int(queries.shape[0])
        if pin_nprobe:
            nprobe = int(ivf.nprobe)
        else:
            # which list holds each stored id, and the rank of every list for each query
            list_ids, list_nos = [], []
            lists = ivf.invlists
            for list_no in range(nlist):
                size = lists.list_size(list_no)
                if size:
                    list_ids.append(faiss.rev_swig_ptr(lists.get_ids(list_no), size).copy())
                    list_nos.append(np.full(size, list_no, dtype=np.int64))
            list_ids = np.concatenate(list_ids).astype(np.int64)
            list_nos = np.concatenate(list_nos)
            order = np.argsort(list_ids, kind="stable")
            list_ids, list_nos = list_ids[order], list_nos[order]
            where = np.clip(np.searchsorted(list_ids, np.where(valid, neighbours, 0)), 0, list_ids.size - 1)
            held = valid & (list_ids[where] == neighbours)
            coarse = self._coarse_ranking(ivf, queries, nlist)
            rank = np.empty_like(coarse)
            np.put_along_axis(rank, coarse, np.broadcast_to(np.arange(nlist, dtype=coarse.dtype), coarse.shape),
                              axis=1)
            needed = np.take_along_axis(rank, np.where(held, list_nos[where], 0), axis=1)[held]  # 0-based
            covered = np.cumsum(np.bincount(needed, minlength=nlist)) / max(1, int(valid.sum()))
            nprobe = int(np.searchsorted(covered, CALIBRATION_RECALL - 1e-9) + 1)
            nprobe = int(min(nlist, max(min(nlist, IVF_NPROBE_MIN), nprobe)))
            ivf.nprobe = nprobe
            record["recall"] = round(float(covered[nprobe - 1]), 4)
        record["nprobe"] = nprobe
        if not pin_k_factor:
            # the first stage's candidates at this nprobe (the query finds itself: one more, then dropped)
            most = k * max(CALIBRATION_K_FACTORS) + 1
            keep: list = []
            params = self._search_params(None, {"nprobe": nprobe}, keep)
            _, cand = self._index.search(queries, min(most, n), params=params)
            found = {}
            for kf in CALIBRATION_K_FACTORS:
                hits = 0
                for row in range(queries.shape[0]):
                    c = cand[row][(cand[row] != query_ids[row]) & (cand[row] >= 0)][:k * kf]
                    hits += int(np.isin(neighbours[row][valid[row]], c).sum())
                found[kf] = hits / int(valid.sum())
            best = max(found.values())
            k_factor = next(kf for kf in CALIBRATION_K_FACTORS if found[kf] >= best - CALIBRATION_RERANK_LOSS)
            self._k_factor = int(k_factor)
            record.update({"k_factor": int(k_factor), "candidate_recall": round(float(found[k_factor]), 4)})
        self._calibration = record
        self._invalidate_gpu()

    def _exact_vectors_at_hand(self) -> bool:
        """Whether this index can give back (nearly) exact vectors: a refined type's exact store, IVF-Flat or 8-bit+
        scalar codes. Calibrating on PQ-decoded vectors would find neighbours in the decoded space (each next to
        its own centroid) and probe too few lists, so a PQ index without a refine stage keeps the calibration made
        when it was trained (on the exact staged vectors)."""
        faiss = _faiss()
        if self._exact is not None:
            return True
        inner = _unwrap(self._index)
        if isinstance(inner, faiss.IndexIVFFlat):
            return True
        if isinstance(inner, faiss.IndexIVFScalarQuantizer):
            sq = faiss.ScalarQuantizer
            return int(inner.sq.qtype) in (sq.QT_8bit, sq.QT_8bit_uniform, sq.QT_fp16, sq.QT_bf16, sq.QT_8bit_direct)
        return False

    def _true_neighbours(self, queries: np.ndarray, query_ids: np.ndarray, k: int, source) -> np.ndarray:
        """Ids of the exact ``k`` nearest stored vectors of each query, the query's own id excluded (-1 pads)."""
        faiss = _faiss()
        ids, kk = self._ids, k + 1
        best_s = np.full((queries.shape[0], kk), -np.inf, dtype=np.float32)
        best_i = np.full((queries.shape[0], kk), -1, dtype=np.int64)
        for start in range(0, ids.size, _CHUNK):
            chunk = ids[start:start + _CHUNK]
            d, pos = faiss.knn(queries, np.ascontiguousarray(source(chunk), dtype=np.float32), min(kk, chunk.size),
                               metric=faiss.METRIC_INNER_PRODUCT)
            all_s = np.concatenate([best_s, d], axis=1)
            all_i = np.concatenate([best_i, np.where(pos >= 0, chunk[np.clip(pos, 0, None)], -1)], axis=1)
            top = np.argsort(-all_s, axis=1, kind="stable")[:, :kk]
            best_s, best_i = np.take_along_axis(all_s, top, axis=1), np.take_along_axis(all_i, top, axis=1)
        out = np.full((queries.shape[0], k), -1, dtype=np.int64)
        for row in range(queries.shape[0]):
            others = best_i[row][(best_i[row] != query_ids[row]) & (best_i[row] >= 0)][:k]
            out[row, :others.size] = others
        return out

    def _coarse_ranking(self, ivf, queries: np.ndarray, nlist: int) -> np.ndarray:
        """Every list number ordered by its centroid's inner product with each query (best first); queries go
        through the index's pre-transform (OPQ, PCA) first when it has one."""
        faiss = _faiss()
        outer = faiss.downcast_index(self._index)
        if isinstance(outer, faiss.IndexPreTransform):
            for i in range(outer.chain.size()):
                queries = np.ascontiguousarray(outer.chain.at(i).apply(queries), dtype=np.float32)
        quantizer = faiss.downcast_index(ivf.quantizer)
        try:
            centroids = quantizer.reconstruct_n(0, nlist)
        except RuntimeError:  # a quantizer that cannot reconstruct: its own search order
            _, order = quantizer.search(queries, nlist)
            return order.astype(np.int64)
        score = queries @ centroids.T
        if quantizer.metric_type == faiss.METRIC_L2:  # nearest by L2: largest q·c - |c|²/2
            score -= 0.5 * np.einsum("ij,ij->i", centroids, centroids)[None, :]
        return np.argsort(-score, axis=1, kind="stable").astype(np.int64)

    # -- reading -----------------------------------------------------------------------------------------

    def reconstruct(self, ids) -> np.ndarray:
        """The stored (normalised) vectors of ``ids``, float32[n, dim]; exact except for PQ/SQ codes."""
        ids = _as_ids(ids)
        if ids.size == 0:
            return np.empty((0, self._dim), dtype=np.float32)
        missing = ~_in_sorted(ids, self._ids)
        if missing.any():
            raise KeyError(f"ids not in the index: {ids[missing][:10].tolist()}")
        if self._exact is not None:
            return self._exact.vectors(ids)
        return self._index.reconstruct_batch(ids)

    def search(self, queries, k: int, *, allowed_ids=None, params: dict | None = None):
        """Top-``k`` by cosine for each query: (scores float32[q, k], ids int64[q, k]).

        Rows are padded with id -1 and score -inf when fewer than ``k`` vectors qualify. ``allowed_ids``
        restricts results to those ids (FAISS IDSelectorBatch; tight filters are answered exactly).
        ``params``: {"nprobe": int} for IVF types, {"efSearch": int} for HNSW, {"k_factor": int} for refined
        types (candidates re-ranked per result); keys that do not apply to this index type are ignored, unknown
        keys raise ValueError.
        """
        faiss = _faiss()
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise UsageError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        params = dict(params or {})
        unknown = set(params) - {"nprobe", "efSearch", "k_factor"}
        if unknown:
            raise ValueError(f"unknown search parameters: {sorted(unknown)} (known: nprobe, efSearch, k_factor)")
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

        refine = self._exact is not None and self._layout != _STAGING
        kk = k
        if refine:
            k_factor = int(params.get("k_factor", self._k_factor))
            if k_factor < 1:
                raise ValueError(f"k_factor must be at least 1, got {k_factor}")
            kk = max(k, min(k * k_factor, self.ntotal + int(self._tombstones.size)))
        search_params = self._search_params(selector, params, keep)
        with _threads_for(q.shape[0]):
            if search_params is None:
                d, i = self._index.search(q, kk)
            else:
                d, i = self._index.search(q, kk, params=search_params)
        if refine:
            return self._rerank(q, np.asarray(i, dtype=np.int64), k)
        return self._clean(d, i)

    def _rerank(self, q: np.ndarray, candidates: np.ndarray, k: int):
        """Re-score first-stage candidates with their exact vectors; the top ``k`` by exact cosine."""
        nq = q.shape[0]
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        labels = np.full((nq, k), -1, dtype=np.int64)
        step = 64
        for start in range(0, nq, step):
            cand = candidates[start:start + step]
            valid = cand >= 0
            if not valid.any():
                continue
            uniq, inv = np.unique(cand[valid], return_inverse=True)
            vecs = self._exact.vectors(uniq)
            s = np.full(cand.shape, -np.inf, dtype=np.float32)
            rows = np.nonzero(valid)[0]
            s[valid] = np.einsum("ij,ij->i", q[start:start + step][rows], vecs[inv])
            kk = min(k, cand.shape[1])
            top = np.argsort(-s, axis=1, kind="stable")[:, :kk]
            best = np.take_along_axis(s, top, axis=1)
            ids = np.take_along_axis(cand, top, axis=1)
            ids[~np.isfinite(best)] = -1
            scores[start:start + step, :kk] = best
            labels[start:start + step, :kk] = ids
        return scores, labels

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
        if isinstance(inner, faiss.IndexHNSW) or self._exact is not None:
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
        out = {"k_factor": int(self._k_factor)} if self._exact is not None else {}
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is not None:
            return {"nprobe": int(ivf.nprobe), **out}
        inner = _unwrap(self._index)
        if isinstance(inner, faiss.IndexHNSW):
            return {"efSearch": int(inner.hnsw.efSearch), **out}
        return out

    def set_search_defaults(self, params: dict) -> None:
        """Make ``params`` ({"nprobe", "efSearch", "k_factor"}: those that apply) the defaults; saved with the
        index. Before training, IVF / HNSW settings apply to the trained index (FAISS's own defaults until then)."""
        unknown = set(params) - {"nprobe", "efSearch", "k_factor"}
        if unknown:
            raise ValueError(f"unknown search parameters: {sorted(unknown)} (known: nprobe, efSearch, k_factor)")
        if "k_factor" in params:
            self._k_factor = max(1, int(params["k_factor"]))
        # kept (and saved) so that calibration leaves a pinned nprobe / k_factor alone
        self._pending_search = {k: int(v) for k, v in params.items() if k in ("nprobe", "efSearch", "k_factor")}
        self._apply_search_defaults()

    def _apply_search_defaults(self) -> None:
        faiss = _faiss()
        pending = self._pending_search
        if not pending or self._layout == _STAGING:
            return
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is not None and "nprobe" in pending:
            ivf.nprobe = int(min(ivf.nlist, max(1, pending["nprobe"])))
        inner = _unwrap(self._index)
        if isinstance(inner, faiss.IndexHNSW) and "efSearch" in pending:
            inner.hnsw.efSearch = int(pending["efSearch"])
        self._invalidate_gpu()

    @property
    def choice(self) -> dict | None:
        """Why this index type was chosen (index/budget.py's IndexChoice as a dict), as saved with the index."""
        return None if self._choice is None else dict(self._choice)

    def set_choice(self, choice: dict | None) -> None:
        """Record why this type was chosen; saved in the file header."""
        self._choice = None if choice is None else json.loads(json.dumps(choice))

    def memory_bytes(self) -> int:
        """Estimated resident bytes of the CPU index (codes, graph links, ids, centroids, and rows of a refined
        type's exact store added since it was last saved; the saved rows are memory-mapped, see disk_bytes)."""
        faiss = _faiss()
        n_stored = self._ids.size + self._tombstones.size
        total = 40 * n_stored  # ids + their hash-map entries
        ivf = faiss.try_extract_index_ivf(self._index)
        inner = _unwrap(self._index)
        exact = self._exact.resident_bytes() if self._exact is not None else 0
        if ivf is not None:
            if self._exact is not None:
                total = 16 * n_stored  # inverted-list ids + our sorted ids; no direct map
            total += n_stored * int(ivf.code_size) + ivf.nlist * self._dim * 4
            pq = getattr(inner, "pq", None)
            if pq is not None:
                total += int(pq.M) * int(pq.ksub) * int(pq.dsub) * 4
            if _is_fastscan(split_refine(self._factory)[0].split(",")):
                total *= FASTSCAN_RESIDENT_FACTOR
            return int(total + exact)
        if isinstance(inner, faiss.IndexHNSW):
            hnsw = inner.hnsw
            storage = faiss.downcast_index(inner.storage)
            total += int(storage.code_size) * n_stored if hasattr(storage, "code_size") else 4 * self._dim * n_stored
            total += hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
            return int(total + exact)
        code_size = getattr(inner, "code_size", 4 * self._dim)
        return int(total + int(code_size) * n_stored + exact)

    def disk_bytes(self) -> int:
        """Estimated bytes of the saved files: the vector file and, for a refined type, its exact-vector file."""
        n = self.ntotal
        total = self.memory_bytes() - (self._exact.resident_bytes() if self._exact is not None else 0)
        if self._exact is not None:
            total += self._exact.row_bytes() * n
        return int(total)

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
            "disk_bytes": self.disk_bytes(),
            "refine": self._refine,
            "gpu": bool(self._use_gpu and self._gpu_index is not None),
            "gpu_note": self._gpu_note,
        }
        if self._layout == _STAGING:
            info["staging"] = (f"exact search until {self._train_needed} vectors are collected to train "
                               f"{self._factory} ({self.ntotal} so far)")
        if self._tombstones.size:
            info["tombstones"] = int(self._tombstones.size)
        if self._choice is not None:
            info["choice"] = dict(self._choice)
        if self._calibration is not None:
            info["nprobe_calibration"] = dict(self._calibration)
        return info

    # -- persistence -------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, *, modality: str | None = None) -> None:
        """Write atomically: a temp file in the same folder, fsync, os.replace, fsync the folder.

        ``modality`` is recorded in the header (a collection checks it on load, so a file of another modality
        copied over this one's name is caught). A refined type first writes its exact vectors to the sibling
        file ``sidecar_path(path)`` (also atomically); the header records that file's size and CRC, and the index
        maps the written file from then on.
        """
        faiss = _faiss()
        path = Path(path)
        exact_meta = None
        if self._exact is not None:
            exact_meta = self._exact.write(sidecar_path(path), self._ids)
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
        if exact_meta is not None:
            header["exact"] = exact_meta
            header["k_factor"] = int(self._k_factor)
        if self._pending_search:
            header["search"] = dict(self._pending_search)
        if self._choice is not None:
            header["choice"] = self._choice
        if self._calibration is not None:
            header["calibration"] = self._calibration
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
        if exact_meta is not None:  # from now on the saved rows are read from the file, not kept in memory
            self._exact = ExactStore.open(sidecar_path(path), self._dim, exact_meta, index_path=path, verify=False)

    @classmethod
    def load(cls, path: str | os.PathLike, *, use_gpu: bool | None = None) -> VectorIndex:
        """Read a file written by :meth:`save`; a damaged file raises CollectionError.

        A missing file raises FileNotFoundError; a link, a special file or an unreadable file is a CollectionError.
        """
        try:
            return cls._read(path, use_gpu=use_gpu)
        finally:
            release_freed_heap()  # after the reader's temporaries are gone

    @classmethod
    def _read(cls, path: str | os.PathLike, *, use_gpu: bool | None = None) -> VectorIndex:
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
            exact_meta = meta.get("exact")
            if (exact_meta is None) != (self._refine is None) or \
                    (exact_meta is not None and exact_meta.get("dtype") != self._refine):
                raise ValueError(f"exact vectors {exact_meta!r} do not match {self._factory}")
            self._k_factor = int(meta.get("k_factor", REFINE_K_FACTOR))
            self._pending_search = {str(k): int(v) for k, v in dict(meta.get("search") or {}).items()}
            self._choice = dict(meta["choice"]) if meta.get("choice") is not None else None
            calibration = meta.get("calibration")
            self._calibration = None if calibration is None else {**dict(calibration), "n": int(calibration["n"])}
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise _damaged(path, f"bad header ({type(exc).__name__}: {exc})") from None
        if index.d != self._dim:
            raise _damaged(path, f"index has {index.d} dimensions, header says {self._dim}")
        self._index = index
        stored = self._stored_ids()
        self._ids = np.setdiff1d(stored, self._tombstones, assume_unique=False)
        if self._ids.size != int(meta.get("ntotal", self._ids.size)):
            raise _damaged(path, "id count does not match the header")
        if exact_meta is not None:
            if int(exact_meta.get("n", -1)) != self._ids.size:
                raise _damaged(path, "its exact vectors do not match its ids")
            self._exact = ExactStore.open(sidecar_path(path), self._dim, exact_meta, index_path=path)
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
