"""Collection: a directory holding everything one index of a media library needs: its manifest (what it is,
index/local/manifest.py), a SQLite catalog of files and items (index/local/catalog.py), one vector file per
modality (index/local/vectors.py) and a writer lock; the folder's layout is in index/local/layout.py.

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

Hostile environments: collection files are opened without following symbolic links and must be regular files
(``collection.unsafe_file``); vector file names come only from ``<modality>.<6 digits>.faiss`` catalog rows (an
exact-vector file's name is derived from its .faiss name, never read from anywhere); a
loaded vector index must name its modality (when its file records one) and hold exactly the catalog's item ids of
that modality; a collection whose folder cannot be written opens for reading (``collection.read_only`` for
writers); OSErrors and SQLite errors surface as one-line CollectionErrors with a stable code. Processes forked
while a writer holds the lock close their copy of its descriptor (index/locks.py, run after every fork), so a
killed writer never leaves the lock held by its children.

Write through the Collection for anything that touches items (add, remove_files, clear_files) so that
catalog and vectors stay in step; file-only catalog calls (get_file, upsert_file, rename_file, touch_file,
find_by_hash, files, filter_ids, items, counts) go through ``collection.catalog`` directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from xsearch.core.errors import CollectionError

from ..locks import WriterLock, holder_at_work
from . import layout
from .atomic import collection_os_error, dir_writable, fsync_dir
from .budget import choice_key, choose_factory, should_switch
from .catalog import Catalog
from .gpu import gpu_available
from .layout import CATALOG, LOCK
from .manifest import AUTO, MANIFEST, factories_for, manifest_lost, new_manifest, read_manifest, write_manifest
from .repair import RepairReport, repair_collection
from .vectors import VectorIndex


class Collection:
    """A collection directory: manifest, catalog, one vector index per modality, writer lock."""

    def __init__(self, root: Path, manifest: dict, catalog: Catalog, lock: WriterLock | None):
        """Use :meth:`create`, :meth:`open` or :meth:`open_or_create`."""
        self.path = root
        self._manifest = manifest
        self.catalog = catalog
        self._lock = lock
        self._indexes: dict[str, VectorIndex] = {}
        self._loaded_files: dict[str, str | None] = {}  # modality -> vector file its loaded index came from
        self._loaders: dict[str, threading.Lock] = {}  # modality -> held by the reader thread loading a newer file
        self._dirty: set[str] = set()
        self._replaced: dict[str, str] = {}  # modality -> why a writer started its index afresh
        self._pending_choices: dict[str, dict] = {}  # index choices to mirror into the manifest
        self.repair_report: RepairReport | None = None

    # -- opening -----------------------------------------------------------------------------------------

    @staticmethod
    def exists(path: str | os.PathLike) -> bool:
        return (Path(path) / MANIFEST).is_file()

    @classmethod
    def missing_error(cls, path: str | os.PathLike) -> CollectionError:
        """Why there is no collection at ``path``: none at all (``collection.missing``), or one whose manifest was
        lost while its catalog is still there (``collection.damaged``; the next ``create`` starts it afresh). A
        catalog without a manifest while a live writer holds the lock is a collection being created or rebuilt."""
        root = Path(path)
        if os.path.lexists(root / CATALOG) and not cls.exists(root) and not holder_at_work(root / LOCK):
            return manifest_lost(root)
        return layout.not_a_folder(root) or layout.missing(root)

    @classmethod
    def create(cls, path: str | os.PathLike, *, model_id: str, model_spec: str, dims: dict[str, int],
               factory: str | dict[str, str] = AUTO, memory_budget_bytes: int | None = None,
               latency_budget_ms: float | None = None, wait_s: float = 0.0) -> Collection:
        """Create a collection and return it open for writing.

        ``factory``: "auto" (index/local/budget.py's choose_factory by size and budgets, switched by maybe_reindex) or a
        FAISS factory string, for every modality or as {modality: factory}. ``memory_budget_bytes`` caps the
        resident memory of each auto-chosen index, ``latency_budget_ms`` its expected single-query p50.
        """
        root = Path(path)
        if cls.exists(root):
            raise CollectionError(f"a collection already exists at {root}", code="collection.exists",
                                  collection=str(root))
        factories = factories_for(dims, factory)
        for modality, fac in factories.items():
            if fac != AUTO:
                VectorIndex.create(int(dims[modality]), fac, use_gpu=False)  # rejects a bad factory string now
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise layout.not_a_folder(root) or collection_os_error(exc, root, collection=root, doing="create") from None
        if not dir_writable(root):
            raise layout.read_only(root)
        lock = layout.writer_lock(root, wait_s)
        try:
            if cls.exists(root):
                raise CollectionError(f"a collection already exists at {root}", code="collection.exists",
                                      collection=str(root))
            lost = os.path.lexists(root / CATALOG)  # a catalog without a manifest: which model made it?
            layout.remove_files(root)  # what a half-created or half-deleted collection (or a lost manifest) left
            catalog = Catalog.open(root / CATALOG)
            manifest = new_manifest(model_id=model_id, model_spec=model_spec, dims=dims, factories=factories,
                                    memory_budget_bytes=memory_budget_bytes, latency_budget_ms=latency_budget_ms)
            write_manifest(root, manifest)
        except BaseException:
            lock.release()
            raise
        self = cls(root, manifest, catalog, lock)
        self.repair_report = RepairReport(manifest_lost=lost)
        return self

    @classmethod
    def open(cls, path: str | os.PathLike, *, writer: bool = False, wait_s: float = 0.0) -> Collection:
        """Open an existing collection; a writer takes the lock (waiting up to ``wait_s``) and repairs it."""
        root = Path(path)
        if not cls.exists(root):
            raise cls.missing_error(root)
        if writer and not dir_writable(root):
            raise layout.read_only(root)
        lock = layout.writer_lock(root, wait_s) if writer else None
        try:
            manifest = read_manifest(root)
            catalog = Catalog.open(root / CATALOG, readonly=not writer, must_exist=True)
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
                       latency_budget_ms: float | None = None, wait_s: float = 0.0) -> Collection:
        """Open for writing (checking the model) when it exists, else create it. Budgets given for an existing
        collection replace its budgets (see :meth:`set_budgets`)."""
        if not cls.exists(path):
            try:
                return cls.create(path, model_id=model_id, model_spec=model_spec, dims=dims, factory=factory,
                                  memory_budget_bytes=memory_budget_bytes, latency_budget_ms=latency_budget_ms,
                                  wait_s=wait_s)
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
                        f"collection {self.path} stores {modality} vectors of {have} dimensions, not {dim}",
                        code="collection.dim_mismatch", collection=str(self.path), modality=modality,
                        have=have, want=int(dim))
            if memory_budget_bytes is not None or latency_budget_ms is not None:
                self.set_budgets(memory_budget_bytes=memory_budget_bytes, latency_budget_ms=latency_budget_ms)
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def delete(cls, path: str | os.PathLike, *, wait_s: float = 0.0) -> None:
        """Delete a collection's files (e.g. to rebuild it with another model) under its writer lock.

        The manifest goes first, so readers see "no collection" rather than a half-deleted one. Files that are
        not a collection's (anything else the user put in the folder) are left alone. Nothing is read: a
        collection whose manifest or catalog is missing, empty or garbage is deleted just the same.
        """
        root = Path(path)
        if not cls.exists(root) and not layout.has_files(root):
            raise layout.missing(root)
        if not dir_writable(root):
            raise layout.read_only(root)
        lock = layout.writer_lock(root, wait_s)
        try:
            layout.unlink(root, root / MANIFEST)
            fsync_dir(root)
            layout.remove_files(root)
        finally:
            lock.release()  # the lock file itself stays: unlinking it would let two writers lock different files

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        return self._lock is not None

    def close(self) -> None:
        """Discard uncommitted changes, close the catalog and release the writer lock."""
        try:
            if self.writable and self.has_changes:
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
                f"collection {self.path} was built with model {self.model_id!r}, not {model_id!r}",
                code="collection.model_mismatch", collection=str(self.path), model_id=self.model_id,
                wanted=model_id)

    # -- vector indexes ----------------------------------------------------------------------------------

    def _policy(self, modality: str) -> str:
        return self._manifest["factory"].get(modality, AUTO)

    def _modality_dim(self, modality: str) -> int:
        try:
            return int(self._manifest["dims"][modality])
        except KeyError:
            raise ValueError(f"collection {self.path} has no {modality} index (it has {self.modalities})") from None

    def _empty_index(self, modality: str) -> VectorIndex:
        dim, policy = self._modality_dim(modality), self._policy(modality)
        return VectorIndex.create(dim, choose_factory(0, dim).factory if policy == AUTO else policy)

    def index(self, modality: str) -> VectorIndex:
        """The vector index of ``modality``: loaded on first use; a reader reloads it after a newer commit.

        A loaded index must be of this modality (when its file says), of the manifest's dimension, and hold
        exactly the catalog's item ids of the modality (checked once per load). A reader gets a CollectionError
        (``collection.vectors_damaged``) otherwise; a writer starts an unusable file afresh and leaves the rest
        to :meth:`verify_and_repair` (which re-embeds the files whose vectors are missing).
        """
        self._modality_dim(modality)
        if modality in self._indexes and self.writable:
            return self._indexes[modality]
        return self._newest(modality, contextlib.nullcontext(), beside=False)

    def reader_index(self, modality: str, catalog_lock) -> VectorIndex:
        """A reader's index of ``modality``, the newest committed one, loaded *beside* the one in use.

        ``catalog_lock`` serialises catalog access (it is held only for the catalog look-ups). When a writer has
        committed a newer vector file, one thread reads and checks it outside that lock while the others keep
        searching the index already loaded (their results are the previous commit's); the new index then
        replaces it. Checks and errors are those of :meth:`index`.
        """
        self._modality_dim(modality)
        return self._newest(modality, catalog_lock, beside=True)

    def _newest(self, modality: str, catalog_lock, *, beside: bool) -> VectorIndex:
        """The index of the vector file the catalog names now (the one loaded when it is that file). ``beside``:
        one thread loads a newer file while the others get the index in use (a per-modality loader lock). Retries
        when a writer replaced the file between reading its name and opening it."""
        name = None
        for _attempt in range(20):
            with catalog_lock:
                name = self.catalog.vector_files().get(modality)
                current = self._indexes.get(modality)
                if current is not None and self._loaded_files.get(modality) == name:
                    return current
            loader = self._loaders.setdefault(modality, threading.Lock()) if beside else None
            if loader is not None and not loader.acquire(blocking=current is None):
                return current  # another thread is loading the newer file
            try:
                with catalog_lock:
                    if loader is not None:
                        name = self.catalog.vector_files().get(modality)
                        if modality in self._indexes and self._loaded_files.get(modality) == name:
                            return self._indexes[modality]  # loaded while this thread waited
                    name, catalog_ids = self.catalog.vector_state(modality)  # one snapshot: file name and item ids
                index = self._load_checked(modality, name, catalog_ids)
                if index is None:
                    time.sleep(0.05)  # a writer just replaced it: read the new name
                    continue
                with catalog_lock:
                    self._indexes[modality] = index
                    self._loaded_files[modality] = name
                return index
            finally:
                if loader is not None:
                    loader.release()
        raise CollectionError(f"vector index {self.path / name} is missing", code="collection.vectors_missing",
                              collection=str(self.path), path=str(self.path / name), modality=modality)

    def _load_checked(self, modality: str, name: str | None, catalog_ids: np.ndarray) -> VectorIndex | None:
        """The index in vector file ``name`` (an empty one when there is none), checked (see :meth:`index`); None
        when a reader finds the file gone. A writer gets a fresh index in place of an unusable file; the ids are
        verify_and_repair's to reconcile."""
        if name is None:
            return self._empty_index(modality)
        path = self.path / name
        try:
            index = VectorIndex.load(path)
        except FileNotFoundError:
            # a writer's lost file: start empty, verify_and_repair re-queues its files
            return self._fresh(modality, "missing") if self.writable else None
        except CollectionError as exc:
            if self.writable and exc.code == "collection.vectors_damaged":
                return self._fresh(modality, exc.params.get("reason", "damaged"))
            raise
        problem = self._mismatch(modality, index, self._modality_dim(modality))
        if problem and self.writable:
            return self._fresh(modality, problem)
        if problem:
            raise layout.vectors_damaged(self.path, path, problem)
        if not self.writable and not np.array_equal(index.ids(), catalog_ids):
            raise layout.vectors_damaged(
                self.path, path, f"it holds {index.ntotal} vectors whose ids differ from the catalog's "
                                 f"{catalog_ids.size} {modality} items")
        return index

    @staticmethod
    def _mismatch(modality: str, index: VectorIndex, dim: int) -> str | None:
        """Why a loaded index cannot be ``modality``'s (None when it can)."""
        if index.modality is not None and index.modality != modality:
            return f"it holds {index.modality} vectors, not {modality}"
        if index.dim != dim:
            return f"it has {index.dim} dimensions but the collection expects {dim}"
        return None

    def _fresh(self, modality: str, why: str) -> VectorIndex:
        """A writer's empty index in place of an unusable file; the next commit writes it."""
        self._replaced[modality] = why
        self._dirty.add(modality)
        return self._empty_index(modality)

    def _require_writer(self) -> None:
        if not self.writable:
            raise CollectionError(f"collection {self.path} is open read-only", code="collection.opened_read_only",
                                  collection=str(self.path))

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
        attempted: list[str] = []
        try:
            for modality in sorted(self._dirty):
                name = layout.next_vector_file(modality, current.get(modality))
                attempted.append(name)
                try:
                    self._indexes[modality].save(self.path / name, modality=modality)
                except OSError as exc:
                    raise collection_os_error(exc, self.path / name, collection=self.path, doing="write") from None
                written[modality] = name
                self.catalog.set_vector_file(modality, name)
            self.catalog.commit()
        except BaseException:
            for name in attempted:
                layout.discard_vector_file(self.path, name)
            raise
        self._loaded_files.update(written)
        self._dirty.clear()
        self._replaced.clear()
        for modality, name in written.items():
            old = current.get(modality)
            if old and old != name:  # committed already; the next writer removes it if it stays
                layout.discard_vector_file(self.path, old)
        self._record_choices()

    def rollback(self) -> None:
        """Discard every change since the last commit (catalog and vectors)."""
        self._require_writer()
        self.catalog.rollback()
        for modality in self._dirty:
            self._indexes.pop(modality, None)
        self._dirty.clear()

    def maybe_reindex(self) -> dict[str, tuple[str, str]]:
        """For "auto" modalities, switch index type when the size or the budgets call for another choice.

        index/local/budget.py's choose_factory weighs size, dimension, memory and latency budget; its choice (factory,
        reason, expected recall, bytes per vector) is saved with the index and in the manifest. Returns
        {modality: (old factory, new factory)} for each switch; the switch is saved by the next commit().
        Switches only past budget.should_switch's hysteresis.
        """
        self._require_writer()
        switched = {}
        budget = self._manifest.get("memory_budget_bytes")
        latency = self._manifest.get("latency_budget_ms")
        for modality in self.modalities:
            if self._policy(modality) != AUTO:
                continue
            index = self.index(modality)
            choice = choose_factory(index.ntotal, index.dim, budget, latency)
            if should_switch(index.factory, choice.factory, index.ntotal):
                old = index.factory
                index.rebuild(choice.factory)
                index.set_search_defaults(choice.search)
                index.set_choice(choice.to_dict())
                self._pending_choices[modality] = choice.to_dict()
                self._dirty.add(modality)
                switched[modality] = (old, choice.factory)
            elif index.choice is None or choice_key(index.choice) != choice_key(choice.to_dict()):
                if index.factory == choice.factory:
                    index.set_choice(choice.to_dict())  # saved with the next change of this index
                    self._pending_choices[modality] = choice.to_dict()
        if self._pending_choices and not self._dirty:
            self._record_choices()
        return switched

    def set_budgets(self, *, memory_budget_bytes: int | None = None, latency_budget_ms: float | None = None) -> None:
        """Replace the budgets the "auto" modalities are chosen under (None leaves one as it is); the next
        :meth:`maybe_reindex` re-chooses. Written to the manifest at once (atomically)."""
        self._require_writer()
        manifest = dict(self._manifest)
        if memory_budget_bytes is not None:
            manifest["memory_budget_bytes"] = int(memory_budget_bytes)
        if latency_budget_ms is not None:
            manifest["latency_budget_ms"] = float(latency_budget_ms)
        if manifest != self._manifest:
            write_manifest(self.path, manifest)
            self._manifest = manifest

    def _record_choices(self) -> None:
        """Mirror the committed indexes' choices into the manifest (after a commit; best effort: the choice
        saved with each index is the one that counts, and maybe_reindex re-records a stale mirror)."""
        choices = dict(self._manifest.get("index_choice") or {})
        for modality in self.modalities:
            index = self._indexes.get(modality)
            if index is not None and index.choice is not None and modality not in self._dirty:
                choices[modality] = index.choice
        choices.update({m: c for m, c in self._pending_choices.items() if m not in self._dirty})
        self._pending_choices = {m: c for m, c in self._pending_choices.items() if m in self._dirty}
        if choices != (self._manifest.get("index_choice") or {}):
            manifest = dict(self._manifest, index_choice=choices)
            with contextlib.suppress(CollectionError):
                write_manifest(self.path, manifest)
                self._manifest = manifest

    def verify_and_repair(self) -> RepairReport:
        """Make catalog and vectors agree (index/local/repair.py; run whenever a writer opens); commits any repair."""
        self._require_writer()
        return repair_collection(self)

    @property
    def has_changes(self) -> bool:
        """Whether a writer holds changes not yet committed (catalog or vectors)."""
        return bool(self._dirty or self.catalog.in_transaction)

    @property
    def replaced_files(self) -> dict[str, str]:
        """Modality → why this writer started its index afresh since the last commit (an unusable vector file)."""
        return dict(self._replaced)

    def drop_orphans(self, modality: str, ids: np.ndarray) -> int:
        """Remove vectors of ``modality`` whose ids the catalog does not know (see :meth:`verify_and_repair`)."""
        self._require_writer()
        return self._drop_vectors({modality: ids}).get(modality, 0)

    # -- reading -----------------------------------------------------------------------------------------

    def search(self, modality: str, queries, k: int, *, allowed_ids=None, params: dict | None = None):
        """Top-k item ids and cosine scores per query in ``modality``'s index (see VectorIndex.search)."""
        return self.index(modality).search(queries, k, allowed_ids=allowed_ids, params=params)

    def reconstruct(self, modality: str, ids) -> np.ndarray:
        """The stored vectors of item ids (e.g. to use an indexed file as a query without re-embedding)."""
        return self.index(modality).reconstruct(ids)

    def _choice_of(self, modality: str, info: dict) -> dict | None:
        """Why ``modality``'s index is what it is: the explicit factory; else a writer's newest choice; else the
        manifest's record (when it names the index's type: a budget change that kept the type is recorded only
        there); else the choice saved with the index."""
        policy = self._policy(modality)
        if policy != AUTO:
            return {"factory": policy, "reason": f"index type {policy} set explicitly when the collection was created"}
        mirrored = (self._manifest.get("index_choice") or {}).get(modality)
        if self.writable and modality in self._pending_choices:
            return self._pending_choices[modality]
        if mirrored and mirrored.get("factory") == info["factory"]:
            return mirrored  # the newest record (a budget change that kept the type re-records it here only)
        choice = info.get("choice")
        return choice

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
                "disk_bytes": info["disk_bytes"],
                "choice": self._choice_of(modality, info),
                "gpu": info["gpu"],
                "gpu_note": info["gpu_note"],
                **({"staging": info["staging"]} if "staging" in info else {}),
            }
        return {
            "path": str(self.path),
            "model_id": self.model_id,
            "model_spec": self.model_spec,
            "memory_budget_bytes": self._manifest.get("memory_budget_bytes"),
            "latency_budget_ms": self._manifest.get("latency_budget_ms"),
            "format_version": int(self._manifest["format_version"]),
            "created_at": self._manifest.get("created_at"),
            "gpu_available": gpu_available(),
            "modalities": per_modality,
        }
