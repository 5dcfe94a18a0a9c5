"""VectorIndex: one FAISS index for one modality, addressed by int64 ids.

Vectors are L2-normalised on the way in (add and search), so the inner product FAISS computes is the
cosine similarity. Index types are named only by FAISS index-factory strings ("Flat", "HNSW32",
"IVF1024,Flat", "IVF4096,PQ32", ...; index/factory.py reads them).

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
every staged vector in, and adds directly from then on. ``train(sample)`` trains explicitly instead. After
training, an IVF's nprobe (and a refined type's k_factor) are calibrated on its own vectors (index/local/tuning.py).

Refined types ("IVF4096,PQ64x4fs,Refine(SQfp16)", "...,RFlat"; FAISS's spelling of a refine stage): the first
stage (any factory string; fast-scan PQ, RaBitQ, SQ4, ...) returns k · k_factor candidates, re-scored with exact
float32 / float16 vectors kept in a sibling file ``<name>.vecs`` that is memory-mapped (index/local/exact.py), so
resident memory is the codes and ids only. FAISS's IndexRefine is not used: it addresses vectors by position and
cannot remove. A refined IVF keeps no direct map (reconstruct reads the exact store, removal scans the lists).
Fast-scan codes cannot be looked up by id, so a fast-scan type needs a refine stage.

Removal: types with ``remove_ids`` (Flat, IVF, PQ, SQ) remove in place. HNSW has no ``remove_ids``: removed ids
become tombstones that searches skip (an IDSelector), and once tombstones exceed ``TOMBSTONE_COMPACT_FRACTION``
of the stored vectors the index is rebuilt from its own stored vectors (cost of a fresh build, O(n log n)
distance computations; re-adding a tombstoned id also compacts first).

``save`` / ``load`` go through one self-checking file (index/local/vector_file.py): a JSON header (factory, dim,
tombstones, the modality when the caller names it, search defaults, why the type was chosen, and a refined
type's exact-vector file length and CRC), the FAISS index, a CRC32 trailer. A damaged file is a clear
``CollectionError``, never a crash. A GPU, when there is one, searches a copy (index/local/gpu.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from xsearch.core.errors import UsageError

from ..factory import is_fastscan, split_refine
from . import selection, tuning
from .exact import ExactStore, sidecar_path
from .faisslib import (
    is_hnsw,
    load_faiss,
    release_freed_heap,
    resident_bytes,
    stored_ids,
    threads_for,
    training_points_needed,
)
from .gpu import GpuCopy, gpu_available
from .idsets import as_ids, in_sorted, merge_sorted
from .vector_file import damaged, read_vector_file, write_vector_file

#: IVF / PQ training uses at most this many points per centroid (FAISS's own cap is 256; k-means time is linear
#: in it, and recall after re-ranking did not move between 64 and 256 on the clustered benchmark).
TRAIN_POINTS_PER_CENTROID = 64
#: HNSW: tombstoned share of stored vectors that triggers a rebuild.
TOMBSTONE_COMPACT_FRACTION = 0.10
_STAGING = "staging"  # layout of an untrained index collecting vectors in an exact Flat index
_IDMAP = "idmap"
_NATIVE_IVF = "ivf"
_CHUNK = 65536


class VectorIndex:
    """One FAISS inner-product index over L2-normalised vectors, addressed by int64 ids."""

    def __init__(self, dim: int, factory: str, *, use_gpu: bool | None = None):
        """Use :meth:`create` or :meth:`load`."""
        self._dim = int(dim)
        self._factory = factory
        self._first, self._refine = split_refine(factory)  # first-stage factory, exact-vector type or None
        self._exact: ExactStore | None = None  # the refine stage's exact vectors (index/local/exact.py)
        self._k_factor = tuning.REFINE_K_FACTOR
        self._choice: dict | None = None  # why this type was chosen (index/local/budget.py), saved in the header
        self._pending_search: dict[str, int] = {}  # nprobe / efSearch to apply once trained (set_search_defaults)
        self._calibration: dict | None = None  # the last nprobe calibration (IVF types; see _calibrate)
        self._index = None  # the CPU index, always the source of truth
        self._layout = _STAGING
        self._train_needed = 0
        self._ids = np.empty(0, dtype=np.int64)  # live ids, sorted
        self._tombstones = np.empty(0, dtype=np.int64)  # removed from an HNSW but still stored, sorted
        self._gpu = GpuCopy(gpu_available() if use_gpu is None else bool(use_gpu))
        self._modality: str | None = None  # the modality named in the file this index was loaded from

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
        faiss = load_faiss()
        if self._factory.strip().upper().startswith("IDMAP"):
            raise UsageError(f"index type '{self._factory}' must not include IDMap: xsearch adds the id map itself")
        try:
            base = faiss.index_factory(self._dim, self._first, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError:
            raise UsageError(
                f"'{self._factory}' is not a FAISS index-factory string for {self._dim} dimensions; "
                "use e.g. Flat, HNSW32, IVF1024,Flat or IVF4096,PQ32"
            ) from None
        tuning.configure_new(base)
        ivf = faiss.try_extract_index_ivf(base)
        if ivf is None:
            return faiss.IndexIDMap2(base), _IDMAP
        if isinstance(faiss.downcast_index(ivf), faiss.IndexIVFFastScan) and self._refine is None:
            raise UsageError(f"'{self._factory}' stores fast-scan codes, which cannot be looked up by id; add a "
                             f"refine stage, e.g. '{self._factory},Refine(SQfp16)'",
                             code="usage.bad_index_factory", factory=self._factory)
        if self._refine is None:  # a refined type reconstructs from its exact store and removes by scanning
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        return base, _NATIVE_IVF

    def _install_empty(self, exact: ExactStore | None = None) -> None:
        """A fresh empty index of this factory type; a refined type gets ``exact`` or a new exact store."""
        faiss = load_faiss()
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
            self._train_needed = training_points_needed(target)
        self._ids = np.empty(0, dtype=np.int64)
        self._tombstones = np.empty(0, dtype=np.int64)
        self._calibration = None
        self._gpu.invalidate()

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
        return bool(in_sorted(np.array([item_id], dtype=np.int64), self._ids)[0])

    # -- writing -----------------------------------------------------------------------------------------

    def add(self, ids, vectors) -> None:
        """Add ``vectors`` (float32[n, dim], normalised here) under ``ids`` (int64[n], new and distinct)."""
        ids = as_ids(ids)
        vecs = self._as_vectors(vectors, what="vectors")
        if ids.size != vecs.shape[0]:
            raise ValueError(f"{ids.size} ids for {vecs.shape[0]} vectors")
        if ids.size == 0:
            return
        uniq = np.unique(ids)
        if uniq.size != ids.size:
            raise ValueError("ids in one add() call must be distinct")
        if ids.min() < 0:
            raise ValueError("ids must be non-negative")
        dup = in_sorted(uniq, self._ids)
        if dup.any():
            raise ValueError(f"ids already in the index (remove them first): {uniq[dup][:10].tolist()}")
        if in_sorted(uniq, self._tombstones).any():
            self.compact()
        if self._exact is not None:
            self._exact.add(ids, vecs)
        self._add_first_stage(ids, vecs, uniq)

    def _add_first_stage(self, ids: np.ndarray, vecs: np.ndarray, uniq: np.ndarray) -> None:
        self._index.add_with_ids(vecs, ids)
        self._ids = merge_sorted(self._ids, uniq)
        self._gpu.invalidate()
        if self._layout == _STAGING and self.ntotal >= self._train_needed:
            self._move_into_trained(None)
        elif self._calibration is not None and self.ntotal >= tuning.CALIBRATION_GROWTH * self._calibration["n"] \
                and tuning.exact_vectors_at_hand(self._index, refined=self._exact is not None):
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
        faiss = load_faiss()
        ids = np.unique(as_ids(ids))
        ids = ids[in_sorted(ids, self._ids)]
        if ids.size == 0:
            return 0
        if not is_hnsw(self._index):
            sel = faiss.IDSelectorArray(ids.size, faiss.swig_ptr(ids))
            removed = self._index.remove_ids(sel)
            if removed != ids.size:
                raise RuntimeError(f"FAISS removed {removed} of {ids.size} ids")
        else:
            self._tombstones = merge_sorted(self._tombstones, ids)
        self._ids = np.setdiff1d(self._ids, ids, assume_unique=True)
        self._gpu.invalidate()
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
            self._refill(ids, source, fill_exact=self._exact is not None and keep is None)
        except BaseException:
            (self._factory, self._first, self._refine, self._exact, self._index, self._layout, self._train_needed,
             self._ids, self._tombstones, self._calibration) = old
            raise

    def _refill(self, ids: np.ndarray, source, *, fill_exact: bool) -> None:
        """Put ``ids`` (their vectors from ``source``) into this freshly emptied index: trained in one go when there
        are enough of them, else added as usual."""
        if ids.size and self._layout == _STAGING and ids.size >= self._train_needed:
            if fill_exact:
                for start in range(0, ids.size, _CHUNK):
                    self._exact.add(ids[start:start + _CHUNK], source(ids[start:start + _CHUNK]))
            self._ids = ids
            self._move_into_trained(None, source=source)
            return
        for start in range(0, ids.size, _CHUNK):
            chunk = ids[start:start + _CHUNK]
            vecs = source(chunk)
            if fill_exact:
                self._exact.add(chunk, vecs)
            self._add_first_stage(chunk, np.ascontiguousarray(vecs, dtype=np.float32), chunk)

    def _vector_source(self):
        """ids → float32 vectors of this index as it is now (exact store for refined types, else FAISS)."""
        exact, index = self._exact, self._index
        if exact is not None:
            return exact.vectors

        def reconstruct(ids):
            return index.reconstruct_batch(np.ascontiguousarray(ids, dtype=np.int64)) if len(ids) else \
                np.empty((0, self._dim), dtype=np.float32)

        return reconstruct

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
        self._ids = np.unique(ids)
        self._tombstones = np.empty(0, dtype=np.int64)
        self._gpu.invalidate()
        self._calibration = None
        self._apply_search_defaults()  # a pinned nprobe first: k_factor is calibrated at the nprobe searches use
        self._calibrate(source)

    def _calibrate(self, source=None) -> None:
        """Calibrate an IVF's nprobe and a refined type's k_factor on its own vectors (index/local/tuning.py),
        leaving alone what a caller pinned (set_search_defaults). Saved in the file header, shown by describe()."""
        if self._layout != _NATIVE_IVF or self.ntotal == 0:
            return
        pin_nprobe = "nprobe" in self._pending_search
        pin_k_factor = self._exact is None or "k_factor" in self._pending_search
        if pin_nprobe and pin_k_factor:
            return
        record = tuning.calibrate(self._index, self._ids, source or self._vector_source(), pin_nprobe=pin_nprobe,
                                  pin_k_factor=pin_k_factor)
        if record is None:
            return
        self._calibration = record
        if "k_factor" in record:
            self._k_factor = record["k_factor"]
        if record["queries"]:
            self._gpu.invalidate()

    # -- reading -----------------------------------------------------------------------------------------

    def reconstruct(self, ids) -> np.ndarray:
        """The stored (normalised) vectors of ``ids``, float32[n, dim]; exact except for PQ/SQ codes."""
        ids = as_ids(ids)
        if ids.size == 0:
            return np.empty((0, self._dim), dtype=np.float32)
        missing = ~in_sorted(ids, self._ids)
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
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise UsageError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        params = dict(params or {})
        tuning.check_keys(params)
        q = self._as_vectors(queries, what="queries")

        def nothing():
            return np.full((q.shape[0], k), -np.inf, dtype=np.float32), np.full((q.shape[0], k), -1, dtype=np.int64)

        if q.shape[0] == 0 or self.ntotal == 0:
            return nothing()
        keep = []  # keeps numpy buffers and selectors alive during the FAISS call
        selector = selection.selector(self._index, self._ids, self._tombstones, allowed_ids, keep)
        if selector is False:
            return nothing()
        if isinstance(selector, np.ndarray):  # a tight filter
            return selection.exact_search(q, k, selector, self.reconstruct(selector))
        if selector is None and self._gpu.enabled:
            gpu = self._gpu.get(self._index, self._factory, refined=self._exact is not None)
            if gpu is not None:
                return self._clean(*self._gpu.search(gpu, self._index, q, k, params))
        refine = self._exact is not None and self._layout != _STAGING
        kk = k
        if refine:
            k_factor = int(params.get("k_factor", self._k_factor))
            if k_factor < 1:
                raise ValueError(f"k_factor must be at least 1, got {k_factor}")
            kk = max(k, min(k * k_factor, self.ntotal + int(self._tombstones.size)))
        # no parameters and no selector: FAISS's defaults, without unwrapping the index per query (single queries)
        search_params = tuning.search_params(self._index, selector, params, keep) if params or selector else None
        with threads_for(q.shape[0]):
            if search_params is None:
                d, i = self._index.search(q, kk)
            else:
                d, i = self._index.search(q, kk, params=search_params)
        if refine:
            return self._exact.rerank(q, np.asarray(i, dtype=np.int64), k)
        return self._clean(d, i)

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
        # np.linalg.norm's own arithmetic, and its result doubles as the finiteness check: a NaN or infinite value
        # makes its row's norm non-finite (so does an overflowing square: then the element-wise check decides)
        norms = np.sqrt((arr * arr).sum(axis=1, keepdims=True))
        if not np.isfinite(norms).all() and not np.isfinite(arr).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        if (norms == 0).any():
            raise ValueError(f"{what} contain an all-zero vector, which has no direction")
        arr /= norms
        return np.ascontiguousarray(arr)

    # -- description -------------------------------------------------------------------------------------

    def search_defaults(self) -> dict:
        """The search parameters used when a search passes none."""
        if self._layout == _STAGING:
            return {}
        return tuning.search_defaults(self._index, self._k_factor if self._exact is not None else None)

    def set_search_defaults(self, params: dict) -> None:
        """Make ``params`` ({"nprobe", "efSearch", "k_factor"}: those that apply) the defaults; saved with the
        index. Before training, IVF / HNSW settings apply to the trained index (FAISS's own defaults until then)."""
        tuning.check_keys(params)
        if "k_factor" in params:
            self._k_factor = max(1, int(params["k_factor"]))
        # kept (and saved) so that calibration leaves a pinned nprobe / k_factor alone
        self._pending_search = {k: int(v) for k, v in params.items() if k in tuning.SEARCH_KEYS}
        self._apply_search_defaults()

    def _apply_search_defaults(self) -> None:
        if not self._pending_search or self._layout == _STAGING:
            return
        tuning.apply_search_defaults(self._index, self._pending_search)
        self._gpu.invalidate()

    @property
    def choice(self) -> dict | None:
        """Why this index type was chosen (index/local/budget.py's FactoryChoice as a dict), as saved with the
        index."""
        return None if self._choice is None else dict(self._choice)

    def set_choice(self, choice: dict | None) -> None:
        """Record why this type was chosen; saved in the file header."""
        self._choice = None if choice is None else json.loads(json.dumps(choice))

    def memory_bytes(self) -> int:
        """Estimated resident bytes of the CPU index (codes, graph links, ids, centroids, and rows of a refined
        type's exact store added since it was last saved; the saved rows are memory-mapped, see disk_bytes)."""
        total = resident_bytes(self._index, dim=self._dim, n_stored=int(self._ids.size + self._tombstones.size),
                               refined=self._exact is not None, fastscan=is_fastscan(self._factory))
        return int(total + (self._exact.resident_bytes() if self._exact is not None else 0))

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
            "gpu": bool(self._gpu.enabled and self._gpu.built),
            "gpu_note": self._gpu.note,
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
        path = Path(path)
        exact_meta = None
        if self._exact is not None:
            exact_meta = self._exact.write(sidecar_path(path), self._ids)
        header = {"factory": self._factory, "dim": self._dim, "layout": self._layout,
                  "train_needed": self._train_needed, "ntotal": self.ntotal, "tombstones": self._tombstones.tolist()}
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
        write_vector_file(path, header, self._index)
        if exact_meta is not None:  # from now on the saved rows are read from the file, not kept in memory
            self._exact = ExactStore.open(sidecar_path(path), self._dim, exact_meta, index_path=path, verify=False)

    @classmethod
    def load(cls, path: str | os.PathLike, *, use_gpu: bool | None = None) -> VectorIndex:
        """Read a file written by :meth:`save`; a damaged file raises CollectionError.

        A missing file raises FileNotFoundError; a link, a special file or an unreadable file is a CollectionError.
        """
        try:
            path = Path(path)
            meta, index = read_vector_file(path)
            return cls._from_file(path, meta, index, use_gpu=use_gpu)
        finally:
            release_freed_heap()  # after the reader's temporaries are gone

    @classmethod
    def _from_file(cls, path: Path, meta: dict, index, *, use_gpu: bool | None) -> VectorIndex:
        """An index from a vector file's header and FAISS index, checked against each other."""
        try:
            self = cls(int(meta["dim"]), str(meta["factory"]), use_gpu=use_gpu)
            self._apply_header(meta)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise damaged(path, f"bad header ({type(exc).__name__}: {exc})") from None
        if index.d != self._dim:
            raise damaged(path, f"index has {index.d} dimensions, header says {self._dim}")
        self._index = index
        stored = stored_ids(index, id_map=self._layout in (_IDMAP, _STAGING))
        self._ids = np.setdiff1d(stored, self._tombstones, assume_unique=False)
        if self._ids.size != int(meta.get("ntotal", self._ids.size)):
            raise damaged(path, "id count does not match the header")
        exact_meta = meta.get("exact")
        if exact_meta is not None:
            if int(exact_meta.get("n", -1)) != self._ids.size:
                raise damaged(path, "its exact vectors do not match its ids")
            self._exact = ExactStore.open(sidecar_path(path), self._dim, exact_meta, index_path=path)
        return self

    def _apply_header(self, meta: dict) -> None:
        """Layout, tombstones, modality, search settings, choice and calibration from a file header."""
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
        self._k_factor = int(meta.get("k_factor", tuning.REFINE_K_FACTOR))
        self._pending_search = {str(k): int(v) for k, v in dict(meta.get("search") or {}).items()}
        self._choice = dict(meta["choice"]) if meta.get("choice") is not None else None
        calibration = meta.get("calibration")
        self._calibration = None if calibration is None else {**dict(calibration), "n": int(calibration["n"])}
