"""The ``local`` store: a collection directory of FAISS vector files and a SQLite catalog (index/local/collection.py).

Durability, locking and repair are the Collection's; this module adapts it to the storage protocol
(index/store.py): best-file-per-query search with filters compiled to SQLite, a long-lived thread-safe reader
that follows a writer's commits, and a writer whose changes publish on commit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from xsearch.core.errors import CollectionError
from xsearch.core.paths import collection_dir
from xsearch.core.types import Filters, Hit

from ..store import Backend, FileRecord, Store, StoreSpec, StoreWriter, TrackData, assemble_items
from .collection import Collection
from .keywords import KeywordReads, KeywordWrites
from .keywords import rename as rename_words
from .words_read import WordsOfFiles


def _hit(row, score: float) -> Hit:
    return Hit(0, float(score), row.path, row.modality, float(row.offset), int(row.id), row.snippet, row.width,
               row.height, row.duration, row.size)


def search_best_files(col: Collection, modality: str, queries: np.ndarray, k: int, *, filters: Filters | None,
                      exclude_paths: Sequence[str], threshold: float | None, params: dict | None,
                      lock: threading.RLock) -> list[list[Hit]]:
    """Top-k files per query vector: over-fetch items (all queries in one FAISS call), keep each file's best item,
    and fetch more for the queries that still have fewer than k files."""
    if col.writable:
        with lock:
            index = col.index(modality)
    else:  # a newer commit's index is loaded beside the one in use, so searches do not wait for it
        index = col.reader_index(modality, lock)
    with lock:
        active = filters.active() if filters else {}
        allowed = col.catalog.filter_ids(modality, **active) if active else None
    total = index.ntotal if allowed is None else int(len(allowed))
    if total == 0:
        return [[] for _ in range(len(queries))]
    excluded = set(exclude_paths)
    results: list[list[Hit] | None] = [None] * len(queries)
    todo = list(range(len(queries)))
    fetch = min(total, max(k * 4, k + 8))
    while todo:
        scores, ids = index.search(queries[todo], fetch, allowed_ids=allowed, params=params or None)
        with lock:
            rows = col.catalog.items(ids[ids >= 0].tolist())
        again = []
        for row_no, qi in enumerate(todo):
            hits, done = _best_per_file(scores[row_no], ids[row_no], rows, k, excluded, threshold)
            if done or fetch >= total:
                for rank, h in enumerate(hits, 1):
                    h.rank = rank
                results[qi] = hits
            else:
                again.append(qi)
        todo = again
        fetch = min(total, fetch * 4)
    return results


def _best_per_file(scores, ids, rows, k: int, excluded: set, threshold: float | None) -> tuple[list[Hit], bool]:
    """The first k distinct files in one ranked item list; done when k were found or the threshold was crossed."""
    hits, seen = [], set()
    for score, item_id in zip(scores, ids):
        row = rows.get(int(item_id))
        if row is None or row.file_id in seen or row.path in excluded:
            continue
        if threshold is not None and score < threshold:
            return hits, True
        seen.add(row.file_id)
        hits.append(_hit(row, score))
        if len(hits) == k:
            return hits, True
    return hits, False


class _LocalReads:
    """Read methods shared by the local reader and writer (``self._col``, ``self._lock``)."""

    _col: Collection
    _lock: threading.RLock
    uri: str

    @property
    def model_id(self) -> str:
        return self._collection().model_id

    @property
    def model_spec(self) -> str:
        return self._collection().model_spec

    @property
    def dims(self) -> dict[str, int]:
        return self._collection().dims

    def _collection(self) -> Collection:
        return self._col

    def file(self, path: str) -> FileRecord | None:
        with self._lock:
            return self._collection().catalog.get_file(str(path))

    def file_by_id(self, file_id: int) -> FileRecord | None:
        with self._lock:
            return self._collection().catalog.get_file_by_id(int(file_id))

    def files(self, *, under: str | None = None, modality: str | None = None) -> list[FileRecord]:
        with self._lock:
            return self._collection().catalog.files(modality=modality, under=under)

    def files_by_hash(self, hash: str, size: int) -> list[FileRecord]:
        with self._lock:
            return self._collection().catalog.find_by_hash(hash, size)

    def item(self, item_id: int) -> Hit | None:
        with self._lock:
            row = self._collection().catalog.items([int(item_id)]).get(int(item_id))
        return None if row is None else _hit(row, 0.0)

    def tags_of(self, file_id: int) -> list[tuple[str, float]]:
        with self._lock:
            return self._collection().catalog.tags_of(file_id)

    def tag_counts(self) -> dict[str, int]:
        with self._lock:
            return self._collection().catalog.tag_counts()

    def file_sizes(self) -> set[int]:
        with self._lock:
            return self._collection().catalog.file_sizes()

    def counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return self._collection().catalog.counts()

    def search_files(self, modality: str, queries: np.ndarray, k: int, *, filters: Filters | None = None,
                     exclude_paths: Sequence[str] = (), threshold: float | None = None,
                     params: dict | None = None) -> list[list[Hit]]:
        col = self._collection()
        if modality not in col.dims:
            return [[] for _ in range(len(queries))]
        q = np.asarray(queries, dtype=np.float32).reshape(-1, col.dims[modality])
        return search_best_files(col, modality, q, k, filters=filters, exclude_paths=exclude_paths,
                                 threshold=threshold, params=params, lock=self._lock)

    def file_vectors(self, file_id: int, track: str | None = None) -> np.ndarray:
        with self._lock:
            col = self._collection()
            rows = col.catalog.item_rows_of_file(file_id)
            if not rows:
                return np.zeros((0, 0), dtype=np.float32)
            if track is None:
                row = col.catalog.get_file_by_id(file_id)
                track = row.modality if row is not None and any(r[1] == row.modality for r in rows) else rows[0][1]
            return col.index(track).reconstruct([r[0] for r in rows if r[1] == track])

    def iter_items(self, modality: str, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        with self._lock:
            col = self._collection()
            ids = col.catalog.item_ids(modality)
            index = col.index(modality) if modality in col.dims else None
        for start in range(0, ids.size, batch):
            chunk = ids[start:start + batch]
            with self._lock:
                owners = self._collection().catalog.item_files(chunk)
            yield chunk, owners, index.reconstruct(chunk)

    def file_items(self, file_ids: Sequence[int]) -> dict[int, dict[str, TrackData]]:
        with self._lock:
            col = self._collection()
            ids_by_track = col.catalog.item_ids_of_files(file_ids)
            rows = col.catalog.items([i for ids in ids_by_track.values() for i in ids.tolist()])
            vectors = {t: (ids, col.index(t).reconstruct(ids)) for t, ids in ids_by_track.items() if ids.size}
        found: dict[int, dict[str, list]] = {}
        for track, (ids, matrix) in vectors.items():
            for item_id, vec in zip(ids.tolist(), matrix):
                row = rows.get(item_id)
                if row is not None:
                    found.setdefault(row.file_id, {}).setdefault(track, []).append((row.offset, item_id, vec,
                                                                                    row.snippet))
        return assemble_items(found)

    def stats(self) -> dict:
        with self._lock:
            stats = self._collection().stats()
        stats["store"] = "local"
        return stats


class LocalStore(WordsOfFiles, KeywordReads, _LocalReads, Store):
    """A long-lived reader of a local collection. Thread-safe: catalog access is serialised by a lock, FAISS
    searches run in parallel. A writer's commit is picked up by the next call (the catalog names the vector
    file of each modality; only a modality whose file changed is reloaded). A collection deleted and rebuilt
    under the same path (``--rebuild``) is reopened."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.uri = str(self.path)
        self._lock = threading.RLock()
        self._col = Collection.open(self.path)
        self._stamp = self._manifest_stamp()
        self._counts: tuple | None = None

    def _manifest_stamp(self):
        try:
            st = os.stat(self.path / "manifest.json")
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def _collection(self) -> Collection:
        stamp = self._manifest_stamp()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    fresh = Collection.open(self.path)  # raises collection.missing while it is being rebuilt
                    self._col.close()
                    self._col, self._stamp = fresh, stamp
        return self._col

    @property
    def generation(self) -> object:
        with self._lock:
            col = self._collection()
            return self._stamp, col.catalog.data_version(), tuple(sorted(col.catalog.vector_files().items()))

    def counts(self) -> dict[str, dict[str, int]]:
        """Cached until a writer commits (SQLite's data_version moves): searches check k against it each time."""
        with self._lock:
            col = self._collection()
            key = (self._stamp, col.catalog.data_version())
            if self._counts is None or self._counts[0] != key:
                self._counts = (key, col.catalog.counts())
            return {m: dict(c) for m, c in self._counts[1].items()}

    def close(self) -> None:
        with self._lock:
            self._col.close()


class LocalWriter(KeywordWrites, _LocalReads, StoreWriter):
    """The writer of a local collection (holds its lock file)."""

    def __init__(self, col: Collection):
        self._col = col
        self._lock = threading.RLock()
        self.path = col.path
        self.uri = str(col.path)
        self.repair_report = col.repair_report

    def upsert_file(self, path: str, *, modality: str, size: int, mtime_ns: int, hash: str | None,
                    width: int | None = None, height: int | None = None, duration: float | None = None,
                    fps: float | None = None, has_audio: bool | None = None) -> int:
        return self._col.catalog.upsert_file(path, modality=modality, size=size, mtime_ns=mtime_ns,
                                             model_id=self._col.model_id, hash=hash, width=width, height=height,
                                             duration=duration, fps=fps, has_audio=has_audio)

    def set_tags(self, file_id: int, tags: Sequence[tuple[str, float]]) -> None:
        self._col.catalog.set_tags(file_id, tags)

    def replace_items(self, file_id: int, tracks: Mapping[str, TrackData]) -> None:
        self._col.clear_files([file_id])
        for track, (offsets, vectors, snippets) in tracks.items():
            self._col.add(track, file_id, offsets, vectors, snippets)

    def rename_file(self, file_id: int, new_path: str, mtime_ns: int) -> None:
        self._col.catalog.rename_file(file_id, new_path, mtime_ns)
        rename_words(self._col.catalog.sql(write=True), file_id, new_path)

    def touch_file(self, file_id: int, *, mtime_ns: int) -> None:
        self._col.catalog.touch_file(file_id, mtime_ns=mtime_ns)

    def remove_files(self, file_ids: Sequence[int]) -> None:
        self._col.remove_files(file_ids)

    def commit(self) -> None:
        self.upgrade_keywords()  # a collection made before the keyword index's companion gets it here
        self._col.commit()

    def rollback(self) -> None:
        self._col.rollback()

    def maybe_reindex(self) -> dict:
        self.tidy_keywords()
        return self._col.maybe_reindex()

    def set_budgets(self, *, memory_budget_bytes: int | None = None, latency_budget_ms: float | None = None) -> None:
        self._col.set_budgets(memory_budget_bytes=memory_budget_bytes, latency_budget_ms=latency_budget_ms)

    def close(self) -> None:
        self._col.close()


class LocalBackend(Backend):
    """Collections that are directories (or names under $XSEARCH_HOME/collections)."""

    name = "local"

    def resolve(self, uri: str | None) -> str:
        return str(collection_dir(uri))

    def directory(self, uri: str) -> Path:
        return Path(uri)

    def exists(self, uri: str) -> bool:
        return Collection.exists(uri)

    def open(self, uri: str) -> LocalStore:
        if not Collection.exists(uri):
            raise Collection.missing_error(uri)  # none, or one whose manifest was lost
        try:
            return LocalStore(Path(uri))
        except CollectionError as e:
            if e.code != "collection.old_schema":
                raise
        # A collection from an older xsearch: upgrade its catalog once (a writer migrates on open), then read.
        try:
            Collection.open(uri, writer=True).close()
        except CollectionError as e:
            if e.code not in ("collection.locked", "collection.read_only"):
                raise
            raise CollectionError(f"collection {uri} has an older catalog format and cannot be upgraded now "
                                  f"({e.message})", code="collection.old_schema", collection=uri) from None
        return LocalStore(Path(uri))

    def open_writer(self, uri: str, *, create: StoreSpec | None = None, wait_s: float = 0.0) -> LocalWriter:
        if create is None:
            if not Collection.exists(uri):
                raise Collection.missing_error(uri)
            return LocalWriter(Collection.open(uri, writer=True, wait_s=wait_s))
        col = Collection.open_or_create(uri, model_id=create.model_id, model_spec=create.model_spec,
                                        dims=create.dims, factory=create.factory,
                                        memory_budget_bytes=create.memory_budget_bytes,
                                        latency_budget_ms=getattr(create, "latency_budget_ms", None), wait_s=wait_s)
        return LocalWriter(col)

    def delete(self, uri: str, *, wait_s: float = 0.0) -> None:
        Collection.delete(uri, wait_s=wait_s)
