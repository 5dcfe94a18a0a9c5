"""Collection: a directory holding everything one index of a media library needs.

Layout::

    <collection>/
        manifest.json            format_version, model_id, model_spec, dims and factory per modality, created_at
        catalog.sqlite           files and items (index/catalog.py), WAL mode
        <modality>.<gen>.faiss   the vector index of each modality (index/vectors.py); the catalog names the
                                 committed one (table vector_files), <gen> counts commits that changed it
        lock                     fcntl.flock'ed by the one writer; holds its pid

Concurrency: one writer at a time (an exclusive flock; a second writer waits up to ``wait_s`` and then gets
CollectionLockedError). Readers take no lock: SQLite WAL keeps the last committed catalog readable and vector
files are never modified once written, so a reader searches while a writer works. A reader loads the vector
file the catalog names and reloads when a commit names a newer one; items deleted after it loaded are simply
absent from ``catalog.items(ids)``, so callers join search results with it and drop absent ids.

Durability: :meth:`Collection.commit` saves every changed vector index under a NEW file name (temp file,
fsync, rename, fsync folder) and only then commits the catalog, whose transaction also switches
``vector_files`` to the new names; the old files are deleted after the commit. The catalog commit is therefore
the single commit point for catalog and vectors together: a crash at any moment leaves the previous commit
intact (files of an unfinished commit are deleted when the next writer opens). A crash loses at most the
changes since the last commit; the caller picks the batch size. :meth:`Collection.verify_and_repair` (run
whenever a writer opens) still checks that catalog and vectors agree, for damage the protocol cannot prevent
(a deleted or replaced index file): vectors the catalog does not know are dropped, and files whose vectors are
missing are deleted from the catalog so that the next ``xsearch index`` re-embeds them.

Write through the Collection for anything that touches items (add, remove_files, clear_files) so that
catalog and vectors stay in step; file-only catalog calls (get_file, upsert_file, rename_file, touch_file,
find_by_hash, files, filter_ids, items, counts) go through ``collection.catalog`` directly.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xsearch.errors import CollectionError, CollectionLockedError

from . import vectors as _vectors
from .atomic import atomic_write, fsync_dir
from .catalog import Catalog
from .vectors import VectorIndex, choose_factory, gpu_available

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite"
LOCK = "lock"
AUTO = "auto"


def _next_vector_file(modality: str, current: str | None) -> str:
    """``<modality>.<generation>.faiss`` with the generation after ``current``'s."""
    generation = 0
    if current:
        try:
            generation = int(current.rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            generation = 0
    return f"{modality}.{generation + 1:06d}.faiss"


def _write_json_atomic(path: Path, data: dict) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


class _WriterLock:
    """An exclusive fcntl.flock on ``<collection>/lock``, holding the owner's pid."""

    def __init__(self, root: Path, wait_s: float):
        self.path = root / LOCK
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(0.0, float(wait_s))
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(self._fd)
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    holder = self._holder_pid()
                    os.close(self._fd)
                    raise CollectionLockedError(
                        f"collection {root} is being written by another process (pid {holder}); wait for it "
                        "to finish (or stop it) and try again"
                    ) from None
                time.sleep(min(0.05, left))
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def _holder_pid(self) -> str:
        try:
            text = self.path.read_text().strip()
        except OSError:
            text = ""
        return text or "unknown"

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None


@dataclass
class RepairReport:
    """What verify_and_repair found and fixed."""

    orphan_vectors_dropped: dict[str, int] = field(default_factory=dict)
    items_without_vectors: dict[str, int] = field(default_factory=dict)
    files_to_reembed: list[str] = field(default_factory=list)
    stale_files_removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.orphan_vectors_dropped or self.items_without_vectors or self.stale_files_removed)

    def __str__(self) -> str:
        if not self.changed:
            return "collection is consistent"
        parts = []
        if self.orphan_vectors_dropped:
            parts.append("dropped vectors the catalog did not know ("
                         + ", ".join(f"{m}: {n}" for m, n in sorted(self.orphan_vectors_dropped.items())) + ")")
        if self.files_to_reembed:
            parts.append(f"{len(self.files_to_reembed)} file(s) had missing vectors and will be re-embedded by the "
                         "next `xsearch index`")
        if self.stale_files_removed:
            parts.append(f"removed {len(self.stale_files_removed)} file(s) left by an interrupted commit")
        return "repaired the collection: " + "; ".join(parts)


class Collection:
    """A collection directory: manifest, catalog, one vector index per modality, writer lock."""

    def __init__(self, root: Path, manifest: dict, catalog: Catalog, lock: _WriterLock | None):
        """Use :meth:`create`, :meth:`open` or :meth:`open_or_create`."""
        self.path = root
        self._manifest = manifest
        self.catalog = catalog
        self._lock = lock
        self._indexes: dict[str, VectorIndex] = {}
        self._loaded_files: dict[str, str | None] = {}  # modality -> vector file its loaded index came from
        self._dirty: set[str] = set()
        self.repair_report: RepairReport | None = None

    # -- opening -----------------------------------------------------------------------------------------

    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        return (Path(path) / MANIFEST).is_file()

    @classmethod
    def create(cls, path: str | os.PathLike, *, model_id: str, model_spec: str, dims: dict[str, int],
               factory: str | dict[str, str] = AUTO, memory_budget_bytes: int | None = None,
               wait_s: float = 0.0) -> Collection:
        """Create a collection and return it open for writing.

        ``factory``: "auto" (choose_factory by size, switched by maybe_reindex) or a FAISS factory string, for
        every modality or as {modality: factory}. ``memory_budget_bytes`` caps each auto-chosen index.
        """
        root = Path(path)
        if cls.exists(root):
            raise CollectionError(f"a collection already exists at {root}; open it or choose another path")
        if not dims or any(int(d) <= 0 for d in dims.values()):
            raise ValueError(f"dims must map each modality to a positive dimension, got {dims!r}")
        factories = dict(factory) if isinstance(factory, dict) else {m: factory for m in dims}
        if set(factories) != set(dims):
            raise ValueError(f"factory modalities {sorted(factories)} differ from dims {sorted(dims)}")
        for modality, fac in factories.items():
            if fac != AUTO:
                VectorIndex.create(int(dims[modality]), fac, use_gpu=False)  # rejects a bad factory string now
        root.mkdir(parents=True, exist_ok=True)
        lock = _WriterLock(root, wait_s)
        try:
            if cls.exists(root):
                raise CollectionError(f"a collection already exists at {root}; open it or choose another path")
            catalog = Catalog.open(root / CATALOG)
            manifest = {
                "format_version": FORMAT_VERSION,
                "model_id": model_id,
                "model_spec": model_spec,
                "dims": {m: int(d) for m, d in dims.items()},
                "factory": factories,
                "memory_budget_bytes": memory_budget_bytes,
                "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            _write_json_atomic(root / MANIFEST, manifest)
        except BaseException:
            lock.release()
            raise
        self = cls(root, manifest, catalog, lock)
        self.repair_report = RepairReport()
        return self

    @classmethod
    def open(cls, path: str | os.PathLike, *, writer: bool = False, wait_s: float = 0.0) -> Collection:
        """Open an existing collection; a writer takes the lock (waiting up to ``wait_s``) and repairs it."""
        root = Path(path)
        if not cls.exists(root):
            raise CollectionError(f"no collection at {root}; create it with `xsearch index <folder>`")
        lock = _WriterLock(root, wait_s) if writer else None
        try:
            manifest = cls._read_manifest(root)
            catalog = Catalog.open(root / CATALOG, readonly=not writer)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self = cls(root, manifest, catalog, lock)
        if writer:
            try:
                self.repair_report = self.verify_and_repair()
            except BaseException:
                self.close()
                raise
        return self

    @classmethod
    def open_or_create(cls, path: str | os.PathLike, *, model_id: str, model_spec: str, dims: dict[str, int],
                       factory: str | dict[str, str] = AUTO, memory_budget_bytes: int | None = None,
                       wait_s: float = 0.0) -> Collection:
        """Open for writing (checking the model) when it exists, else create it."""
        if not cls.exists(path):
            try:
                return cls.create(path, model_id=model_id, model_spec=model_spec, dims=dims, factory=factory,
                                  memory_budget_bytes=memory_budget_bytes, wait_s=wait_s)
            except CollectionError:
                if not cls.exists(path):  # someone else created it in between: open theirs below
                    raise
        self = cls.open(path, writer=True, wait_s=wait_s)
        try:
            self.check_model(model_id)
            for modality, dim in dims.items():
                have = self.dims.get(modality)
                if have is not None and have != int(dim):
                    raise CollectionError(
                        f"collection {self.path} stores {modality} vectors of {have} dimensions, not {dim}; "
                        "re-index with `xsearch index <folder> --rebuild` or use a new collection"
                    )
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def delete(cls, path: str | os.PathLike, *, wait_s: float = 0.0) -> None:
        """Delete a collection's files (e.g. to rebuild it with another model) under its writer lock.

        The manifest goes first, so readers see "no collection" rather than a half-deleted one. Files that are
        not a collection's (anything else the user put in the folder) are left alone.
        """
        root = Path(path)
        if not cls.exists(root):
            raise CollectionError(f"no collection at {root}; create it with `xsearch index <folder>`")
        lock = _WriterLock(root, wait_s)
        try:
            (root / MANIFEST).unlink(missing_ok=True)
            fsync_dir(root)
            for name in (CATALOG, CATALOG + "-wal", CATALOG + "-shm"):
                (root / name).unlink(missing_ok=True)
            for stale in [*root.glob("*.faiss"), *root.glob(".*.tmp")]:
                stale.unlink(missing_ok=True)
        finally:
            lock.release()  # the lock file itself stays: unlinking it would let two writers lock different files

    @staticmethod
    def _read_manifest(root: Path) -> dict:
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
            version = int(manifest["format_version"])
            manifest["model_id"], manifest["dims"], manifest["factory"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CollectionError(
                f"manifest {root / MANIFEST} is damaged ({type(exc).__name__}); move the collection aside and run "
                "`xsearch index` on your folders to rebuild it"
            ) from None
        if version > FORMAT_VERSION:
            raise CollectionError(
                f"collection {root} has format version {version}, newer than this xsearch supports "
                f"({FORMAT_VERSION}); upgrade xsearch to open it"
            )
        return manifest

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self._lock is not None

    def close(self) -> None:
        """Discard uncommitted changes, close the catalog and release the writer lock."""
        try:
            if self.writable and (self._dirty or self.catalog.in_transaction):
                self.rollback()
            self.catalog.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Commit on a clean exit (writers), discard on an exception, then close."""
        try:
            if exc_type is None and self.writable:
                self.commit()
        finally:
            self.close()

    # -- metadata ----------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._manifest["model_id"]

    @property
    def model_spec(self) -> str:
        return self._manifest.get("model_spec", "")

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(d) for m, d in self._manifest["dims"].items()}

    @property
    def modalities(self) -> list[str]:
        return sorted(self._manifest["dims"])

    @property
    def manifest(self) -> dict:
        return json.loads(json.dumps(self._manifest))

    def check_model(self, model_id: str) -> None:
        """Raise CollectionError when this collection was built with another model."""
        if model_id != self.model_id:
            raise CollectionError(
                f"collection {self.path} was built with model {self.model_id!r}, not {model_id!r}; re-index it "
                "with `xsearch index <folder> --rebuild` or use a new collection"
            )

    # -- vector indexes ----------------------------------------------------------------------------------

    def _policy(self, modality: str) -> str:
        return self._manifest["factory"].get(modality, AUTO)

    def _modality_dim(self, modality: str) -> int:
        try:
            return int(self._manifest["dims"][modality])
        except KeyError:
            raise ValueError(f"collection {self.path} has no {modality} index (it has {self.modalities})") from None

    def index(self, modality: str) -> VectorIndex:
        """The vector index of ``modality``: loaded on first use; a reader reloads it after a newer commit."""
        dim = self._modality_dim(modality)
        if modality in self._indexes and self.writable:
            return self._indexes[modality]
        for attempt in range(20):
            name = self.catalog.vector_files().get(modality)
            if modality in self._indexes and self._loaded_files.get(modality) == name:
                return self._indexes[modality]
            if name is None:
                policy = self._policy(modality)
                index = VectorIndex.create(dim, choose_factory(0, dim) if policy == AUTO else policy)
                break
            try:
                index = VectorIndex.load(self.path / name)
                break
            except FileNotFoundError:
                if self.writable:  # lost file: start empty, verify_and_repair re-queues its files
                    index = VectorIndex.create(dim, choose_factory(0, dim) if self._policy(modality) == AUTO
                                               else self._policy(modality))
                    break
                time.sleep(0.05)  # a writer just replaced it: read the new name
        else:
            raise CollectionError(
                f"vector index {self.path / name} is missing; run `xsearch index` on your folders to re-embed "
                "the files it held"
            )
        if index.dim != dim:
            raise CollectionError(
                f"vector index {self.path / name} has {index.dim} dimensions but the collection expects {dim}; "
                "delete it and run `xsearch index` on your folders again, which re-embeds the files it held"
            )
        self._indexes[modality] = index
        self._loaded_files[modality] = name
        return index

    def _require_writer(self) -> None:
        if not self.writable:
            raise CollectionError(f"collection {self.path} is open read-only")

    # -- writing -----------------------------------------------------------------------------------------

    def add(self, modality: str, file_id: int, offsets: Sequence[float], vectors,
            snippets: Sequence[str | None] | None = None) -> np.ndarray:
        """Add one item per offset to file ``file_id``: catalog rows and vectors under the same ids."""
        self._require_writer()
        index = self.index(modality)
        vecs = index.normalized(vectors)
        if vecs.shape[0] != len(offsets):
            raise ValueError(f"{vecs.shape[0]} vectors for {len(offsets)} offsets")
        ids = np.asarray(self.catalog.add_items(file_id, modality, offsets, snippets), dtype=np.int64)
        try:
            index.add(ids, vecs)
        except BaseException:
            self.catalog.delete_items(ids.tolist())
            raise
        self._dirty.add(modality)
        return ids

    def remove_files(self, file_ids: Iterable[int]) -> dict[str, int]:
        """Delete files, their items and their vectors; returns vectors removed per modality."""
        self._require_writer()
        return self._drop_vectors(self.catalog.delete_files(file_ids))

    def clear_files(self, file_ids: Iterable[int]) -> dict[str, int]:
        """Delete the items and vectors of files but keep the file rows (to re-embed changed files)."""
        self._require_writer()
        return self._drop_vectors(self.catalog.delete_items_of(file_ids))

    def _drop_vectors(self, item_ids: dict[str, np.ndarray]) -> dict[str, int]:
        removed = {}
        for modality, ids in item_ids.items():
            if modality in self._manifest["dims"] and ids.size:
                removed[modality] = self.index(modality).remove(ids)
                self._dirty.add(modality)
        return removed

    def commit(self) -> None:
        """Save every changed vector index to a new file (atomically), THEN commit the catalog, which
        switches to the new files in the same transaction; then delete the replaced files."""
        self._require_writer()
        current = self.catalog.vector_files()
        written: dict[str, str] = {}
        try:
            for modality in sorted(self._dirty):
                name = _next_vector_file(modality, current.get(modality))
                self._indexes[modality].save(self.path / name)
                written[modality] = name
                self.catalog.set_vector_file(modality, name)
            self.catalog.commit()
        except BaseException:
            for name in written.values():
                (self.path / name).unlink(missing_ok=True)
            raise
        self._loaded_files.update(written)
        self._dirty.clear()
        for modality, name in written.items():
            old = current.get(modality)
            if old and old != name:
                (self.path / old).unlink(missing_ok=True)

    def rollback(self) -> None:
        """Discard every change since the last commit (catalog and vectors)."""
        self._require_writer()
        self.catalog.rollback()
        for modality in self._dirty:
            self._indexes.pop(modality, None)
        self._dirty.clear()

    def maybe_reindex(self) -> dict[str, tuple[str, str]]:
        """For "auto" modalities, switch index type when the size crossed a choose_factory threshold.

        Returns {modality: (old factory, new factory)} for each switch; the switch is saved by the next
        commit(). Hysteresis: back to Flat only below FLAT_MAX_VECTORS / 2, and an IVF is retrained for a new
        list count only when the ideal count moved by 4x or more.
        """
        self._require_writer()
        switched = {}
        budget = self._manifest.get("memory_budget_bytes")
        for modality in self.modalities:
            if self._policy(modality) != AUTO:
                continue
            index = self.index(modality)
            target = choose_factory(index.ntotal, index.dim, budget)
            if _should_switch(index.factory, target, index.ntotal):
                old = index.factory
                index.rebuild(target)
                self._dirty.add(modality)
                switched[modality] = (old, target)
        return switched

    def verify_and_repair(self) -> RepairReport:
        """Make catalog and vectors agree (run automatically when a writer opens); commits any repair.

        - vectors whose ids the catalog does not know (a crash after saving vectors, before the catalog
          commit) are removed;
        - catalog items without a vector (a crash after a removal, a lost or deleted index file) get their
          files deleted from the catalog so that the next ``xsearch index`` embeds them again;
        - vector files no commit refers to and temp files (left by an interrupted commit) are deleted.
        """
        self._require_writer()
        report = RepairReport()
        referenced = set(self.catalog.vector_files().values())
        for stale in sorted([*self.path.glob(".*.tmp"), *self.path.glob("*.faiss")]):
            if stale.name not in referenced:
                stale.unlink(missing_ok=True)
                report.stale_files_removed.append(stale.name)
        for modality in sorted(set(self.modalities) | set(self.catalog.modalities())):
            catalog_ids = self.catalog.item_ids(modality)
            if modality in self._manifest["dims"]:
                index = self.index(modality)
                index_ids = index.ids()
                orphans = np.setdiff1d(index_ids, catalog_ids, assume_unique=True)
                if orphans.size:
                    index.remove(orphans)
                    self._dirty.add(modality)
                    report.orphan_vectors_dropped[modality] = int(orphans.size)
                missing = np.setdiff1d(catalog_ids, index_ids, assume_unique=True)
            else:
                missing = catalog_ids
            if missing.size:
                report.items_without_vectors[modality] = int(missing.size)
                file_ids = self.catalog.file_ids_of_items(missing)
                for file_id in file_ids.tolist():
                    row = self.catalog.get_file_by_id(file_id)
                    if row is not None:
                        report.files_to_reembed.append(row.path)
                self.remove_files(file_ids.tolist())
        if self._dirty or self.catalog.in_transaction:
            self.commit()
        return report

    # -- reading -----------------------------------------------------------------------------------------

    def search(self, modality: str, queries, k: int, *, allowed_ids=None, params: dict | None = None):
        """Top-k item ids and cosine scores per query in ``modality``'s index (see VectorIndex.search)."""
        return self.index(modality).search(queries, k, allowed_ids=allowed_ids, params=params)

    def reconstruct(self, modality: str, ids) -> np.ndarray:
        """The stored vectors of item ids (e.g. to use an indexed file as a query without re-embedding)."""
        return self.index(modality).reconstruct(ids)

    def stats(self) -> dict:
        """Files / items / vectors per modality, index type, memory, GPU use, model."""
        counts = self.catalog.counts()
        per_modality = {}
        for modality in self.modalities:
            info = self.index(modality).describe()
            c = counts.get(modality, {"files": 0, "items": 0})
            per_modality[modality] = {
                "dim": self.dims[modality],
                "files": c["files"],
                "items": c["items"],
                "vectors": info["ntotal"],
                "index": info["factory"],
                "policy": self._policy(modality),
                "trained": info["trained"],
                "search_defaults": info["search_defaults"],
                "memory_bytes": info["memory_bytes"],
                "gpu": info["gpu"],
                "gpu_note": info["gpu_note"],
                **({"staging": info["staging"]} if "staging" in info else {}),
            }
        return {
            "path": str(self.path),
            "model_id": self.model_id,
            "model_spec": self.model_spec,
            "format_version": int(self._manifest["format_version"]),
            "created_at": self._manifest.get("created_at"),
            "gpu_available": gpu_available(),
            "modalities": per_modality,
        }


def _should_switch(current: str, target: str, n: int) -> bool:
    """maybe_reindex's hysteresis (see its docstring)."""
    if current == target:
        return False
    if target == "Flat":
        return n < _vectors.FLAT_MAX_VECTORS // 2
    cur_head, _, cur_codes = current.partition(",")
    new_head, _, new_codes = target.partition(",")
    if cur_head.startswith("IVF") and new_head.startswith("IVF") and cur_codes == new_codes:
        try:
            a, b = int(cur_head[3:]), int(new_head[3:])
        except ValueError:
            return True
        return max(a, b) / min(a, b) >= 4
    return True
