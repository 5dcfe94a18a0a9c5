"""The storage protocol: what the engine needs from a collection, whatever holds it.

A *store* keeps, for one collection, the files that were indexed (path, modality, size, mtime, content hash,
width/height, duration), their *items* (one vector each: an image, an audio window, a text passage, with its
offset) and the model the vectors came from. The engine talks only to :class:`Store` (reading, long-lived,
thread-safe) and :class:`StoreWriter` (one writer per collection, changes published by ``commit``).

Implementations: ``local`` (FAISS files + SQLite catalog in a directory, index/local/) and ``milvus``
(``milvus-lite:PATH.db`` or ``milvus://HOST:PORT/NAME``, index/milvus/). They depend on this module, never the
reverse; ``xsearch.index.open_store`` (index/__init__.py) picks one from the collection argument.

A second implementation passes the same contract tests (tests/contract/).
"""

from __future__ import annotations

import abc
import datetime as _dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xsearch.core.types import Filters, Hit

#: One track's items for :meth:`StoreWriter.replace_items`: (offsets, vectors [n, dim], snippets or None).
TrackData = tuple[Sequence[float], np.ndarray, "Sequence[str | None] | None"]


@dataclass(frozen=True)
class FileRecord:
    """One indexed file."""

    id: int
    path: str
    modality: str
    size: int
    mtime_ns: int
    hash: str | None
    width: int | None
    height: int | None
    duration: float | None
    model_id: str
    added_at: float
    updated_at: float
    fps: float | None = None
    has_audio: int | None = None


_NS_LIMIT = 2**63 - 1


def to_ns(when) -> int:
    """Epoch nanoseconds from a datetime / date (local time when naive) or epoch seconds, clamped to the range a
    64-bit column holds (about 1678 to 2262: any date outside it compares like its end of the range). What
    :class:`Filters` ``since`` / ``until`` mean against a file's ``mtime_ns``, in every store."""
    if isinstance(when, _dt.datetime):
        try:
            seconds = when.timestamp()
        except (OverflowError, OSError, ValueError):
            seconds = -1e10 if when.year < 1970 else 1e10
    elif isinstance(when, _dt.date):
        return to_ns(_dt.datetime(when.year, when.month, when.day))
    elif isinstance(when, (int, float, np.integer, np.floating)) and not isinstance(when, bool):
        seconds = float(when)
        if seconds != seconds:
            raise ValueError("a date given as epoch seconds must not be NaN")
    else:
        raise TypeError(f"expected a datetime, date or epoch seconds, got {type(when).__name__}")
    return int(max(-_NS_LIMIT, min(_NS_LIMIT, seconds * 1e9)))


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

    # -- keywords: words of text tracks (passages, OCR lines) and file names --------------------------------

    #: Whether the store keeps a keyword index (the local store: SQLite FTS5, index/local/keywords.py).
    supports_keywords: bool = False

    def keyword_counts(self) -> dict[str, dict[str, int]]:
        """Per text track (``passage``, ``ocr``, ``name``): ``{"lines": n, "files": n}``; {} when none."""
        return {}

    def text_settings(self) -> dict:
        """What the collection remembers about its text tracks (``{"text_tracks": ["ocr"]}``)."""
        return {}

    def keyword_search(self, modality: str, text: str, k: int, *, filters: Filters | None = None,
                       exclude_paths: Sequence[str] = ()) -> list[Hit]:
        """The best ``k`` files of ``modality`` whose words (text tracks, file name) match ``text``, best first,
        ``rank`` 1..n; each hit's ``words`` holds its matched lines, ``item_id`` its item nearest the best line.
        ``score``: the share of the query's words found in the file's words (1.0: all of them) plus at most 0.1
        from BM25 (the engine's hybrid ranking puts files with every word first, and fuses only hits scoring 0.6 or
        more, ranking hits within 0.1 of each other alike: engine/hybrid.py). Files failing ``filters`` or at
        ``exclude_paths`` are left out."""
        raise keyword_unsupported(self.uri)

    def file_words(self, file_ids: Sequence[int]) -> dict[int, tuple[list[dict], list[str]]]:
        """Per file: (its lines but its name — dicts with track, text, offset, box, confidence —, the text tracks that
        read it): what ``xsearch copy`` carries to another store's :meth:`StoreWriter.replace_text`. {} without a
        keyword index."""
        return {}


def keyword_unsupported(uri: str, why: str | None = None, code: str = "store.keyword_unsupported"):
    """The one error of a store without a keyword index (code ``store.keyword_unsupported``; a collection made before
    its store had one: ``store.keyword_index_missing``); ``why`` says what it lacks and what it needs."""
    from xsearch.core.errors import UsageError

    return UsageError(f"collection {uri} has no keyword index: "
                      + (why or "keyword search (and OCR) is not supported by this store"),
                      code=code, collection=uri)


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

    def replace_text(self, file_id: int, lines: Sequence[Mapping], read: Sequence[str]) -> None:
        """Make ``lines`` (dicts with track, text, offset, box, confidence) the file's words for the text tracks in
        ``read`` (and index its file name)."""
        raise keyword_unsupported(self.uri)

    def set_text_setting(self, key: str, value) -> None:
        raise keyword_unsupported(self.uri)

    def drop_text_track(self, track: str) -> int:
        """Forget every line of ``track``; returns how many went."""
        raise keyword_unsupported(self.uri)

    def unread_files(self, track: str, modalities: Sequence[str]) -> set[int]:
        """Ids of files of ``modalities`` that text track ``track`` has not read."""
        raise keyword_unsupported(self.uri)

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
    """One kind of store, chosen by ``xsearch.index.backend_for`` from the collection argument."""

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

    def directory(self, uri: str) -> Path | None:
        """The folder on this machine that holds the collection named by the canonical ``uri``; None when it is
        not a folder here (a Milvus server, a milvus-lite database file)."""
        return None
