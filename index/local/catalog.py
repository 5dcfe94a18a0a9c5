"""Catalog: the SQLite side of a collection — which files were indexed and which items (vectors) they gave.

Two tables. ``files``: one row per indexed file (path, modality, size, mtime, content hash, width/height,
duration, the model that embedded it). ``items``: one row per vector; ``items.id`` IS the id of that vector
in the modality's FAISS index; ``offset`` is the audio window start in seconds or the text passage index
(0 for images); ``snippet`` previews a text passage.

Table ``vector_files`` names, per modality, the vector index file that matches the committed items: the
collection writes a new file, then commits the new name together with the item changes.

The database runs in WAL mode, so readers see the last committed state while a writer works. Writes are
explicit: every change opens a transaction that stays open until :meth:`commit` (or :meth:`rollback`), which
lets the collection commit the catalog only after the vector files are safely on disk. The schema carries a
version (``PRAGMA user_version``) and is upgraded step by step by ``_MIGRATIONS``.

Hostile files: the database and its -wal / -shm files must be regular files (never followed through a symbolic
link); a reader opens the database read-only (``mode=ro``, plus ``immutable=1`` when the folder cannot be written,
e.g. a read-only mount); every SQLite error that escapes a method becomes a one-line CollectionError
(``collection.damaged``, ``collection.disk_full``, ...); vector file names read from ``vector_files`` must be
``<modality>.<6 digits>.faiss`` (no path can point outside the collection).
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xsearch.core.errors import CollectionError, CollectionLockedError

from ..store import FileRecord, to_ns
from .atomic import check_regular, dir_writable

SCHEMA_VERSION = 2

#: _MIGRATIONS[v] turns a schema of version v-1 into version v (version 0 is an empty database).
_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        modality TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        hash TEXT,
        width INTEGER,
        height INTEGER,
        duration REAL,
        model_id TEXT NOT NULL,
        added_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX files_by_hash ON files(hash, size);
    CREATE INDEX files_by_modality ON files(modality);
    -- AUTOINCREMENT: an item id is never reused, so a reader holding an older index never maps a
    -- deleted vector onto a newer item.
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        modality TEXT NOT NULL,
        offset REAL NOT NULL DEFAULT 0,
        snippet TEXT
    );
    CREATE INDEX items_by_file ON items(file_id);
    CREATE INDEX items_by_modality ON items(modality, id);
    -- The vector index file that holds the committed vectors of each modality. It changes in the same
    -- transaction as the items, so one catalog commit publishes catalog and vectors together.
    CREATE TABLE vector_files (
        modality TEXT PRIMARY KEY,
        file TEXT NOT NULL
    );
    """,
    2: """
    -- Video files: frame rate and whether a sound track was indexed.
    ALTER TABLE files ADD COLUMN fps REAL;
    ALTER TABLE files ADD COLUMN has_audio INTEGER;
    -- Zero-shot tags of a file (`xsearch tag`), best score per tag.
    CREATE TABLE tags (
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        score REAL NOT NULL,
        PRIMARY KEY (file_id, tag)
    );
    CREATE INDEX tags_by_tag ON tags(tag, score);
    """,
}

_FILE_COLUMNS = ("id, path, modality, size, mtime_ns, hash, width, height, duration, model_id, added_at, "
                 "updated_at, fps, has_audio")
_SQL_CHUNK = 900  # ids per statement, well under SQLite's host-parameter limit


@dataclass(frozen=True)
class ItemRow:
    """One vector's catalog entry joined with its file."""

    id: int
    file_id: int
    path: str
    modality: str
    offset: float
    snippet: str | None
    size: int
    mtime_ns: int
    width: int | None
    height: int | None
    duration: float | None
    hash: str | None


def _chunks(values: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), _SQL_CHUNK):
        yield [int(v) for v in values[start:start + _SQL_CHUNK]]


def _basename(path: str) -> str:
    return path.rsplit("/", 1)[-1]


#: The only vector file names a catalog may name: ``<modality>.<generation>.faiss``, inside the collection.
VECTOR_FILE_RE = re.compile(r"([a-z]+)\.[0-9]{6}\.faiss")


def _damaged(path: Path, why: str) -> CollectionError:
    return CollectionError(f"catalog {path} is damaged ({why})", code="collection.damaged",
                           collection=str(path.parent), path=str(path), reason=why)


def _sqlite_error(exc: sqlite3.Error, path: Path) -> CollectionError:
    """The one-line CollectionError for an SQLite error on the catalog at ``path``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    where = dict(collection=str(path.parent), path=str(path), reason=text)
    if name == "SQLITE_FULL" or "database or disk is full" in text:
        return CollectionError(f"no space left on the disk holding {path.parent} (catalog: {text})",
                               code="collection.disk_full", **where)
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return CollectionError(f"catalog {path} cannot be written ({text})", code="collection.read_only", **where)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in text:
        return CollectionLockedError(f"catalog {path} is busy in another process ({text})", **where)
    if name.startswith(("SQLITE_PERM", "SQLITE_AUTH")):
        return CollectionError(f"permission denied: cannot use catalog {path} ({text})",
                               code="collection.permission_denied", **where)
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_NOLFS")):
        return CollectionError(f"cannot read or write catalog {path} ({text})", code="collection.io_error", **where)
    return _damaged(path, text)


#: Caller mistakes (a foreign key to a missing file, a closed catalog) stay Python errors; everything else that
#: SQLite raises is about the database file and becomes a CollectionError.
_PASS_THROUGH = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def _guarded(func):
    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        try:
            return func(self, *args, **kwargs)
        except _PASS_THROUGH:
            raise
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, self.path) from None
    return wrapper


def _guard_sqlite_errors(cls):
    """Class decorator: every public method and property of ``cls`` turns escaping SQLite errors into
    CollectionErrors (one place, so methods added later are covered too)."""
    for name, attr in list(vars(cls).items()):
        if name.startswith("__") or isinstance(attr, (classmethod, staticmethod)):
            continue
        if isinstance(attr, property) and attr.fget is not None:
            setattr(cls, name, property(_guarded(attr.fget), attr.fset, attr.fdel, attr.__doc__))
        elif callable(attr):
            setattr(cls, name, _guarded(attr))
    return cls


@_guard_sqlite_errors
class Catalog:
    """SQLite catalog of files and items; see the module docstring."""

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool):
        """Use :meth:`open`."""
        self._conn = conn
        self.path = path
        self.readonly = readonly

    @classmethod
    def open(cls, path: str | os.PathLike, *, readonly: bool = False, must_exist: bool = False,
             immutable: bool | None = None) -> Catalog:
        """Open (creating and migrating when writable) the catalog at ``path``.

        A read-only catalog never writes and is opened read-only (SQLite ``mode=ro``); opening one that does
        not exist raises CollectionError. ``immutable`` (default: when the folder cannot be written and no
        -wal/-shm pair is there to read) opens it with SQLite's ``immutable=1``, which needs no -shm file: the
        way to read a collection on a read-only mount. ``must_exist``: a missing or empty (schema-less)
        database is damage, not a new catalog (a collection whose manifest exists).
        """
        path = Path(path)
        folder = path.parent
        present = {suffix: check_regular(Path(f"{path}{suffix}"), collection=folder)
                   for suffix in ("", "-wal", "-shm")}  # never through a link into another collection
        if not present[""] and (readonly or must_exist):
            raise CollectionError(f"catalog {path} is missing", code="collection.damaged",
                                  collection=str(folder), path=str(path), reason="missing")
        if readonly:
            if immutable is None:
                immutable = not dir_writable(folder) and not (present["-wal"] and present["-shm"])
            mode = "ro&immutable=1" if immutable else "ro"
        else:
            mode = "rw" if must_exist else "rwc"
        uri = f"file:{urllib.parse.quote(str(path.absolute()), errors='surrogateescape')}?mode={mode}"  # any bytes
        conn = None
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10.0)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("xs_basename", 1, _basename, deterministic=True)
            if readonly:
                conn.execute("PRAGMA query_only = ON")
            else:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            self = cls(conn, path, readonly)
            self._migrate(must_exist)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _sqlite_error(exc, path) from None
            raise
        return self

    def _migrate(self, must_exist: bool = False) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CollectionError(
                f"catalog {self.path} has schema version {version}, newer than this xsearch understands "
                f"({SCHEMA_VERSION})", code="collection.newer_format", collection=str(self.path.parent),
                path=str(self.path), version=int(version))
        if version == SCHEMA_VERSION:
            return
        if version == 0 and (must_exist or self.readonly):
            raise _damaged(self.path, "it is empty")
        if self.readonly:
            raise CollectionError(
                f"catalog {self.path} has an old schema (version {version})", code="collection.old_schema",
                collection=str(self.path.parent), path=str(self.path), version=int(version))
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._conn.executescript(
                f"BEGIN IMMEDIATE;\n{_MIGRATIONS[target]}\nPRAGMA user_version = {target};\nCOMMIT;"
            )

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # -- transactions ------------------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """True when there are uncommitted changes."""
        return self._conn.in_transaction

    def _begin(self) -> None:
        if self.readonly:
            raise CollectionError(f"catalog {self.path} is open read-only", code="collection.opened_read_only",
                                  collection=str(self.path.parent))
        if not self._conn.in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")

    def sql(self, *, write: bool = False) -> sqlite3.Connection:
        """The connection, for the catalog's companion tables (index/local/keywords.py); ``write=True`` opens the
        writer's transaction first, so their changes commit with the catalog's."""
        if write:
            self._begin()
        return self._conn

    def commit(self) -> None:
        """Make every change since the last commit durable."""
        if self._conn.in_transaction:
            self._conn.execute("COMMIT")

    def rollback(self) -> None:
        """Discard every change since the last commit."""
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        """Roll back anything uncommitted and close the connection."""
        try:
            self.rollback()
        finally:
            self._conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- files -------------------------------------------------------------------------------------------

    def get_file(self, path: str | os.PathLike) -> FileRecord | None:
        """The file row for ``path``, or None."""
        row = self._conn.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?", (str(path),)).fetchone()
        return FileRecord(*row) if row else None

    def get_file_by_id(self, file_id: int) -> FileRecord | None:
        row = self._conn.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?", (int(file_id),)).fetchone()
        return FileRecord(*row) if row else None

    def find_by_hash(self, hash: str, size: int) -> list[FileRecord]:
        """Files with this content hash and size (a renamed or copied file keeps its vectors)."""
        rows = self._conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE hash = ? AND size = ? ORDER BY id", (hash, int(size))
        ).fetchall()
        return [FileRecord(*r) for r in rows]

    def files(self, modality: str | None = None, under: str | os.PathLike | None = None) -> list[FileRecord]:
        """Every file, optionally of one modality and/or at or below folder ``under`` (a path prefix)."""
        where, args = [], []
        if modality is not None:
            where.append("modality = ?")
            args.append(modality)
        if under is not None:
            prefix = str(under).rstrip("/") + "/"
            where.append("(substr(path, 1, ?) = ? OR path = ?)")
            args += [len(prefix), prefix, prefix[:-1] or "/"]
        sql = f"SELECT {_FILE_COLUMNS} FROM files"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [FileRecord(*r) for r in self._conn.execute(sql + " ORDER BY path", args).fetchall()]

    def upsert_file(self, path: str | os.PathLike, *, modality: str, size: int, mtime_ns: int, model_id: str,
                    hash: str | None = None, width: int | None = None, height: int | None = None,
                    duration: float | None = None, fps: float | None = None, has_audio: bool | None = None) -> int:
        """Insert the file, or update its metadata when ``path`` is known; returns its id (kept on update).

        Updating does not touch the file's items: clear them through the collection when the content changed.
        """
        self._begin()
        now = time.time()
        row = self._conn.execute(
            """INSERT INTO files (path, modality, size, mtime_ns, hash, width, height, duration, model_id,
                                  added_at, updated_at, fps, has_audio)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(path) DO UPDATE SET
                   modality = excluded.modality, size = excluded.size, mtime_ns = excluded.mtime_ns,
                   hash = excluded.hash, width = excluded.width, height = excluded.height,
                   duration = excluded.duration, model_id = excluded.model_id, updated_at = excluded.updated_at,
                   fps = excluded.fps, has_audio = excluded.has_audio
               RETURNING id""",
            (str(path), modality, int(size), int(mtime_ns), hash, width, height, duration, model_id, now, now,
             fps, None if has_audio is None else int(bool(has_audio))),
        ).fetchone()
        return int(row[0])

    def rename_file(self, file_id: int, new_path: str | os.PathLike, mtime_ns: int) -> None:
        """Point a file row (and so its items and vectors) at a new path, e.g. after a move."""
        self._begin()
        try:
            cur = self._conn.execute(
                "UPDATE files SET path = ?, mtime_ns = ?, updated_at = ? WHERE id = ?",
                (str(new_path), int(mtime_ns), time.time(), int(file_id)),
            )
        except sqlite3.IntegrityError:
            raise ValueError(f"cannot rename file {file_id}: {new_path} is already in the catalog") from None
        if cur.rowcount != 1:
            raise KeyError(f"no file with id {file_id}")

    def touch_file(self, file_id: int, *, mtime_ns: int, size: int | None = None) -> None:
        """Record a new mtime (and size) for a file whose content did not change."""
        self._begin()
        cur = self._conn.execute(
            "UPDATE files SET mtime_ns = ?, size = COALESCE(?, size), updated_at = ? WHERE id = ?",
            (int(mtime_ns), None if size is None else int(size), time.time(), int(file_id)),
        )
        if cur.rowcount != 1:
            raise KeyError(f"no file with id {file_id}")

    def delete_files(self, file_ids: Iterable[int]) -> dict[str, np.ndarray]:
        """Delete files and their items; returns the deleted item ids per modality."""
        ids = sorted({int(i) for i in file_ids})
        removed = self.item_ids_of_files(ids)
        self._begin()
        for chunk in _chunks(ids):
            self._conn.execute(f"DELETE FROM files WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        return removed

    def delete_items_of(self, file_ids: Iterable[int]) -> dict[str, np.ndarray]:
        """Delete the items of these files but keep the file rows; returns deleted item ids per modality."""
        ids = sorted({int(i) for i in file_ids})
        removed = self.item_ids_of_files(ids)
        self._begin()
        for chunk in _chunks(ids):
            self._conn.execute(f"DELETE FROM items WHERE file_id IN ({','.join('?' * len(chunk))})", chunk)
        return removed

    def delete_items(self, item_ids: Iterable[int]) -> int:
        """Delete single items by id (their files stay); returns how many rows went."""
        ids = sorted({int(i) for i in item_ids})
        self._begin()
        n = 0
        for chunk in _chunks(ids):
            n += self._conn.execute(f"DELETE FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk).rowcount
        return n

    def item_ids_of_files(self, file_ids: Iterable[int]) -> dict[str, np.ndarray]:
        """{modality: sorted int64 item ids} of the items of these files."""
        found: dict[str, list[int]] = {}
        for chunk in _chunks(sorted({int(i) for i in file_ids})):
            rows = self._conn.execute(
                f"SELECT modality, id FROM items WHERE file_id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            for modality, item_id in rows:
                found.setdefault(modality, []).append(item_id)
        return {m: np.sort(np.asarray(v, dtype=np.int64)) for m, v in found.items()}

    # -- items -------------------------------------------------------------------------------------------

    def add_items(self, file_id: int, modality: str, offsets: Sequence[float],
                  snippets: Sequence[str | None] | None = None) -> list[int]:
        """Add one item per offset to a file; returns the new item ids (= the FAISS ids to use), in order."""
        if snippets is not None and len(snippets) != len(offsets):
            raise ValueError(f"{len(snippets)} snippets for {len(offsets)} offsets")
        self._begin()
        ids = []
        for i, offset in enumerate(offsets):
            snippet = None if snippets is None else snippets[i]
            row = self._conn.execute(
                "INSERT INTO items (file_id, modality, offset, snippet) VALUES (?, ?, ?, ?) RETURNING id",
                (int(file_id), modality, float(offset), snippet),
            ).fetchone()
            ids.append(int(row[0]))
        return ids

    def items(self, ids: Iterable[int]) -> dict[int, ItemRow]:
        """Item rows joined with their files, keyed by item id; ids not in the catalog are absent."""
        wanted = sorted({int(i) for i in ids if int(i) >= 0})
        out: dict[int, ItemRow] = {}
        for chunk in _chunks(wanted):
            rows = self._conn.execute(
                f"""SELECT i.id, i.file_id, f.path, i.modality, i.offset, i.snippet, f.size, f.mtime_ns,
                           f.width, f.height, f.duration, f.hash
                    FROM items i JOIN files f ON f.id = i.file_id
                    WHERE i.id IN ({','.join('?' * len(chunk))})""",
                chunk,
            ).fetchall()
            for r in rows:
                out[int(r[0])] = ItemRow(*r)
        return out

    def item_ids(self, modality: str) -> np.ndarray:
        """Every item id of a modality, sorted (int64)."""
        rows = self._conn.execute("SELECT id FROM items WHERE modality = ? ORDER BY id", (modality,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def file_ids_of_items(self, item_ids: Iterable[int]) -> np.ndarray:
        """The distinct files that own these items (int64, sorted)."""
        files: set[int] = set()
        for chunk in _chunks(sorted({int(i) for i in item_ids})):
            rows = self._conn.execute(
                f"SELECT DISTINCT file_id FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            files.update(r[0] for r in rows)
        return np.asarray(sorted(files), dtype=np.int64)

    def modalities(self) -> list[str]:
        """Modalities that have at least one item."""
        return [r[0] for r in self._conn.execute("SELECT DISTINCT modality FROM items ORDER BY modality")]

    def filter_ids(self, modality: str, *, path_glob: str | None = None,
                   min_duration: float | None = None, max_duration: float | None = None,
                   min_size: int | None = None, max_size: int | None = None,
                   since=None, until=None, tag: str | None = None) -> np.ndarray:
        """Item ids of ``modality`` whose file passes every given filter (for ``search(allowed_ids=...)``).

        - ``path_glob``: SQLite GLOB (``*``, ``?``, ``[...]``, case-sensitive); a pattern with a ``/`` matches
          the whole path (``*/holiday/*``), one without matches the file name (``*.jpg``, ``cat*``);
        - ``min_duration`` / ``max_duration``: seconds, inclusive; files without a duration never pass;
        - ``min_size`` / ``max_size``: bytes, inclusive;
        - ``since`` / ``until``: file modification time, inclusive / exclusive; a datetime, date (midnight local
          time) or epoch seconds;
        - ``tag``: files tagged with it (``xsearch tag``).
        """
        where, args = ["i.modality = ?"], [modality]
        if tag is not None:
            where.append("f.id IN (SELECT file_id FROM tags WHERE tag = ?)")
            args.append(str(tag))
        if path_glob is not None:
            where.append("f.path GLOB ?" if "/" in path_glob else "xs_basename(f.path) GLOB ?")
            args.append(path_glob)
        if min_duration is not None:
            where.append("f.duration >= ?")
            args.append(float(min_duration))
        if max_duration is not None:
            where.append("f.duration <= ?")
            args.append(float(max_duration))
        if min_size is not None:
            where.append("f.size >= ?")
            args.append(int(min_size))
        if max_size is not None:
            where.append("f.size <= ?")
            args.append(int(max_size))
        if since is not None:
            where.append("f.mtime_ns >= ?")
            args.append(to_ns(since))
        if until is not None:
            where.append("f.mtime_ns < ?")
            args.append(to_ns(until))
        rows = self._conn.execute(
            f"SELECT i.id FROM items i JOIN files f ON f.id = i.file_id WHERE {' AND '.join(where)} ORDER BY i.id",
            args,
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    # -- vector files ------------------------------------------------------------------------------------

    def vector_files(self) -> dict[str, str]:
        """{modality: file name} of the committed vector index files (uncommitted changes included for a
        writer). A name that is not ``<modality>.<6 digits>.faiss`` (a path, another modality's file) is damage."""
        return self._checked_vector_files(self._conn.execute("SELECT modality, file FROM vector_files").fetchall())

    def _checked_vector_files(self, rows) -> dict[str, str]:
        for modality, file in rows:
            match = VECTOR_FILE_RE.fullmatch(file) if isinstance(file, str) else None
            if match is None or match.group(1) != modality:
                raise _damaged(self.path, f"it names {file!r} as the {modality} vector file")
        return dict(rows)

    def vector_state(self, modality: str) -> tuple[str | None, np.ndarray]:
        """(vector file name, sorted item ids) of ``modality`` from one consistent snapshot of the catalog.

        A reader loading a vector index checks it against these ids: read separately, a writer's commit in
        between would make a sound file look damaged.
        """
        own = not self._conn.in_transaction
        if own:
            self._conn.execute("BEGIN")
        try:
            name = self._checked_vector_files(self._conn.execute(
                "SELECT modality, file FROM vector_files WHERE modality = ?", (modality,)).fetchall()).get(modality)
            ids = self.item_ids(modality)
        finally:
            if own:
                self._conn.execute("COMMIT")
        return name, ids

    def set_vector_file(self, modality: str, file: str) -> None:
        """Record ``file`` as the vector index of ``modality``; published by the next commit."""
        match = VECTOR_FILE_RE.fullmatch(file)
        if match is None or match.group(1) != modality:
            raise ValueError(f"{file!r} is not a vector file name for {modality}")
        self._begin()
        self._conn.execute(
            "INSERT INTO vector_files (modality, file) VALUES (?, ?) "
            "ON CONFLICT(modality) DO UPDATE SET file = excluded.file",
            (modality, file),
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Per modality: {"files": files of that modality, "items": items of that modality}."""
        out: dict[str, dict[str, int]] = {}
        for modality, n_files in self._conn.execute("SELECT modality, COUNT(*) FROM files GROUP BY modality"):
            out.setdefault(modality, {"files": 0, "items": 0})["files"] = int(n_files)
        for modality, n_items in self._conn.execute("SELECT modality, COUNT(*) FROM items GROUP BY modality"):
            out.setdefault(modality, {"files": 0, "items": 0})["items"] = int(n_items)
        return out

    # -- for long-lived readers --------------------------------------------------------------------------

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: changes when another connection commits (a cheap generation check)."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def item_rows_of_file(self, file_id: int) -> list[tuple[int, str, float]]:
        """(item id, modality, offset) of one file's items, in offset order."""
        return [(int(i), m, float(o)) for i, m, o in self._conn.execute(
            "SELECT id, modality, offset FROM items WHERE file_id = ? ORDER BY offset, id", (int(file_id),))]

    def item_files(self, item_ids) -> np.ndarray:
        """The file id of each item id (int64, same order; -1 for ids not in the catalog)."""
        ids = [int(i) for i in item_ids]
        owner: dict[int, int] = {}
        for chunk in _chunks(sorted(set(ids))):
            rows = self._conn.execute(
                f"SELECT id, file_id FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
            owner.update((int(a), int(b)) for a, b in rows)
        return np.asarray([owner.get(i, -1) for i in ids], dtype=np.int64)

    def file_sizes(self) -> set[int]:
        """Distinct sizes of the indexed files."""
        return {int(r[0]) for r in self._conn.execute("SELECT DISTINCT size FROM files")}

    # -- tags --------------------------------------------------------------------------------------------

    def set_tags(self, file_id: int, tags: Sequence[tuple[str, float]]) -> None:
        """Make these the file's tags (``[(tag, score)]``); an empty list removes them."""
        self._begin()
        self._conn.execute("DELETE FROM tags WHERE file_id = ?", (int(file_id),))
        self._conn.executemany("INSERT INTO tags (file_id, tag, score) VALUES (?, ?, ?)",
                               [(int(file_id), str(t), float(sc)) for t, sc in tags])

    def tags_of(self, file_id: int) -> list[tuple[str, float]]:
        """A file's tags, best first."""
        return [(t, float(sc)) for t, sc in self._conn.execute(
            "SELECT tag, score FROM tags WHERE file_id = ? ORDER BY score DESC, tag", (int(file_id),))]

    def tag_counts(self) -> dict[str, int]:
        """How many files carry each tag."""
        return {t: int(n) for t, n in self._conn.execute(
            "SELECT tag, COUNT(*) FROM tags GROUP BY tag ORDER BY COUNT(*) DESC, tag")}
