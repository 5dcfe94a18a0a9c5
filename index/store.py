"""The storage protocol: what the engine needs from a collection, whatever holds it.

A *store* keeps, for one collection, the files that were indexed (path, modality, size, mtime, content hash,
width/height, duration), their *items* (one vector each: an image, an audio window, a text passage, with its
offset) and the model the vectors came from. The engine talks only to :class:`Store` (reading, long-lived,
thread-safe) and :class:`StoreWriter` (one writer per collection, changes published by ``commit``).

Implementations: ``local`` (FAISS files + SQLite catalog in a directory, index/local.py) and ``milvus``
(``milvus-lite:PATH.db`` or ``milvus://HOST:PORT/NAME``, index/milvus.py). :func:`open_store`
picks one from the collection argument, so callers never branch:

    store = open_store("~/my-collection")          # a directory, or a name under $XSEARCH_HOME → local
    hits = store.search_files("image", query_vectors, k=10, filters=Filters(path_glob="*.jpg"))

A second implementation passes the same contract tests (tests/contract/).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xsearch.core.types import Filters, Hit

from .local.catalog import FileRow

#: One track's items for :meth:`StoreWriter.replace_items`: (offsets, vectors [n, dim], snippets or None).
TrackData = tuple[Sequence[float], np.ndarray, "Sequence[str | None] | None"]

FileRecord = FileRow  # one indexed file (id, path, modality, size, mtime_ns, hash, width, height, duration, ...)


@dataclass(frozen=True)
class StoreSpec:
    """What a new collection is created with: the model (its id and spec), one dimension per modality, and the
    index type per modality (a FAISS factory string or "auto", chosen under the memory / latency budget)."""

    model_id: str
    model_spec: str
    dims: dict[str, int]
    factory: str | dict[str, str] = "auto"
    memory_budget_bytes: int | None = None
    latency_budget_ms: float | None = None


class StoreReader(abc.ABC):
    """Read access to one collection; also the read half of a writer (which sees its own uncommitted changes)."""

    uri: str  # how the collection was named (a directory for local stores)

    # -- what the collection is -----------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def model_id(self) -> str: ...

    @property
    @abc.abstractmethod
    def model_spec(self) -> str: ...

    @property
    @abc.abstractmethod
    def dims(self) -> dict[str, int]: ...

    @property
    def modalities(self) -> list[str]:
        return sorted(self.dims)

    def check_model(self, model_id: str) -> None:
        """Raise CollectionError (code collection.model_mismatch) when built with another model."""
        from xsearch.core.errors import CollectionError

        if model_id != self.model_id:
            raise CollectionError(f"collection {self.uri} was built with model {self.model_id!r}, not {model_id!r}",
                                  code="collection.model_mismatch", collection=self.uri, stored=self.model_id,
                                  requested=model_id)

    # -- files ----------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def file(self, path: str) -> FileRecord | None:
        """The file indexed at ``path`` (absolute), or None."""

    @abc.abstractmethod
    def file_by_id(self, file_id: int) -> FileRecord | None: ...

    @abc.abstractmethod
    def files(self, *, under: str | None = None, modality: str | None = None) -> list[FileRecord]:
        """Every file, optionally at or below folder ``under`` and/or of one modality, by path."""

    @abc.abstractmethod
    def files_by_hash(self, hash: str, size: int) -> list[FileRecord]:
        """Files anywhere in the collection with this content hash and size."""

    @abc.abstractmethod
    def item(self, item_id: int) -> Hit | None:
        """One item with its file's metadata (rank 0, score 0), or None when it is not in the collection."""

    @abc.abstractmethod
    def file_sizes(self) -> set[int]:
        """The distinct sizes of indexed files (a cheap first test before hashing a new file to find moves)."""

    @abc.abstractmethod
    def counts(self) -> dict[str, dict[str, int]]:
        """Per modality: {"files": n, "items": n}."""

    @abc.abstractmethod
    def tags_of(self, file_id: int) -> list[tuple[str, float]]:
        """A file's tags, best first."""

    @abc.abstractmethod
    def tag_counts(self) -> dict[str, int]:
        """Files per tag."""

    def file_count(self, modality: str) -> int:
        """How many files of ``modality`` the collection holds."""
        return self.counts().get(modality, {}).get("files", 0)

    # -- vectors --------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def search_files(self, modality: str, queries: np.ndarray, k: int, *, filters: Filters | None = None,
                     exclude_paths: Sequence[str] = (), threshold: float | None = None,
                     params: dict | None = None) -> list[list[Hit]]:
        """For each query vector (``[q, dim]``, unit length): the best ``k`` *files* of ``modality``, each with
        its best item (score, offset, snippet), best first, ``rank`` 1..n. Files failing ``filters``, at
        ``exclude_paths`` or scoring below ``threshold`` are left out; fewer than ``k`` when fewer qualify.
        ``params``: index search knobs ({"nprobe": n} for IVF, {"efSearch": n} for HNSW)."""

    @abc.abstractmethod
    def file_vectors(self, file_id: int, track: str | None = None) -> np.ndarray:
        """The stored vectors of one file's items in ``track`` (default: the file's modality), in offset order
        (``[n_items, dim]``)."""

    @abc.abstractmethod
    def iter_items(self, modality: str, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Every item of ``modality`` in batches of (item ids, file ids, vectors)."""

    def file_items(self, file_ids: Sequence[int]) -> dict[int, dict[str, TrackData]]:
        """Everything stored for these files' items, as :meth:`StoreWriter.replace_items` takes it:
        ``{file id: {track: (offsets, vectors [n, dim], snippets or None)}}``, items in offset order; files
        without items (or unknown ids) are absent. What copying a collection to another store reads.

        This default works through :meth:`iter_items` and :meth:`item` (slow); stores override it."""
        wanted = {int(i) for i in file_ids}
        found: dict[int, dict[str, list]] = {}
        for track in self.dims:
            for item_ids, owners, vectors in self.iter_items(track):
                for item_id, fid, vec in zip(item_ids.tolist(), owners.tolist(), vectors):
                    if fid in wanted:
                        hit = self.item(item_id)
                        found.setdefault(fid, {}).setdefault(track, []).append((hit.offset, item_id, vec, hit.snippet))
        return assemble_items(found)

    @abc.abstractmethod
    def stats(self) -> dict:
        """Files / items / index per modality, model, format: what `info` shows."""


def assemble_items(found: Mapping[int, Mapping[str, list]]) -> dict[int, dict[str, TrackData]]:
    """``{file id: {track: [(offset, item id, vector, snippet), ...]}}`` → what :meth:`StoreReader.file_items`
    returns (items in offset order, then id order)."""
    out: dict[int, dict[str, TrackData]] = {}
    for fid, tracks in found.items():
        for track, rows in tracks.items():
            rows = sorted(rows, key=lambda r: (r[0], r[1]))
            snippets = [r[3] for r in rows]
            out.setdefault(int(fid), {})[track] = (
                [float(r[0]) for r in rows], np.stack([np.asarray(r[2], dtype=np.float32) for r in rows]),
                snippets if any(x is not None for x in snippets) else None)
    return out


class Store(StoreReader):
    """A long-lived, thread-safe reader. Sees every writer's commit on the next call (a cheap generation check,
    never a full re-read per query)."""

    @property
    @abc.abstractmethod
    def generation(self) -> object:
        """Changes whenever a writer commits (opaque; compare for equality)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StoreWriter(StoreReader):
    """The one writer of a collection (others get CollectionLockedError, code collection.locked). Changes are
    invisible to readers until :meth:`commit`; a crash loses at most the uncommitted ones and never leaves a
    collection that will not open. Use as a context manager: commits on a clean exit, rolls back on an error."""

    repair_report: object = None  # what opening repaired (local: RepairReport), shown in the index report

    @abc.abstractmethod
    def upsert_file(self, path: str, *, modality: str, size: int, mtime_ns: int, hash: str | None,
                    width: int | None = None, height: int | None = None, duration: float | None = None,
                    fps: float | None = None, has_audio: bool | None = None) -> int:
        """Insert or update a file row (items and tags untouched); returns its id."""

    @abc.abstractmethod
    def replace_items(self, file_id: int, tracks: Mapping[str, TrackData]) -> None:
        """Make these the file's items: ``{track: (offsets, vectors [n, dim], snippets or None)}``, one entry per
        track (a modality's index: image / audio / text; a video file has two). Its previous items all go."""

    @abc.abstractmethod
    def set_tags(self, file_id: int, tags: Sequence[tuple[str, float]]) -> None:
        """Make these the file's zero-shot tags (``[(tag, score)]``)."""

    @abc.abstractmethod
    def rename_file(self, file_id: int, new_path: str, mtime_ns: int) -> None:
        """Point a file (and its vectors) at a new path."""

    @abc.abstractmethod
    def touch_file(self, file_id: int, *, mtime_ns: int) -> None:
        """Record a new mtime for a file whose content did not change."""

    @abc.abstractmethod
    def remove_files(self, file_ids: Sequence[int]) -> None:
        """Delete files, their items and vectors."""

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    def maybe_reindex(self) -> dict:
        """Re-choose index types after growth (saved by the next commit); {modality: (old, new)}."""
        return {}

    def set_budgets(self, *, memory_budget_bytes: int | None = None, latency_budget_ms: float | None = None) -> None:
        """Replace the memory / latency budget "auto" index types are chosen under (maybe_reindex re-chooses)."""
        from xsearch.core.errors import UsageError

        raise UsageError(f"collection {self.uri} chooses its own index types; it takes no memory or latency budget",
                         code="store.unsupported_budget", collection=self.uri)

    @abc.abstractmethod
    def close(self) -> None:
        """Discard uncommitted changes and release the writer lock."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.close()


class Backend(abc.ABC):
    """One kind of store, chosen by :func:`backend_for` from the collection argument."""

    name: str

    @abc.abstractmethod
    def exists(self, uri: str) -> bool: ...

    @abc.abstractmethod
    def open(self, uri: str) -> Store: ...

    @abc.abstractmethod
    def open_writer(self, uri: str, *, create: StoreSpec | None = None, wait_s: float = 0.0) -> StoreWriter:
        """Open for writing (creating it from ``create`` when it does not exist)."""

    @abc.abstractmethod
    def delete(self, uri: str, *, wait_s: float = 0.0) -> None:
        """Delete the collection's data (under the writer lock); works on a damaged collection too."""

    @abc.abstractmethod
    def resolve(self, uri: str) -> str:
        """The canonical name of the collection (e.g. an absolute directory)."""


_BACKENDS: list[tuple[str, Backend]] = []  # (uri prefix, backend); "" = the default (local)


def register_backend(prefix: str, backend: Backend) -> None:
    """Serve collection arguments starting with ``prefix`` (e.g. "milvus-lite:") by ``backend``."""
    _BACKENDS.insert(0, (prefix, backend))


class _LazyBackend(Backend):
    """A backend whose module is imported on first use (``milvus``: pymilvus only loads for Milvus collections)."""

    def __init__(self, name: str, module: str, cls: str):
        self.name, self._where, self._impl = name, (module, cls), None

    def _backend(self) -> Backend:
        if self._impl is None:
            import importlib

            module, cls = self._where
            self._impl = getattr(importlib.import_module(module, __package__), cls)()
        return self._impl

    def exists(self, uri):
        return self._backend().exists(uri)

    def open(self, uri):
        return self._backend().open(uri)

    def open_writer(self, uri, *, create=None, wait_s=0.0):
        return self._backend().open_writer(uri, create=create, wait_s=wait_s)

    def delete(self, uri, *, wait_s=0.0):
        return self._backend().delete(uri, wait_s=wait_s)

    def resolve(self, uri):
        return self._backend().resolve(uri)


def backend_for(uri: str | None) -> Backend:
    """The backend for a collection argument: the longest matching prefix; anything else is local."""
    text = "" if uri is None else str(uri)
    if not _BACKENDS:
        from .local.store import LocalBackend

        register_backend("", LocalBackend())
        milvus = _LazyBackend("milvus", ".milvus", "MilvusBackend")
        register_backend("milvus-lite:", milvus)  # milvus-lite:PATH.db (embedded)
        register_backend("milvus://", milvus)  # milvus://HOST:PORT/NAME (a Milvus server)
    for prefix, backend in sorted(_BACKENDS, key=lambda pb: -len(pb[0])):
        if text.startswith(prefix):
            return backend
    raise AssertionError("the local backend matches every argument")


def open_store(uri: str | None) -> Store:
    """A long-lived reader of the collection named by ``uri`` (CollectionError code collection.missing if none)."""
    backend = backend_for(uri)
    return backend.open(backend.resolve(uri))


def open_writer(uri: str | None, *, create: StoreSpec | None = None, wait_s: float = 0.0) -> StoreWriter:
    """The collection's writer (created from ``create`` when missing and given)."""
    backend = backend_for(uri)
    return backend.open_writer(backend.resolve(uri), create=create, wait_s=wait_s)


def store_exists(uri: str | None) -> bool:
    backend = backend_for(uri)
    return backend.exists(backend.resolve(uri))


def delete_store(uri: str | None, *, wait_s: float = 0.0) -> None:
    backend = backend_for(uri)
    backend.delete(backend.resolve(uri), wait_s=wait_s)


def resolve_uri(uri: str | None) -> str:
    """The canonical collection name (an absolute directory for local collections)."""
    backend = backend_for(uri)
    return backend.resolve(uri)


def copy_store(source: str | None, destination: str | None, *, replace: bool = False, factory="auto",
               wait_s: float = 0.0, files_per_batch: int = 1024, on_plan=None, on_progress=None) -> dict:
    """Copy a collection to another store (local ↔ Milvus, either way), vectors included (nothing is embedded):
    every file row with its items, read through the source's :meth:`StoreReader.file_items` and written through
    the destination's writer, committed every ``files_per_batch`` files. The model (id, spec, dims) carries over;
    ``factory`` is the destination's index type. A destination holding files is refused (CollectionError code
    copy.destination_not_empty) unless ``replace``, which deletes it first. Returns what was copied."""
    import time

    from xsearch.core.errors import CollectionError, UsageError

    t0 = time.time()
    src_uri, dst_uri = resolve_uri(source), resolve_uri(destination)
    if src_uri == dst_uri:
        raise UsageError(f"source and destination are the same collection ({src_uri})", code="copy.same",
                         collection=src_uri)
    with open_store(src_uri) as src:
        if store_exists(dst_uri):
            with open_store(dst_uri) as dst:
                held = sum(c.get("files", 0) for c in dst.counts().values())
            if held and not replace:
                raise CollectionError(f"collection {dst_uri} already holds {held} file(s)",
                                      code="copy.destination_not_empty", collection=dst_uri, files=held)
            delete_store(dst_uri, wait_s=wait_s)
        files = src.files()
        has_tags = bool(src.tag_counts())
        if on_plan:
            on_plan(len(files))
        items: dict[str, int] = {}
        spec = StoreSpec(src.model_id, src.model_spec, dict(src.dims), factory)
        with open_writer(dst_uri, create=spec, wait_s=wait_s) as writer:
            for start in range(0, len(files), max(1, int(files_per_batch))):
                chunk = files[start:start + max(1, int(files_per_batch))]
                data = src.file_items([f.id for f in chunk])
                for f in chunk:
                    video = {k: getattr(f, k) for k in ("fps", "has_audio") if getattr(f, k, None) is not None}
                    new_id = writer.upsert_file(f.path, modality=f.modality, size=f.size, mtime_ns=f.mtime_ns,
                                                hash=f.hash, width=f.width, height=f.height, duration=f.duration,
                                                **video)
                    tags = src.tags_of(f.id) if has_tags else []
                    if tags:
                        writer.set_tags(new_id, tags)
                    tracks = data.get(f.id)
                    if tracks:
                        writer.replace_items(new_id, tracks)
                        for track, (offsets, _, _) in tracks.items():
                            items[track] = items.get(track, 0) + len(offsets)
                writer.commit()
                if on_progress:
                    on_progress(len(chunk))
            reindexed = writer.maybe_reindex()
    return {"source": src_uri, "destination": dst_uri, "model_spec": spec.model_spec, "model_id": spec.model_id,
            "files": len(files), "items": items, "reindexed": {m: list(v) for m, v in reindexed.items()},
            "seconds": round(time.time() - t0, 3)}
