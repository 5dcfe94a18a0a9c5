"""The ``milvus`` store: a collection in Milvus behind the storage protocol (index/store.py).

Two ways to name one (the ``-c`` argument):

- ``milvus-lite:PATH.db`` — embedded milvus-lite (a laptop, the tests). milvus-lite runs inside the process that
  opens the .db (one process per .db: another process that tries gets CollectionLockedError at once);
- ``milvus://HOST:PORT/NAME`` — a Milvus standalone or cluster; the token comes from ``$XSEARCH_MILVUS_TOKEN``
  (the CLI's ``--milvus-token`` sets it).

Layout: one xsearch collection NAME (``xsearch`` in a .db) is a few Milvus collections:

``NAME__meta``     key → JSON: ``spec`` (model, dims, index per track, creation id), ``state`` (commit generation,
                   next ids, counts, a commit in flight), ``lease`` (a server's writer lease), ``journal:<n>``
                   (the file ids of the commit in flight, 4,000 a row);
``NAME__files``    one row per indexed file (what the local catalog's ``files`` table holds);
``NAME__<track>``  one row per item (an image, an audio window, a text passage) of a track: the vector, its file
                   id, offset, snippet, the generation that wrote it, and its file's metadata (path, file name,
                   size, mtime, width, height, duration) copied onto it, so that :class:`Filters` compile to one
                   Milvus filter expression and search needs no join.

Search: best item per file is Milvus's ``group_by_field="file_id"``; milvus-lite groups an over-fetch of 10×limit
items, so when that may have missed files (more items than it looked at) or a post-filter dropped some, the
store falls back to over-fetching items and grouping them itself, as the local store does. Path globs compile
to ``like`` (``*`` → ``%``, ``?`` → ``_``, exact); a glob with ``[...]`` or a literal ``%``, ``_`` or ``\\``
compiles to a wider ``like`` and the exact glob is applied to the results (post-filter).

Writer: one per collection — milvus-lite: an flock on ``PATH.db.lock`` beside the .db; a server: a lease row
(owner, expiry; renewed in the background, taken over once expired). Milvus has no multi-statement
transactions, so a writer buffers its changes in memory and applies them in :meth:`MilvusWriter.commit`:

1. ``state.pending = G+1`` and ``journal:<n>`` rows naming every file the commit touches;
2. upsert the file rows, insert the new item rows with ``gen = G+1`` (new item ids; a renamed or touched file's
   items are re-written with its new metadata);
3. publish: ``state.gen = G+1`` (one row). Readers ignore items above the published generation (a search
   runs unfiltered and, only when a hit came from an unpublished commit, again with ``gen <= G``), so none of
   the new items is visible before this point and all are after it;
4. delete the replaced items (``gen <= G``) and removed files' rows, clear the journal and ``pending``.

Between 3 and 4 a reader may briefly see a replaced file's old items beside its new ones (grouped by file id,
so still one hit per file) and a removed file. A crash before 3 leaves items no reader sees and file rows
that may already describe the new content: the next writer deletes the journaled files entirely (rows and
items of every generation), so the next ``xsearch index`` embeds them again. A crash after 3 is completed by
the next writer (step 4). It also deletes items whose file row is missing. On milvus-lite every commit ends
with a flush.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from xsearch.core.errors import CollectionError, CollectionLockedError, UsageError, XsearchError
from xsearch.core.types import Filters, Hit

from . import locks
from .local import vectors as _vectors
from .local.catalog import FileRow, to_ns
from .locks import WriterLock
from .store import Backend, FileRecord, Store, StoreSpec, StoreWriter, TrackData, assemble_items

LITE_PREFIX = "milvus-lite:"
SERVER_PREFIX = "milvus://"
TOKEN_ENV = "XSEARCH_MILVUS_TOKEN"
LITE_NAME = "xsearch"  # the xsearch collection inside a milvus-lite .db
FORMAT_VERSION = 1
DEFAULT_PORT = 19530

#: pymilvus pings every 10 s; a gRPC server's default policy (one ping per 5 min without data) answers the third
#: ping inside one long call with GOAWAY, cutting calls longer than ~30 s. Pinging rarely avoids that.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 600_000}
CONNECT_TIMEOUT_S = 10.0  # how long to try reaching a Milvus server
LOAD_RETRIES = 3  # load-and-retry rounds for a call that finds its collection released (see _Db.call)
MAX_TOPK = 16_384  # Milvus's limit on search / query results per call
LITE_GROUP_OVERFETCH = 10  # milvus-lite's group_by looks at limit × 10 items (engine/collection.py)
ID_CHUNK = 1000  # ids per `in [...]` expression
INSERT_BYTES = 16 << 20  # bytes of vectors per insert call
SCAN_BATCH = 4096
LEASE_TTL_S = 60.0
VARCHAR_MAX = 65_535

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
_FILE_FIELDS = ["id", "path", "modality", "size", "mtime_ns", "hash", "width", "height", "duration", "model_id",
                "added_at", "updated_at", "fps", "has_audio", "tracks", "tag_scores"]
MAX_TAGS = 256  # tags copied onto an item row (a file's best ones); a file row keeps them all
TAG_CHARS = 256
_HIT_FIELDS = ["file_id", "gen", "path", "name", "at", "snippet", "width", "height", "duration", "size"]

for _name in ("milvus_lite", "pymilvus"):  # one coded line instead of library tracebacks on stderr (see _quiet)
    logging.getLogger(_name).addHandler(logging.NullHandler())


def _quiet_pymilvus() -> None:
    """pymilvus logs every failed call with a traceback on its own stderr handler; xsearch turns those failures
    into one coded line, so keep pymilvus to critical messages (``XSEARCH_MILVUS_DEBUG=1`` keeps its logs)."""
    if os.environ.get("XSEARCH_MILVUS_DEBUG"):
        return
    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.decorators", "pymilvus.bulk_writer"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _pymilvus():
    """The pymilvus module, or one coded error naming the extra to install."""
    # gRPC's C core logs each fork (decode workers) while milvus-lite's server threads run: keep it to errors
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        import pymilvus
    except ImportError:
        raise XsearchError("the Milvus store needs pymilvus, which is not installed: install the 'milvus' extra "
                           "(pip install 'xsearch[milvus]')", code="store.missing_dependency",
                           extra="milvus", package="pymilvus") from None
    _quiet_pymilvus()
    return pymilvus


# -- collection arguments ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A parsed Milvus collection argument."""

    uri: str  # canonical: milvus-lite:/abs/x.db or milvus://host:port/NAME
    lite: bool
    name: str
    path: str = ""  # milvus-lite: the .db (a directory)
    address: str = ""  # server: host:port

    def coll(self, part: str) -> str:
        return f"{self.name}__{part}"


def parse_uri(uri: str) -> Target:
    text = str(uri)
    if text.startswith(LITE_PREFIX):
        raw = text[len(LITE_PREFIX):]
        if not raw.strip():
            raise _bad_uri(text, "give the path of a .db after milvus-lite:")
        path = os.path.abspath(os.path.expanduser(raw))
        if not path.endswith(".db"):
            raise _bad_uri(text, "a milvus-lite database path must end in .db")
        return Target(LITE_PREFIX + path, True, LITE_NAME, path=path)
    if text.startswith(SERVER_PREFIX):
        from urllib.parse import urlsplit

        parts = urlsplit(text)
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise _bad_uri(text, "the port must be a number") from None
        host = parts.hostname
        name = parts.path.strip("/")
        if not host:
            raise _bad_uri(text, "use milvus://HOST:PORT/NAME")
        if not _NAME_RE.fullmatch(name):
            raise _bad_uri(text, "NAME must be letters, digits and _ (not starting with a digit), as in "
                                 "milvus://localhost:19530/photos")
        return Target(f"{SERVER_PREFIX}{host}:{port}/{name}", False, name, address=f"{host}:{port}")
    raise _bad_uri(text, "use milvus-lite:PATH.db or milvus://HOST:PORT/NAME")


def _bad_uri(uri: str, why: str) -> UsageError:
    return UsageError(f"bad Milvus collection {uri!r}: {why}", code="store.bad_uri", collection=uri, reason=why)


# -- index types: FAISS factory vocabulary → Milvus --------------------------------------------------------------

LITE_INDEX_TYPES = ("FLAT", "AUTOINDEX", "HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8")
_FACTORY_FORMS = "Flat, HNSW<M>, HNSW<M>_SQ8, IVF<nlist>,Flat, IVF<nlist>,SQ8, IVF<nlist>,PQ<m> (server only) or auto"


@dataclass(frozen=True)
class IndexChoice:
    """A Milvus vector index for one track: type, build parameters, default search parameters."""

    factory: str  # the FAISS factory string it stands for
    index_type: str
    build: dict
    search: dict

    @property
    def label(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.build.items())
        return f"{self.factory} (Milvus {self.index_type}{' ' + params if params else ''})"

    def to_json(self) -> dict:
        return {"factory": self.factory, "index_type": self.index_type, "build": self.build, "search": self.search}

    @classmethod
    def from_json(cls, d: dict) -> IndexChoice:
        return cls(d["factory"], d["index_type"], dict(d.get("build") or {}), dict(d.get("search") or {}))


def choose_index(factory: str, *, lite: bool, n: int = 0) -> IndexChoice:
    """The Milvus index for a FAISS factory string (UsageError code store.unsupported_index where none maps).

    Flat → FLAT; HNSW<M> → HNSW (M, efConstruction 80, ef 128); HNSW<M>_SQ8 → HNSW_SQ; IVF<n>,Flat → IVF_FLAT
    nlist=n; IVF<n>,SQ8 → IVF_SQ8; IVF<n>,PQ<m> → IVF_PQ (Milvus servers; milvus-lite has no IVF_PQ); "auto" →
    FLAT below 50k vectors on milvus-lite (switched to HNSW32 by maybe_reindex, as the local store does), HNSW32 on
    a server (its growing segments are searched exactly anyway)."""
    text = str(factory).strip()
    if text.lower() == "auto":
        return choose_index("HNSW32" if not lite or n >= _vectors.FLAT_MAX_VECTORS else "Flat", lite=lite)
    compact = text.replace(" ", "")
    hnsw_search = {"ef": _vectors.HNSW_EF_SEARCH}
    if compact.lower() == "flat":
        return IndexChoice("Flat", "FLAT", {}, {})
    m = re.fullmatch(r"HNSW(\d+)(?:_SQ8|,SQ8)?", compact, re.I)
    if m and 2 <= int(m.group(1)) <= 2048:
        build = {"M": int(m.group(1)), "efConstruction": _vectors.HNSW_EF_CONSTRUCTION}
        if "SQ8" in compact.upper():
            return IndexChoice(f"HNSW{m.group(1)}_SQ8", "HNSW_SQ", {**build, "sq_type": "SQ8"}, hnsw_search)
        return IndexChoice(f"HNSW{m.group(1)}", "HNSW", build, hnsw_search)
    m = re.fullmatch(r"IVF(\d+),(Flat|SQ8|PQ(\d+)(?:x(\d+))?)", compact, re.I)
    if m and 1 <= int(m.group(1)) <= 65_536:
        nlist = int(m.group(1))
        search = {"nprobe": _vectors.default_nprobe(nlist)}
        codes = m.group(2).upper()
        if codes == "FLAT":
            return IndexChoice(f"IVF{nlist},Flat", "IVF_FLAT", {"nlist": nlist}, search)
        if codes == "SQ8":
            return IndexChoice(f"IVF{nlist},SQ8", "IVF_SQ8", {"nlist": nlist}, search)
        if lite:
            raise UsageError(f"index type {text!r} (IVF_PQ) is not available in milvus-lite; it supports "
                             f"{', '.join(LITE_INDEX_TYPES)}: use e.g. IVF{nlist},SQ8 or HNSW32",
                             code="store.unsupported_index", factory=text, store="milvus-lite",
                             supported=_FACTORY_FORMS.replace(", IVF<nlist>,PQ<m> (server only)", ""))
        nbits = int(m.group(4) or 8)
        return IndexChoice(text, "IVF_PQ", {"nlist": nlist, "m": int(m.group(3)), "nbits": nbits}, search)
    store = "milvus-lite" if lite else "milvus"
    raise UsageError(f"index type {text!r} has no Milvus equivalent; the Milvus store takes {_FACTORY_FORMS}",
                     code="store.unsupported_index", factory=text, store=store, supported=_FACTORY_FORMS)


def _search_params(choice: IndexChoice, params: dict | None, limit: int) -> dict:
    """Milvus search parameters: IP metric, the index's defaults, the caller's efSearch / nprobe."""
    inner = dict(choice.search)
    params = params or {}
    if choice.index_type.startswith("HNSW"):
        inner["ef"] = max(int(params.get("efSearch", inner.get("ef", _vectors.HNSW_EF_SEARCH))), limit)
    elif choice.index_type.startswith("IVF"):
        nlist = int(choice.build.get("nlist", 1))
        inner["nprobe"] = min(nlist, int(params.get("nprobe", inner.get("nprobe", 1))))
    return {"metric_type": "IP", "params": inner}


# -- filters → Milvus expressions --------------------------------------------------------------------------------


def quote(text: str) -> str:
    """A Milvus string literal (escapes the characters both milvus-lite's and Milvus's parsers need escaped)."""
    out = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + out.replace("\t", "\\t") + '"'


def _glob_tokens(pattern: str) -> list[tuple[str, str]] | None:
    """SQLite GLOB tokens: ("*", ""), ("?", ""), ("class", regex), ("lit", char); None if a ``[`` never closes
    (SQLite matches nothing then)."""
    tokens, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            tokens.append(("*", ""))
        elif c == "?":
            tokens.append(("?", ""))
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] == "^"
            if negate:
                j += 1
            start = j
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                return None
            body = pattern[start:j]
            parts, k = [], 0
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    parts.append(f"{re.escape(body[k])}-{re.escape(body[k + 2])}")
                    k += 3
                else:
                    parts.append(re.escape(body[k]))
                    k += 1
            tokens.append(("class", f"[{'^' if negate else ''}{''.join(parts)}]"))
            i = j
        else:
            tokens.append(("lit", c))
        i += 1
    return tokens


def glob_to_like(pattern: str) -> tuple[str, re.Pattern | None]:
    """(``like`` pattern, exact regex or None): the regex is None when the ``like`` is exact; otherwise the ``like``
    selects a superset and the regex (SQLite GLOB semantics) must be applied to its results."""
    tokens = _glob_tokens(pattern)
    if tokens is None:
        return "", re.compile(r"(?!)")
    like, exact, regex = [], True, []
    for kind, value in tokens:
        if kind == "*":
            like.append("%")
            regex.append(".*")
        elif kind == "?":
            like.append("_")
            regex.append(".")
        elif kind == "class":
            like.append("_")
            regex.append(value)
            exact = False
        else:
            if value in "%_\\":
                like.append("_")
                exact = False
            else:
                like.append(value)
            regex.append(re.escape(value))
    return "".join(like), None if exact else re.compile("".join(regex), re.DOTALL)


@dataclass
class Compiled:
    """Filters as a Milvus expression plus what it could not say exactly (checked in Python on each hit)."""

    expr: str
    glob_field: str | None = None
    glob_regex: re.Pattern | None = None

    def keep(self, entity: Mapping) -> bool:
        if self.glob_regex is None:
            return True
        return self.glob_regex.fullmatch(str(entity.get(self.glob_field, ""))) is not None


def compile_filters(filters: Filters | None, *, exclude_paths: Sequence[str] = (), gen: int | None = None,
                    extra: Sequence[str] = ()) -> Compiled:
    """Filters (xsearch.core.types.Filters) → a Milvus filter expression over item rows (see the module docstring)."""
    terms = list(extra)
    glob_field, glob_regex = None, None
    active = filters.active() if filters else {}
    if gen is not None:
        terms.append(f"gen <= {int(gen)}")
    if "path_glob" in active:
        pattern = str(active["path_glob"])
        glob_field = "path" if "/" in pattern else "name"
        like, glob_regex = glob_to_like(pattern)
        terms.append(f"{glob_field} like {quote(like)}" if like else "id < 0")
    if "tag" in active:
        terms.append(f"array_contains(tags, {quote(str(active['tag']))})")
    if "min_duration" in active:
        terms.append(f"duration >= {max(0.0, float(active['min_duration']))!r}")
    if "max_duration" in active:
        terms.append(f"(duration >= 0.0 and duration <= {float(active['max_duration'])!r})")
    if "min_size" in active:
        terms.append(f"size >= {int(active['min_size'])}")
    if "max_size" in active:
        terms.append(f"size <= {int(active['max_size'])}")
    if "since" in active:
        terms.append(f"mtime_ns >= {to_ns(active['since'])}")
    if "until" in active:
        terms.append(f"mtime_ns < {to_ns(active['until'])}")
    if exclude_paths:
        terms.append(f"path not in [{', '.join(quote(p) for p in exclude_paths)}]")
    return Compiled(" and ".join(terms), glob_field, glob_regex)


def _passes(filters: Filters | None, meta: Mapping) -> bool:
    """The same test in Python, for a writer's uncommitted items."""
    active = filters.active() if filters else {}
    if "path_glob" in active:
        pattern = str(active["path_glob"])
        _, exact = glob_to_like(pattern)
        tokens = _glob_tokens(pattern)
        regex = exact or (re.compile("".join(".*" if k == "*" else "." if k == "?" else v if k == "class"
                                             else re.escape(v) for k, v in tokens), re.DOTALL) if tokens else None)
        value = meta["path"] if "/" in pattern else meta["name"]
        if regex is None or regex.fullmatch(value) is None:
            return False
    if "tag" in active and str(active["tag"]) not in meta.get("tags", ()):
        return False
    duration = meta.get("duration", -1.0)
    if "min_duration" in active and not duration >= float(active["min_duration"]):
        return False
    if "max_duration" in active and not (duration >= 0 and duration <= float(active["max_duration"])):
        return False
    if "min_size" in active and meta["size"] < int(active["min_size"]):
        return False
    if "max_size" in active and meta["size"] > int(active["max_size"]):
        return False
    if "since" in active and meta["mtime_ns"] < to_ns(active["since"]):
        return False
    if "until" in active and meta["mtime_ns"] >= to_ns(active["until"]):
        return False
    return True


# -- connections ---------------------------------------------------------------------------------------------------


def _lite_servers() -> dict:
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return {}
    return getattr(server_manager_instance, "_servers", {})


def _lite_lock_busy(path: str) -> bool:
    """Whether another process holds milvus-lite's LOCK in ``path`` (milvus-lite opens a .db in one process)."""
    lock = os.path.join(path, "LOCK")
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _lite_in_use(target: Target) -> CollectionLockedError:
    return CollectionLockedError(
        f"milvus-lite database {target.path} is open in another process (milvus-lite serves a .db to one process "
        "at a time)", code="collection.in_use", collection=target.uri, path=target.path)


class _Conn:
    """One MilvusClient per collection argument and process, shared by its readers and writer (thread-safe).
    milvus-lite's in-process server is stopped when the last user closes, which frees the .db for others."""

    _lock = threading.Lock()
    _open: dict[str, _Conn] = {}

    def __init__(self, target: Target, client, lock_fd: int | None):
        self.target = target
        self.client = client
        self.users = 0
        self._lock_fd = lock_fd

    @classmethod
    def acquire(cls, target: Target, wait_s: float = 0.0) -> _Conn:
        deadline = time.monotonic() + max(0.0, float(wait_s))
        with cls._lock:
            conn = cls._open.get(target.uri)
            if conn is None:
                conn = cls._connect(target, deadline)
                cls._open[target.uri] = conn
            conn.users += 1
            return conn

    @classmethod
    def _connect(cls, target: Target, deadline: float) -> _Conn:
        pymilvus = _pymilvus()
        if target.lite:
            try:
                import milvus_lite  # noqa: F401
            except ImportError:
                raise XsearchError("milvus-lite collections need milvus-lite, which is not installed: install the "
                                   "'milvus' extra (pip install 'xsearch[milvus]')", code="store.missing_dependency",
                                   extra="milvus", package="milvus-lite") from None
            Path(target.path).parent.mkdir(parents=True, exist_ok=True)
            if target.path not in _lite_servers():
                while _lite_lock_busy(target.path):
                    if time.monotonic() >= deadline:
                        raise _lite_in_use(target)
                    time.sleep(0.1)
            try:
                client = pymilvus.MilvusClient(target.path, grpc_options=dict(GRPC_OPTIONS))
            except Exception as exc:  # noqa: BLE001 - pymilvus wraps milvus-lite's DataDirLockedError
                if _lite_lock_busy(target.path):
                    raise _lite_in_use(target) from None
                raise _milvus_error(exc, target, "open") from None
            fd = None
            entry = _lite_servers().get(target.path)
            if entry is not None:  # forked decode workers must not keep milvus-lite's LOCK after we exit
                fd = getattr(entry[1], "_lock_fd", None)
                if isinstance(fd, int):
                    locks.close_in_children(fd)
            return cls(target, client, fd)
        token = os.environ.get(TOKEN_ENV, "")
        try:
            client = pymilvus.MilvusClient(f"http://{target.address}", token=token, timeout=CONNECT_TIMEOUT_S,
                                           grpc_options=dict(GRPC_OPTIONS))
        except Exception as exc:  # noqa: BLE001
            raise _milvus_error(exc, target, "connect") from None
        return cls(target, client, None)

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users > 0:
                return
            self._open.pop(self.target.uri, None)
            with contextlib.suppress(Exception):
                self.client.close()
            if self.target.lite:
                if self._lock_fd is not None:
                    locks.forget(self._lock_fd)
                with contextlib.suppress(Exception):
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(self.target.path)


def _says_not_loaded(exc: BaseException) -> bool:
    """Whether a failed Milvus call says its collection is not loaded (released, or never loaded)."""
    text = str(getattr(exc, "message", "") or exc).lower()
    return "released" in text or "not loaded" in text or "call load" in text


def _milvus_error(exc: BaseException, target: Target, doing: str) -> CollectionError:
    """One coded CollectionError for a failed Milvus call."""
    text = " ".join(str(getattr(exc, "message", "") or exc).split())[:300] or type(exc).__name__
    where = target.path or target.address
    low = text.lower()
    if any(s in low for s in ("fail connecting", "unavailable", "connection refused", "deadline exceeded",
                              "failed to connect")):
        return CollectionError(f"cannot reach Milvus at {where} ({text})", code="store.unreachable",
                               collection=target.uri, reason=text)
    if any(s in low for s in ("auth", "permission denied", "token")):
        return CollectionError(f"Milvus at {where} refused the credentials ({text})", code="store.auth",
                               collection=target.uri, reason=text)
    return CollectionError(f"Milvus could not {doing} collection {target.uri} ({text})", code="store.milvus_error",
                           collection=target.uri, reason=text, doing=doing)


# -- the Milvus side of one xsearch collection ---------------------------------------------------------------------


class _Db:
    """The Milvus collections of one xsearch collection, and every call made to them (errors → CollectionError)."""

    def __init__(self, conn: _Conn):
        self.conn = conn
        self.t = conn.target
        self.c = conn.client

    def call(self, doing: str, fn, *args, **kwargs):
        try:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                if not _says_not_loaded(exc) or not args:
                    raise
            # not loaded (milvus-lite after a restart, a server after someone released it): load, try again;
            # milvus-lite's delete-by-filter flips a released collection to "loaded" and back without its lock, so a
            # load that lands in between returns at once and the retry can still find it released
            for attempt in range(LOAD_RETRIES):
                self.c.load_collection(args[0])
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001
                    if attempt == LOAD_RETRIES - 1 or not _says_not_loaded(exc):
                        raise
                    time.sleep(0.05 * (attempt + 1))
        except XsearchError:
            raise
        except Exception as exc:  # noqa: BLE001 - MilvusException, grpc errors: one coded line
            text = str(getattr(exc, "message", "") or exc).lower()
            if "not found" in text and ("collection" in text or "can't find" in text):
                raise CollectionError(f"collection {self.t.uri} is gone (deleted while open?)",
                                      code="collection.missing", collection=self.t.uri) from None
            raise _milvus_error(exc, self.t, doing) from None

    # meta -----------------------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return bool(self.call("inspect", self.c.has_collection, self.t.coll("meta")))

    def load_all(self) -> None:
        """Load every Milvus collection of this xsearch collection (a no-op for loaded ones). milvus-lite reopens
        collections released; loading them when a reader or writer opens keeps every later call on loaded ones."""
        for name in self.call("list", self.c.list_collections):
            if name.startswith(self.t.name + "__"):
                self.call("load", self.c.load_collection, name)

    def meta_get(self, key: str) -> dict | None:
        rows = self.call("read", self.c.query, self.t.coll("meta"), filter=f"key == {quote(key)}",
                         output_fields=["value"], limit=1)
        return json.loads(rows[0]["value"]) if rows else None

    def meta_put(self, key: str, value: dict) -> None:
        self.meta_put_many({key: value})

    def meta_put_many(self, values: Mapping[str, dict]) -> None:
        rows = [{"key": k, "value": json.dumps(v, separators=(",", ":")), "v": [1.0, 0.0]} for k, v in values.items()]
        for start in range(0, len(rows), 2000):
            self.call("write", self.c.upsert, self.t.coll("meta"), rows[start:start + 2000])

    def meta_delete(self, expr: str) -> None:
        self.call("write", self.c.delete, self.t.coll("meta"), filter=expr)

    def meta_scan(self, prefix: str) -> dict[str, dict]:
        out, last = {}, None
        while True:
            expr = f"key like {quote(prefix + '%')}" + (f" and key > {quote(last)}" if last is not None else "")
            rows = self.call("read", self.c.query, self.t.coll("meta"), filter=expr, output_fields=["key", "value"],
                             limit=SCAN_BATCH)
            rows = [r for r in rows if r["key"].startswith(prefix)]
            if not rows:
                return out
            rows.sort(key=lambda r: r["key"])
            out.update((r["key"], json.loads(r["value"])) for r in rows)
            last = rows[-1]["key"]
            if len(rows) < SCAN_BATCH:
                return out

    # scans ----------------------------------------------------------------------------------------------------

    def scan(self, coll: str, expr: str, fields: list[str], batch: int = SCAN_BATCH) -> Iterator[list[dict]]:
        """Every row matching ``expr`` in pages ordered by id (keyset pagination: ``id > last``)."""
        last = -1
        batch = max(1, min(int(batch), MAX_TOPK))
        while True:
            where = f"id > {last}" + (f" and ({expr})" if expr else "")
            rows = self.call("read", self.c.query, coll, filter=where,
                             output_fields=list(dict.fromkeys(["id", *fields])), limit=batch)
            if not rows:
                return
            rows.sort(key=lambda r: r["id"])
            yield rows
            last = int(rows[-1]["id"])
            if len(rows) < batch:
                return

    def count(self, coll: str, expr: str = "") -> int:
        rows = self.call("count", self.c.query, coll, filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    # creation -------------------------------------------------------------------------------------------------

    def create(self, tracks: Mapping[str, tuple[int, IndexChoice]]) -> None:
        from pymilvus import DataType

        c = self.c

        def schema(fields):
            s = c.create_schema(auto_id=False, enable_dynamic_field=False)
            for name, dtype, kw in fields:
                s.add_field(name, dtype, **kw)
            return s

        varchar = DataType.VARCHAR
        meta = schema([("key", varchar, {"is_primary": True, "max_length": 256}),
                       ("value", varchar, {"max_length": VARCHAR_MAX}),
                       ("v", DataType.FLOAT_VECTOR, {"dim": 2})])
        files = schema([("id", DataType.INT64, {"is_primary": True}),
                        ("path", varchar, {"max_length": VARCHAR_MAX}),
                        ("modality", varchar, {"max_length": 64}),
                        ("size", DataType.INT64, {}), ("mtime_ns", DataType.INT64, {}),
                        ("hash", varchar, {"max_length": 256}),
                        ("width", DataType.INT64, {}), ("height", DataType.INT64, {}),
                        ("duration", DataType.DOUBLE, {}),
                        ("model_id", varchar, {"max_length": 2048}),
                        ("added_at", DataType.DOUBLE, {}), ("updated_at", DataType.DOUBLE, {}),
                        ("fps", DataType.DOUBLE, {}), ("has_audio", DataType.INT64, {}),
                        ("tracks", varchar, {"max_length": 1024}),
                        ("tag_scores", varchar, {"max_length": VARCHAR_MAX}),
                        ("v", DataType.FLOAT_VECTOR, {"dim": 2})])
        self._create(self.t.coll("files"), files, "v", IndexChoice("Flat", "FLAT", {}, {}))
        for track, (dim, choice) in tracks.items():
            items = schema([("id", DataType.INT64, {"is_primary": True}),
                            ("file_id", DataType.INT64, {}), ("gen", DataType.INT64, {}),
                            ("at", DataType.DOUBLE, {}), ("snippet", varchar, {"max_length": 4096}),
                            ("path", varchar, {"max_length": VARCHAR_MAX}),
                            ("name", varchar, {"max_length": VARCHAR_MAX}),
                            ("size", DataType.INT64, {}), ("mtime_ns", DataType.INT64, {}),
                            ("width", DataType.INT64, {}), ("height", DataType.INT64, {}),
                            ("duration", DataType.DOUBLE, {}),
                            ("tags", DataType.ARRAY, {"element_type": varchar, "max_capacity": MAX_TAGS,
                                                      "max_length": TAG_CHARS}),
                            ("vector", DataType.FLOAT_VECTOR, {"dim": int(dim)})])
            self._create(self.t.coll(track), items, "vector", choice)
        self._create(self.t.coll("meta"), meta, "v", IndexChoice("Flat", "FLAT", {}, {}))  # last: it says "exists"

    def _create(self, name: str, schema, field: str, choice: IndexChoice) -> None:
        if self.call("inspect", self.c.has_collection, name):
            self.call("delete", self.c.drop_collection, name)  # left by a creation that did not finish
        self.call("create", self.c.create_collection, name, schema=schema, consistency_level="Strong")
        self.set_index(name, field, choice, wait=False)
        self.call("load", self.c.load_collection, name)

    def set_index(self, name: str, field: str, choice: IndexChoice, *, wait: bool) -> None:
        params = self.c.prepare_index_params()
        # nested: milvus-lite reads build parameters only from the "params" entry (pymilvus flattens a plain dict)
        params.add_index(field, index_type=choice.index_type, index_name=field, metric_type="IP",
                         params={"params": dict(choice.build)} if choice.build else None)
        self.call("index", self.c.create_index, name, params, sync=wait, timeout=None if wait else 60)

    def reindex(self, track: str, choice: IndexChoice) -> None:
        name = self.t.coll(track)
        self.call("release", self.c.release_collection, name)
        self.call("index", self.c.drop_index, name, "vector")
        self.set_index(name, "vector", choice, wait=True)
        self.call("load", self.c.load_collection, name)

    def drop_all(self) -> None:
        names = self.call("list", self.c.list_collections)
        for name in names:
            if name.startswith(self.t.name + "__"):
                self.call("delete", self.c.drop_collection, name)


# -- rows ----------------------------------------------------------------------------------------------------------


def _none_if_negative(v):
    return None if v is None or v < 0 else v


def _file_row(r: Mapping) -> FileRow:
    has_audio = int(r.get("has_audio", -1))
    return FileRow(id=int(r["id"]), path=r["path"], modality=r["modality"], size=int(r["size"]),
                   mtime_ns=int(r["mtime_ns"]), hash=r["hash"] or None, width=_none_if_negative(int(r["width"])),
                   height=_none_if_negative(int(r["height"])), duration=_none_if_negative(float(r["duration"])),
                   model_id=r["model_id"], added_at=float(r["added_at"]), updated_at=float(r["updated_at"]),
                   **_optional_fields(fps=_none_if_negative(float(r.get("fps", -1.0))),
                                      has_audio=None if has_audio < 0 else has_audio))


def _optional_fields(**values) -> dict:
    """The FileRow fields this version of the catalog has (fps, has_audio arrived with video)."""
    known = getattr(FileRow, "__dataclass_fields__", {})
    return {k: v for k, v in values.items() if k in known}


def _tags_json(tags: Sequence[tuple[str, float]]) -> str:
    text = json.dumps([[t, float(sc)] for t, sc in tags], separators=(",", ":"))
    while len(text.encode("utf-8")) > VARCHAR_MAX and tags:  # keep the best ones that fit
        tags = tags[:len(tags) * 3 // 4]
        text = json.dumps([[t, float(sc)] for t, sc in tags], separators=(",", ":"))
    return text


def _sorted_tags(tags: Iterable) -> list[tuple[str, float]]:
    return sorted(((str(t), float(sc)) for t, sc in tags), key=lambda ts: (-ts[1], ts[0]))


def _file_dict(row: FileRow, tracks: Mapping[str, int], tags: Sequence[tuple[str, float]] = ()) -> dict:
    fps, has_audio = getattr(row, "fps", None), getattr(row, "has_audio", None)
    return {"id": row.id, "path": row.path, "modality": row.modality, "size": int(row.size),
            "mtime_ns": int(row.mtime_ns), "hash": row.hash or "", "width": -1 if row.width is None else int(row.width),
            "height": -1 if row.height is None else int(row.height),
            "duration": -1.0 if row.duration is None else float(row.duration), "model_id": row.model_id,
            "added_at": float(row.added_at), "updated_at": float(row.updated_at),
            "fps": -1.0 if fps is None else float(fps), "has_audio": -1 if has_audio is None else int(bool(has_audio)),
            "tracks": json.dumps(dict(tracks), separators=(",", ":")), "tag_scores": _tags_json(list(tags)),
            "v": [1.0, 0.0]}


def _item_meta(row: FileRow, tags: Sequence[tuple[str, float]] = ()) -> dict:
    """The file metadata copied onto each of its item rows."""
    return {"path": row.path, "name": row.path.rsplit("/", 1)[-1], "size": int(row.size),
            "mtime_ns": int(row.mtime_ns), "width": -1 if row.width is None else int(row.width),
            "height": -1 if row.height is None else int(row.height),
            "duration": -1.0 if row.duration is None else float(row.duration),
            "tags": [t for t, _ in tags if len(t.encode("utf-8")) <= TAG_CHARS][:MAX_TAGS]}


def _snippet(text) -> str:
    if not text:
        return ""
    data = str(text).encode("utf-8", "surrogatepass")[:4096]
    return data.decode("utf-8", "ignore")


def _hit(track: str, item_id: int, score: float, e: Mapping) -> Hit:
    return Hit(0, float(score), e["path"], track, float(e["at"]), int(item_id), e.get("snippet") or None,
               _none_if_negative(int(e["width"])), _none_if_negative(int(e["height"])),
               _none_if_negative(float(e["duration"])), int(e["size"]))


def _entity(h) -> tuple[int, float, Mapping]:
    """(id, score, entity) of one pymilvus search hit."""
    entity = h.get("entity") if hasattr(h, "get") else None
    if entity is None:
        entity = h["entity"]
    return int(h["id"]), float(h["distance"]), entity


@dataclass
class _State:
    gen: int
    counts: dict
    creation: str


# -- reading -------------------------------------------------------------------------------------------------------


class _MilvusReads:
    """What the reader and the writer share: spec, per-call state, item reads and search."""

    _db: _Db
    uri: str
    _spec: dict

    # what the collection is --------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._spec["model_id"]

    @property
    def model_spec(self) -> str:
        return self._spec["model_spec"]

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(d) for m, d in self._spec["dims"].items()}

    def _index(self, track: str) -> IndexChoice:
        return IndexChoice.from_json(self._spec["index"][track])

    def _state(self) -> _State:
        raise NotImplementedError

    def _coll(self, track: str) -> str:
        return self._db.t.coll(track)

    # items ------------------------------------------------------------------------------------------------------

    def _item_expr(self, gen: int, extra: str = "") -> str:
        return f"gen <= {gen}" + (f" and ({extra})" if extra else "")

    def _items_of(self, file_ids: Sequence[int], gen: int, tracks: Iterable[str],
                  fields: Sequence[str]) -> dict[str, list[dict]]:
        """Item rows (committed up to ``gen``) of these files, per track."""
        out: dict[str, list[dict]] = {}
        ids = sorted({int(i) for i in file_ids})
        for track in tracks:
            rows: list[dict] = []
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start:start + ID_CHUNK]
                expr = self._item_expr(gen, f"file_id in [{', '.join(map(str, chunk))}]")
                for page in self._db.scan(self._coll(track), expr, list(fields)):
                    rows += page
            if rows:
                out[track] = rows
        return out

    def _committed_item(self, item_id: int, gen: int) -> tuple[Hit, int] | None:
        """(the item as a Hit, its file id), or None."""
        for track in self.dims:
            rows = self._db.call("read", self._db.c.query, self._coll(track),
                                 filter=self._item_expr(gen, f"id == {int(item_id)}"), output_fields=_HIT_FIELDS,
                                 limit=1)
            if rows:
                return _hit(track, item_id, 0.0, rows[0]), int(rows[0]["file_id"])
        return None

    def _committed_file_items(self, file_ids: Sequence[int], gen: int) -> dict[int, dict[str, TrackData]]:
        found: dict[int, dict[str, list]] = {}
        for track, rows in self._items_of(file_ids, gen, self.dims, ["file_id", "at", "snippet", "vector"]).items():
            for r in rows:
                found.setdefault(int(r["file_id"]), {}).setdefault(track, []).append(
                    (float(r["at"]), int(r["id"]), r["vector"], r.get("snippet") or None))
        return assemble_items(found)

    def _committed_vectors(self, file_id: int, track: str, gen: int) -> np.ndarray:
        rows = self._items_of([file_id], gen, [track], ["at", "vector"]).get(track, [])
        rows.sort(key=lambda r: (float(r["at"]), int(r["id"])))
        if not rows:
            return np.zeros((0, self.dims.get(track, 0)), dtype=np.float32)
        return np.asarray([r["vector"] for r in rows], dtype=np.float32)

    def _iter_committed(self, track: str, batch: int, gen: int, extra: str = ""):
        if track not in self.dims:
            return
        for rows in self._db.scan(self._coll(track), self._item_expr(gen, extra), ["file_id", "vector"], batch):
            yield (np.asarray([r["id"] for r in rows], dtype=np.int64),
                   np.asarray([r["file_id"] for r in rows], dtype=np.int64),
                   np.asarray([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), self.dims[track]))

    # search ---------------------------------------------------------------------------------------------------

    def _search(self, track: str, queries: np.ndarray, k: int, *, filters: Filters | None,
                exclude_paths: Sequence[str], threshold: float | None, params: dict | None, state: _State,
                extra: Sequence[str] = ()) -> list[list[Hit]]:
        """Best files per query. Searched first without a generation filter (a filter costs on every search);
        when a hit comes from a commit still in progress (``gen`` above the published one), searched again with
        ``gen <= published``."""
        n_items = int(state.counts.get(track, {}).get("items", 0))
        if track not in self.dims or n_items == 0 or k <= 0:
            return [[] for _ in range(len(queries))]
        data = [q for q in np.asarray(queries, dtype=np.float32)]
        unfiltered = compile_filters(filters, exclude_paths=exclude_paths, extra=extra)
        results = self._search_with(track, data, k, unfiltered, threshold, params, n_items, newest=state.gen)
        if results is None:
            results = self._search_with(track, data, k, compile_filters(filters, exclude_paths=exclude_paths,
                                                                         gen=state.gen, extra=extra),
                                        threshold, params, n_items, newest=None)
        for hits in results:
            for rank, h in enumerate(hits, 1):
                h.rank = rank
        return results

    def _search_with(self, track: str, data: list, k: int, compiled: Compiled, threshold: float | None,
                     params: dict | None, n_items: int, newest: int | None) -> list[list[Hit]] | None:
        """None when ``newest`` is given and a hit is newer than it."""
        choice = self._index(track)
        coll = self._coll(track)
        results: list[list[Hit] | None] = [None] * len(data)
        limit = min(int(k), MAX_TOPK)

        def newer(raw) -> bool:
            return newest is not None and any(int(_entity(h)[2]["gen"]) > newest for hits in raw for h in hits)

        # 1. Milvus groups by file: one call for every query
        raw = self._db.call("search", self._db.c.search, coll, data=data, limit=limit, filter=compiled.expr,
                            output_fields=_HIT_FIELDS, search_params=_search_params(choice, params, limit),
                            anns_field="vector", group_by_field="file_id")
        if newer(raw):
            return None
        grouped_complete = not self._db.t.lite or n_items <= LITE_GROUP_OVERFETCH * limit
        todo = []
        for qi, hits in enumerate(raw):
            best, done, dropped = _best_files(track, hits, k, compiled, threshold)
            if done or (len(hits) < limit and grouped_complete and not dropped):
                results[qi] = best
            else:
                todo.append(qi)
        # 2. where grouping may have missed files: over-fetch items and group here (as the local store does)
        fetch = min(n_items, MAX_TOPK, max(4 * k, k + 8))
        while todo:
            raw = self._db.call("search", self._db.c.search, coll, data=[data[i] for i in todo], limit=fetch,
                                filter=compiled.expr, output_fields=_HIT_FIELDS,
                                search_params=_search_params(choice, params, fetch), anns_field="vector")
            if newer(raw):
                return None
            again = []
            for qi, hits in zip(todo, raw):
                best, done, _ = _best_files(track, hits, k, compiled, threshold)
                if done or len(hits) < fetch or fetch >= min(n_items, MAX_TOPK):
                    results[qi] = best
                else:
                    again.append(qi)
            todo = again
            fetch = min(n_items, MAX_TOPK, fetch * 4)
        return results  # type: ignore[return-value]

    def stats(self) -> dict:
        state = self._state()
        per = {}
        for track, dim in self.dims.items():
            c = state.counts.get(track, {"files": 0, "items": 0})
            choice = self._index(track)
            per[track] = {"dim": dim, "files": int(c.get("files", 0)), "items": int(c.get("items", 0)),
                          "vectors": int(c.get("items", 0)), "index": choice.label,
                          "policy": self._spec["factory"].get(track, "auto"), "trained": True,
                          "search_defaults": choice.search, "memory_bytes": int(c.get("items", 0)) * dim * 4,
                          "gpu": False, "gpu_note": ""}
        return {"path": self.uri, "store": "milvus-lite" if self._db.t.lite else "milvus", "model_id": self.model_id,
                "model_spec": self.model_spec, "format_version": int(self._spec.get("format_version", 1)),
                "created_at": self._spec.get("created_at"), "generation": state.gen, "gpu_available": False,
                "modalities": per}


def _best_files(track: str, hits, k: int, compiled: Compiled, threshold: float | None):
    """The first k distinct files of one ranked hit list → (hits, done, dropped): done when k were found or the
    threshold was crossed; dropped when the post-filter removed any."""
    out, seen, dropped = [], set(), False
    for h in hits:
        item_id, score, e = _entity(h)
        fid = int(e["file_id"])
        if fid in seen:
            continue
        if threshold is not None and score < threshold:
            return out, True, dropped
        if not compiled.keep(e):
            dropped = True
            continue
        seen.add(fid)
        out.append(_hit(track, item_id, score, e))
        if len(out) == k:
            return out, True, dropped
    return out, False, dropped


class MilvusStore(_MilvusReads, Store):
    """A long-lived reader: each call reads the published generation (one small query) and sees only items up to
    it, so a commit in progress is invisible and a finished one shows on the next call."""

    def __init__(self, conn: _Conn):
        self._conn = conn
        self._db = _Db(conn)
        self.uri = conn.target.uri
        self._lock = threading.RLock()
        self._closed = False
        self._spec = self._read_spec()
        self._creation = self._spec.get("creation", "")
        self._db.load_all()

    def _read_spec(self) -> dict:
        spec = self._db.meta_get("spec") if self._db.exists() else None
        if spec is None:
            raise CollectionError(f"no collection at {self.uri}", code="collection.missing", collection=self.uri)
        return spec

    def _state(self) -> _State:
        raw = self._db.meta_get("state") if self._db.exists() else None
        if raw is None:
            raise CollectionError(f"no collection at {self.uri}", code="collection.missing", collection=self.uri)
        if raw.get("creation") != self._creation:  # deleted and created again (--rebuild): take the new spec
            with self._lock:
                self._spec = self._read_spec()
                self._creation = self._spec.get("creation", "")
        return _State(int(raw["gen"]), raw.get("counts", {}), raw.get("creation", ""))

    @property
    def generation(self) -> object:
        state = self._state()
        return state.creation, state.gen

    def file(self, path: str) -> FileRecord | None:
        rows = self._db.call("read", self._db.c.query, self._coll("files"), filter=f"path == {quote(path)}",
                             output_fields=_FILE_FIELDS, limit=1)
        return _file_row(rows[0]) if rows else None

    def file_by_id(self, file_id: int) -> FileRecord | None:
        rows = self._db.call("read", self._db.c.query, self._coll("files"), filter=f"id == {int(file_id)}",
                             output_fields=_FILE_FIELDS, limit=1)
        return _file_row(rows[0]) if rows else None

    def _file_tracks(self, file_id: int) -> tuple[dict[str, int], str | None]:
        rows = self._db.call("read", self._db.c.query, self._coll("files"), filter=f"id == {int(file_id)}",
                             output_fields=["tracks", "modality"], limit=1)
        return (json.loads(rows[0]["tracks"] or "{}"), rows[0]["modality"]) if rows else ({}, None)

    def files(self, *, under: str | None = None, modality: str | None = None) -> list[FileRecord]:
        terms, prefix = [], None
        if modality is not None:
            terms.append(f"modality == {quote(modality)}")
        if under is not None:  # like is exact on a prefix free of % _ \\ (those widen it; checked below)
            prefix = str(under).rstrip("/") + "/"
            like = re.sub(r"[%_\\\\]", "_", prefix) + "%"
            terms.append(f"(path like {quote(like)} or path == {quote(prefix[:-1] or '/')})")
        rows = [r for page in self._db.scan(self._coll("files"), " and ".join(terms), _FILE_FIELDS) for r in page]
        out = [_file_row(r) for r in rows]
        if prefix is not None:
            out = [f for f in out if f.path.startswith(prefix) or f.path == (prefix[:-1] or "/")]
        return sorted(out, key=lambda f: f.path)

    def files_by_hash(self, hash: str, size: int) -> list[FileRecord]:
        expr = f"hash == {quote(hash)} and size == {int(size)}"
        return [_file_row(r) for page in self._db.scan(self._coll("files"), expr, _FILE_FIELDS) for r in page]

    def item(self, item_id: int) -> Hit | None:
        found = self._committed_item(item_id, self._state().gen)
        return None if found is None else found[0]

    def tags_of(self, file_id: int) -> list[tuple[str, float]]:
        rows = self._db.call("read", self._db.c.query, self._coll("files"), filter=f"id == {int(file_id)}",
                             output_fields=["tag_scores"], limit=1)
        return _sorted_tags(json.loads(rows[0]["tag_scores"] or "[]")) if rows else []

    def tag_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for page in self._db.scan(self._coll("files"), 'tag_scores != "[]"', ["tag_scores"]):
            for r in page:
                for tag in {t for t, _ in json.loads(r["tag_scores"] or "[]")}:
                    counts[tag] = counts.get(tag, 0) + 1
        return dict(sorted(counts.items(), key=lambda tn: (-tn[1], tn[0])))

    def file_sizes(self) -> set[int]:
        return {int(r["size"]) for page in self._db.scan(self._coll("files"), "", ["size"]) for r in page}

    def counts(self) -> dict[str, dict[str, int]]:
        return {m: dict(c) for m, c in self._state().counts.items()}

    def search_files(self, modality: str, queries: np.ndarray, k: int, *, filters: Filters | None = None,
                     exclude_paths: Sequence[str] = (), threshold: float | None = None,
                     params: dict | None = None) -> list[list[Hit]]:
        state = self._state()
        if modality not in self.dims:
            return [[] for _ in range(len(np.atleast_2d(queries)))]
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dims[modality])
        return self._search(modality, q, k, filters=filters, exclude_paths=exclude_paths, threshold=threshold,
                            params=params, state=state)

    def file_vectors(self, file_id: int, track: str | None = None) -> np.ndarray:
        state = self._state()
        tracks, modality = self._file_tracks(file_id)
        if not tracks:
            return np.zeros((0, 0), dtype=np.float32)
        if track is None:
            track = modality if tracks.get(modality) else next(t for t, n in sorted(tracks.items()) if n)
        return self._committed_vectors(file_id, track, state.gen)

    def iter_items(self, modality: str, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        yield from self._iter_committed(modality, batch, self._state().gen)

    def file_items(self, file_ids: Sequence[int]) -> dict[int, dict[str, TrackData]]:
        return self._committed_file_items(file_ids, self._state().gen)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.release()


# -- writing -------------------------------------------------------------------------------------------------------


def _flock_lock(target: Target, wait_s: float) -> WriterLock:
    """milvus-lite: an exclusive flock on ``PATH.db.lock`` beside the .db (per open file, so also in-process)."""
    path = target.path + ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    return WriterLock(fd, path, wait_s, busy=lambda _holder: CollectionLockedError(
        f"collection {target.uri} is being written by another writer", collection=target.uri))


class _Lease:
    """A Milvus server: a ``lease`` row in the meta collection (owner, host, pid, expiry), renewed every TTL/3 by a
    daemon thread. A lease that expired (its writer died) is taken over. Milvus has no compare-and-set, so a
    taker writes its lease, waits a moment and reads it back: of two writers racing for a free lease, the one whose
    write landed last wins and the other sees the winner's row."""

    SETTLE_S = 0.3

    def __init__(self, db: _Db, wait_s: float, ttl_s: float = LEASE_TTL_S):
        self._db = db
        self.ttl = float(ttl_s)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self.lost = False
        deadline = time.monotonic() + max(0.0, float(wait_s))
        while True:
            cur = db.meta_get("lease")
            if cur is None or float(cur.get("expires", 0)) < time.time() or cur.get("owner") == self.owner:
                self._write()
                time.sleep(self.SETTLE_S)
                cur = db.meta_get("lease")
                if cur is not None and cur.get("owner") == self.owner:
                    break
            if time.monotonic() >= deadline:
                until = _dt.datetime.fromtimestamp(float(cur.get("expires", 0))).isoformat(timespec="seconds") \
                    if cur else "?"
                raise CollectionLockedError(
                    f"collection {db.t.uri} is being written by {cur.get('owner', 'another writer') if cur else '?'} "
                    f"(lease until {until})", collection=db.t.uri, holder=(cur or {}).get("owner"))
            time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._renew, name="xsearch-milvus-lease", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        self._db.meta_put("lease", {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                                    "expires": time.time() + self.ttl})

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                cur = self._db.meta_get("lease")
                if cur is None or cur.get("owner") != self.owner:
                    self.lost = True
                    return
                self._write()
            except Exception:  # noqa: BLE001 - a missed renewal is retried; expiry is TTL away
                pass

    def release(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            cur = self._db.meta_get("lease")
            if cur is not None and cur.get("owner") == self.owner:
                self._db.meta_delete('key == "lease"')


#: Tests set this to exercise the server's lease on milvus-lite.
USE_LEASE_ON_LITE = False


def _writer_lock(db: _Db, wait_s: float):
    if db.t.lite and not USE_LEASE_ON_LITE:
        return _flock_lock(db.t, wait_s)
    return _Lease(db, wait_s)


@dataclass
class MilvusRepair:
    """What opening a writer repaired (shown in the index report)."""

    rolled_back_files: int = 0
    completed_commit: bool = False
    orphan_items: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.rolled_back_files or self.completed_commit or self.orphan_items)

    def __str__(self) -> str:
        parts = []
        if self.rolled_back_files:
            parts.append(f"an interrupted commit was undone: {self.rolled_back_files} file(s) will be embedded again")
        if self.completed_commit:
            parts.append("an interrupted commit was completed")
        if self.orphan_items:
            parts.append(f"{self.orphan_items} item(s) whose file was missing were deleted")
        return "; ".join(parts) or "nothing to repair"


class MilvusWriter(_MilvusReads, StoreWriter):
    """The one writer of a Milvus collection. It holds every file row in memory (the planner asks for each file
    it walks), buffers changes and applies them in :meth:`commit` (module docstring)."""

    def __init__(self, conn: _Conn, lock, *, repair: bool = True):
        self._conn = conn
        self._db = _Db(conn)
        self._wlock = lock
        self.uri = conn.target.uri
        self._spec = self._db.meta_get("spec")
        raw = self._db.meta_get("state")
        if self._spec is None or raw is None:
            raise CollectionError(f"collection {self.uri} is damaged (its meta rows are missing)",
                                  code="collection.damaged", collection=self.uri, reason="meta rows missing")
        self._raw_state = raw
        self._closed = False
        self._db.load_all()
        self._load_files()
        self._counts = self._counts_from_table()
        self.repair_report = self._repair() if repair and raw.get("pending") is not None else MilvusRepair()
        self._begin()

    # in-memory file table ---------------------------------------------------------------------------------

    def _load_files(self) -> None:
        self._files: dict[int, FileRow] = {}
        self._tracks: dict[int, dict[str, int]] = {}
        self._tags: dict[int, list[tuple[str, float]]] = {}
        self._by_path: dict[str, int] = {}
        for page in self._db.scan(self._coll("files"), "", _FILE_FIELDS):
            for r in page:
                row = _file_row(r)
                self._files[row.id] = row
                self._tracks[row.id] = {t: int(n) for t, n in json.loads(r["tracks"] or "{}").items()}
                tags = json.loads(r.get("tag_scores") or "[]")
                if tags:
                    self._tags[row.id] = _sorted_tags(tags)
                self._by_path[row.path] = row.id
        self._next_file_id = max(int(self._raw_state.get("next_file_id", 1)), max(self._files, default=0) + 1)
        self._next_item_id = int(self._raw_state.get("next_item_id", 1))

    def _counts_from_table(self) -> dict:
        counts: dict[str, dict[str, int]] = {}
        for fid, row in self._files.items():
            counts.setdefault(row.modality, {"files": 0, "items": 0})["files"] += 1
            for track, n in self._tracks.get(fid, {}).items():
                counts.setdefault(track, {"files": 0, "items": 0})["items"] += int(n)
        return {m: c for m, c in counts.items() if c["files"] or c["items"]}

    def _begin(self) -> None:
        """Start a new batch of changes (the counts carry over: they are kept up to date change by change)."""
        self._undo: dict[int, tuple[FileRow | None, dict]] = {}
        self._new_items: dict[int, dict[str, TrackData]] = {}
        self._meta_dirty: set[int] = set()

    def _remember(self, file_id: int) -> None:
        if file_id not in self._undo:
            self._undo[file_id] = (self._files.get(file_id), dict(self._tracks.get(file_id, {})),
                                   list(self._tags.get(file_id, [])))

    def _require_open(self) -> None:
        if self._closed:
            raise CollectionError(f"the writer of {self.uri} is closed", code="collection.closed",
                                  collection=self.uri)

    def _state(self) -> _State:
        return _State(int(self._raw_state["gen"]), self._counts, self._raw_state.get("creation", ""))

    # reads (see uncommitted changes) -----------------------------------------------------------------------

    def file(self, path: str) -> FileRecord | None:
        fid = self._by_path.get(str(path))
        return None if fid is None else self._files[fid]

    def file_by_id(self, file_id: int) -> FileRecord | None:
        return self._files.get(int(file_id))

    def files(self, *, under: str | None = None, modality: str | None = None) -> list[FileRecord]:
        out = list(self._files.values())
        if modality is not None:
            out = [f for f in out if f.modality == modality]
        if under is not None:
            prefix = str(under).rstrip("/") + "/"
            out = [f for f in out if f.path.startswith(prefix) or f.path == (prefix[:-1] or "/")]
        return sorted(out, key=lambda f: f.path)

    def files_by_hash(self, hash: str, size: int) -> list[FileRecord]:
        return sorted((f for f in self._files.values() if f.hash == hash and f.size == int(size)), key=lambda f: f.id)

    def file_sizes(self) -> set[int]:
        return {f.size for f in self._files.values()}

    def counts(self) -> dict[str, dict[str, int]]:
        return {m: dict(c) for m, c in self._counts.items() if c["files"] or c["items"]}

    def _hidden(self) -> set[int]:
        """Files whose committed items are stale for this writer (replaced or removed)."""
        return set(self._new_items) | {fid for fid in self._undo if fid not in self._files}

    def item(self, item_id: int) -> Hit | None:
        found = self._committed_item(item_id, int(self._raw_state["gen"]))
        if found is None or found[1] in self._hidden():
            return None
        hit, fid = found
        row = self._files[fid]  # its metadata as this writer sees it (a rename, a touch)
        hit.path, hit.size, hit.width, hit.height, hit.duration = row.path, row.size, row.width, row.height, \
            row.duration
        return hit

    def file_vectors(self, file_id: int, track: str | None = None) -> np.ndarray:
        fid = int(file_id)
        row = self._files.get(fid)
        tracks = self._tracks.get(fid, {})
        if row is None or not any(tracks.values()):
            return np.zeros((0, 0), dtype=np.float32)
        if track is None:
            track = row.modality if tracks.get(row.modality) else next(t for t, n in sorted(tracks.items()) if n)
        if fid in self._new_items:
            data = self._new_items[fid].get(track)
            if data is None:
                return np.zeros((0, self.dims.get(track, 0)), dtype=np.float32)
            order = np.argsort(np.asarray(data[0], dtype=np.float64), kind="stable")
            return np.asarray(data[1], dtype=np.float32)[order]
        return self._committed_vectors(fid, track, int(self._raw_state["gen"]))

    def iter_items(self, modality: str, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Committed items (uncommitted ones have no id yet), without the files this writer replaced or removed."""
        hidden = sorted(self._hidden())
        extra = f"file_id not in [{', '.join(map(str, hidden))}]" if hidden else ""
        yield from self._iter_committed(modality, batch, int(self._raw_state["gen"]), extra)

    def file_items(self, file_ids: Sequence[int]) -> dict[int, dict[str, TrackData]]:
        ids = [int(i) for i in file_ids if int(i) in self._files]
        out = {fid: dict(self._new_items[fid]) for fid in ids if fid in self._new_items}
        out.update(self._committed_file_items([i for i in ids if i not in self._new_items],
                                              int(self._raw_state["gen"])))
        return out

    def search_files(self, modality: str, queries: np.ndarray, k: int, *, filters: Filters | None = None,
                     exclude_paths: Sequence[str] = (), threshold: float | None = None,
                     params: dict | None = None) -> list[list[Hit]]:
        """Committed items (less replaced and removed files) merged with this writer's new items (exact)."""
        if modality not in self.dims:
            return [[] for _ in range(len(np.atleast_2d(queries)))]
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dims[modality])
        hidden = sorted(self._hidden())
        extra = [f"file_id not in [{', '.join(map(str, hidden))}]"] if hidden else []
        committed = self._search(modality, q, k, filters=filters, exclude_paths=exclude_paths, threshold=threshold,
                                 params=params, state=self._state(), extra=extra)
        excluded = set(exclude_paths)
        out = []
        for qi, hits in enumerate(committed):
            extra_hits = []
            for fid, tracks in self._new_items.items():
                row = self._files.get(fid)
                if modality not in tracks or row is None or row.path in excluded:
                    continue
                meta = _item_meta(row, self._tags.get(fid, ()))
                if not _passes(filters, meta):
                    continue
                offsets, vecs, snippets = tracks[modality]
                scores = np.asarray(vecs, dtype=np.float32) @ q[qi]
                j = int(np.argmax(scores))
                if threshold is not None and scores[j] < threshold:
                    continue
                extra_hits.append(Hit(0, float(scores[j]), row.path, modality, float(offsets[j]), -1,
                                      (snippets[j] if snippets else None) or None, row.width, row.height,
                                      row.duration, row.size))
            merged = sorted(hits + extra_hits, key=lambda h: -h.score)[:k]
            for rank, h in enumerate(merged, 1):
                h.rank = rank
            out.append(merged)
        return out

    # changes ------------------------------------------------------------------------------------------------

    def _account(self, file_id: int, sign: int) -> None:
        row = self._files.get(file_id)
        if row is None:
            return
        self._counts.setdefault(row.modality, {"files": 0, "items": 0})["files"] += sign
        for track, n in self._tracks.get(file_id, {}).items():
            self._counts.setdefault(track, {"files": 0, "items": 0})["items"] += sign * int(n)

    def upsert_file(self, path: str, *, modality: str, size: int, mtime_ns: int, hash: str | None,
                    width: int | None = None, height: int | None = None, duration: float | None = None,
                    fps: float | None = None, has_audio: bool | None = None) -> int:
        self._require_open()
        path = str(path)
        extra = _optional_fields(fps=None if fps is None else float(fps),
                                 has_audio=None if has_audio is None else int(bool(has_audio)))
        now = time.time()
        fid = self._by_path.get(path)
        if fid is None:
            fid = self._next_file_id
            self._next_file_id += 1
            self._remember(fid)
            self._files[fid] = FileRow(fid, path, modality, int(size), int(mtime_ns), hash, width, height, duration,
                                       self.model_id, now, now, **extra)
            self._tracks[fid] = {}
            self._by_path[path] = fid
            self._account(fid, +1)
            return fid
        self._remember(fid)
        self._account(fid, -1)
        old = self._files[fid]
        self._files[fid] = FileRow(fid, path, modality, int(size), int(mtime_ns), hash, width, height, duration,
                                   self.model_id, old.added_at, now, **extra)
        self._account(fid, +1)
        self._meta_dirty.add(fid)
        return fid

    def replace_items(self, file_id: int, tracks: Mapping[str, TrackData]) -> None:
        self._require_open()
        fid = int(file_id)
        if fid not in self._files:
            raise KeyError(f"no file with id {file_id}")
        clean: dict[str, TrackData] = {}
        for track, (offsets, vectors, snippets) in tracks.items():
            if track not in self.dims:
                raise ValueError(f"collection {self.uri} has no {track} index (it has {', '.join(sorted(self.dims))})")
            vecs = np.asarray(vectors, dtype=np.float32)
            vecs = vecs.reshape(len(offsets), -1) if vecs.size else np.zeros((len(offsets), self.dims[track]),
                                                                              dtype=np.float32)
            if vecs.shape != (len(offsets), self.dims[track]):
                raise ValueError(f"{track} vectors of shape {vecs.shape} for {len(offsets)} offsets of dimension "
                                 f"{self.dims[track]}")
            if snippets is not None and len(snippets) != len(offsets):
                raise ValueError(f"{len(snippets)} snippets for {len(offsets)} offsets")
            clean[track] = ([float(o) for o in offsets], vecs.copy(), None if snippets is None else list(snippets))
        self._remember(fid)
        self._account(fid, -1)
        self._tracks[fid] = {t: len(d[0]) for t, d in clean.items() if len(d[0])}
        self._account(fid, +1)
        self._new_items[fid] = clean

    def set_tags(self, file_id: int, tags: Sequence[tuple[str, float]]) -> None:
        self._require_open()
        fid = int(file_id)
        if fid not in self._files:
            raise KeyError(f"no file with id {file_id}")
        self._remember(fid)
        best: dict[str, float] = {}
        for tag, score in tags:
            best[str(tag)] = max(float(score), best.get(str(tag), float("-inf")))
        if best:
            self._tags[fid] = _sorted_tags(best.items())
        else:
            self._tags.pop(fid, None)
        self._meta_dirty.add(fid)  # item rows carry the tags (the tag filter)

    def tags_of(self, file_id: int) -> list[tuple[str, float]]:
        return list(self._tags.get(int(file_id), []))

    def tag_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for tags in self._tags.values():
            for tag in {t for t, _ in tags}:
                counts[tag] = counts.get(tag, 0) + 1
        return dict(sorted(counts.items(), key=lambda tn: (-tn[1], tn[0])))

    def rename_file(self, file_id: int, new_path: str, mtime_ns: int) -> None:
        self._require_open()
        fid = int(file_id)
        if fid not in self._files:
            raise KeyError(f"no file with id {file_id}")
        new_path = str(new_path)
        if self._by_path.get(new_path, fid) != fid:
            raise ValueError(f"cannot rename file {file_id}: {new_path} is already in the collection")
        self._remember(fid)
        old = self._files[fid]
        del self._by_path[old.path]
        self._files[fid] = replace(old, path=new_path, mtime_ns=int(mtime_ns), updated_at=time.time())
        self._by_path[new_path] = fid
        self._meta_dirty.add(fid)

    def touch_file(self, file_id: int, *, mtime_ns: int) -> None:
        self._require_open()
        fid = int(file_id)
        if fid not in self._files:
            raise KeyError(f"no file with id {file_id}")
        self._remember(fid)
        self._files[fid] = replace(self._files[fid], mtime_ns=int(mtime_ns), updated_at=time.time())
        self._meta_dirty.add(fid)

    def remove_files(self, file_ids: Sequence[int]) -> None:
        self._require_open()
        for fid in {int(i) for i in file_ids}:
            if fid not in self._files:
                continue
            self._remember(fid)
            self._account(fid, -1)
            row = self._files.pop(fid)
            self._by_path.pop(row.path, None)
            self._tracks.pop(fid, None)
            self._tags.pop(fid, None)
            self._new_items.pop(fid, None)
            self._meta_dirty.discard(fid)

    def rollback(self) -> None:
        for fid, (row, tracks, tags) in self._undo.items():
            current = self._files.pop(fid, None)
            if current is not None:
                self._by_path.pop(current.path, None)
            self._tracks.pop(fid, None)
            self._tags.pop(fid, None)
            if row is not None:
                self._files[fid] = row
                self._by_path[row.path] = fid
                self._tracks[fid] = tracks
                if tags:
                    self._tags[fid] = tags
        self._counts = self._counts_from_table()
        self._begin()

    # commit -------------------------------------------------------------------------------------------------

    def commit(self) -> None:
        self._require_open()
        if not self._undo:
            return
        if getattr(self._wlock, "lost", False):
            raise CollectionLockedError(f"this writer lost its lease on {self.uri} (another writer took over after "
                                        "it stalled); its changes were not saved", collection=self.uri)
        db, gen = self._db, int(self._raw_state["gen"])
        new_gen = gen + 1
        dirty = sorted(self._undo)
        removed = [fid for fid in dirty if fid not in self._files]
        # rows first (reads of the committed state happen before anything is written)
        rewrite = sorted(fid for fid in self._meta_dirty if fid in self._files and fid not in self._new_items
                         and self._undo[fid][0] is not None)
        carried = self._committed_file_items(rewrite, gen) if rewrite else {}
        per_track: dict[str, list[dict]] = {}
        next_item = self._next_item_id
        for fid in dirty:
            row = self._files.get(fid)
            if row is None:
                continue
            data = self._new_items.get(fid) if fid in self._new_items else carried.get(fid, {})
            meta = _item_meta(row, self._tags.get(fid, ()))
            for track, (offsets, vecs, snippets) in data.items():
                for j, offset in enumerate(offsets):
                    per_track.setdefault(track, []).append(
                        {"id": next_item, "file_id": fid, "gen": new_gen, "at": float(offset),
                         "snippet": _snippet(snippets[j] if snippets else None), **meta, "vector": vecs[j]})
                    next_item += 1
        state = {**self._raw_state, "pending": new_gen, "next_file_id": self._next_file_id, "next_item_id": next_item}
        # 1. journal
        db.meta_put("state", state)
        db.meta_put_many(_journal_rows(dirty, removed))
        # 2. file rows, new item rows (invisible: gen > published)
        file_rows = [_file_dict(self._files[fid], self._tracks.get(fid, {}), self._tags.get(fid, ()))
                     for fid in dirty if fid in self._files]
        for start in range(0, len(file_rows), 2000):
            db.call("write", db.c.upsert, self._coll("files"), file_rows[start:start + 2000])
        for track, rows in per_track.items():
            step = max(1, INSERT_BYTES // (4 * self.dims[track] + 256))
            for start in range(0, len(rows), step):
                db.call("write", db.c.insert, self._coll(track), rows[start:start + step])
        # 3. publish
        state = {**state, "gen": new_gen, "counts": self.counts()}
        db.meta_put("state", state)
        self._raw_state = state
        # 4. old items of replaced / re-written / removed files, removed file rows, journal
        self._finish([fid for fid in dirty if self._undo[fid][0] is not None], removed, new_gen)
        self._next_item_id = next_item
        self._begin()

    def _finish(self, dirty: Sequence[int], removed: Sequence[int], gen: int) -> None:
        db = self._db
        for start in range(0, len(dirty), ID_CHUNK):
            ids = ", ".join(map(str, dirty[start:start + ID_CHUNK]))
            for track in self.dims:
                db.call("write", db.c.delete, self._coll(track), filter=f"file_id in [{ids}] and gen < {gen}")
        for start in range(0, len(removed), ID_CHUNK):
            ids = ", ".join(map(str, removed[start:start + ID_CHUNK]))
            db.call("write", db.c.delete, self._coll("files"), filter=f"id in [{ids}]")
            for track in self.dims:
                db.call("write", db.c.delete, self._coll(track), filter=f"file_id in [{ids}]")
        db.meta_delete('key like "journal:%"')
        state = {**self._raw_state, "pending": None}
        db.meta_put("state", state)
        self._raw_state = state
        if db.t.lite:
            for part in ("files", *self.dims, "meta"):
                db.call("flush", db.c.flush, self._coll(part))

    def _repair(self) -> MilvusRepair:
        """Finish or undo the commit a crash interrupted (module docstring), then drop orphan items."""
        db = self._db
        report = MilvusRepair()
        state = self._raw_state
        gen, pending = int(state["gen"]), int(state["pending"])
        journal: dict[int, dict] = {}
        for chunk in db.meta_scan("journal:").values():
            removed_ids = set(chunk.get("removed", []))
            journal.update((int(fid), {"removed": fid in removed_ids}) for fid in chunk.get("ids", []))
        if gen < pending:  # not published: the batch's files go entirely; the next index run embeds them again
            ids = sorted(journal)
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ", ".join(map(str, ids[start:start + ID_CHUNK]))
                db.call("write", db.c.delete, self._coll("files"), filter=f"id in [{chunk}]")
                for track in self.dims:
                    db.call("write", db.c.delete, self._coll(track), filter=f"file_id in [{chunk}]")
            report.rolled_back_files = sum(1 for fid in ids if fid in self._files)
            for fid in ids:
                row = self._files.pop(fid, None)
                if row is not None:
                    self._by_path.pop(row.path, None)
                self._tracks.pop(fid, None)
                self._tags.pop(fid, None)
            for track in self.dims:  # anything else the unpublished commit wrote
                db.call("write", db.c.delete, self._coll(track), filter=f"gen > {gen}")
            new_gen = gen + 1
        else:  # published: complete step 4
            new_gen = gen
            report.completed_commit = True
        self._raw_state = {**state, "gen": new_gen, "pending": new_gen}
        db.meta_put("state", self._raw_state)
        orphans = set()
        for track in self.dims:
            for page in db.scan(self._coll(track), "", ["file_id"]):
                orphans.update(int(r["file_id"]) for r in page if int(r["file_id"]) not in self._files)
            if orphans:
                report.orphan_items += db.count(self._coll(track),
                                                f"file_id in [{', '.join(map(str, sorted(orphans)))}]")
        removed = sorted({fid for fid, v in journal.items() if v.get("removed")} | orphans)
        self._counts = self._counts_from_table()
        self._raw_state = {**self._raw_state, "counts": self._counts}
        self._finish(sorted(set(journal) - set(removed)) if gen == pending else [], removed, new_gen)
        return report

    def maybe_reindex(self) -> dict:
        """milvus-lite, "auto" tracks: FLAT → HNSW32 once a track holds 50k vectors (back below 25k), as the local
        store switches Flat → HNSW32; a server starts with HNSW. Applied at once (release, new index, load)."""
        switched = {}
        for track in self.dims:
            if self._spec["factory"].get(track, "auto") != "auto" or not self._db.t.lite:
                continue
            n = int(self._counts.get(track, {}).get("items", 0))
            current = self._index(track)
            if current.index_type == "FLAT" and n >= _vectors.FLAT_MAX_VECTORS:
                target = choose_index("HNSW32", lite=True)
            elif current.index_type != "FLAT" and n < _vectors.FLAT_MAX_VECTORS // 2:
                target = choose_index("Flat", lite=True)
            else:
                continue
            self._db.reindex(track, target)
            self._spec = {**self._spec, "index": {**self._spec["index"], track: target.to_json()}}
            self._db.meta_put("spec", self._spec)
            switched[track] = (current.factory, target.factory)
        return switched

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._wlock.release()
        finally:
            self._conn.release()


# -- the backend ---------------------------------------------------------------------------------------------------


class MilvusBackend(Backend):
    """Collections named ``milvus-lite:PATH.db`` or ``milvus://HOST:PORT/NAME``."""

    def __init__(self, name: str = "milvus"):
        self.name = name

    def resolve(self, uri: str | None) -> str:
        return parse_uri(str(uri)).uri

    def exists(self, uri: str) -> bool:
        target = parse_uri(uri)
        if target.lite:
            if not os.path.isdir(target.path):
                return False
            if target.uri not in _Conn._open and target.path not in _lite_servers():
                # no server here: read milvus-lite's layout instead of starting one (or fighting another process)
                return os.path.isfile(os.path.join(target.path, "collections", target.coll("meta"), "schema.json"))
        conn = _Conn.acquire(target)
        try:
            return _Db(conn).exists()
        finally:
            conn.release()

    def open(self, uri: str) -> MilvusStore:
        target = parse_uri(uri)
        if target.lite and not os.path.isdir(target.path):
            raise CollectionError(f"no collection at {target.uri}", code="collection.missing", collection=target.uri)
        conn = _Conn.acquire(target)
        try:
            return MilvusStore(conn)
        except BaseException:
            conn.release()
            raise

    def open_writer(self, uri: str, *, create: StoreSpec | None = None, wait_s: float = 0.0) -> MilvusWriter:
        target = parse_uri(uri)
        if create is None and target.lite and not os.path.isdir(target.path):
            raise CollectionError(f"no collection at {target.uri}", code="collection.missing", collection=target.uri)
        choices = _choices(create, target) if create is not None else None  # a bad index type fails before anything
        conn = _Conn.acquire(target, wait_s)
        lock = None
        try:
            db = _Db(conn)
            if not db.exists():
                if create is None:
                    raise CollectionError(f"no collection at {target.uri}", code="collection.missing",
                                          collection=target.uri)
                if target.lite and not USE_LEASE_ON_LITE:
                    lock = _writer_lock(db, wait_s)
                    if not db.exists():
                        _create(db, create, choices)
                else:
                    _create(db, create, choices)
                    lock = _writer_lock(db, wait_s)
            else:
                lock = _writer_lock(db, wait_s)
            writer = MilvusWriter(conn, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            conn.release()
            raise
        if create is not None:
            try:
                writer.check_model(create.model_id)
                for track, dim in create.dims.items():
                    have = writer.dims.get(track)
                    if have is not None and have != int(dim):
                        raise CollectionError(
                            f"collection {writer.uri} stores {track} vectors of {have} dimensions, not {dim}",
                            code="collection.dim_mismatch", collection=writer.uri, modality=track, have=have,
                            want=int(dim))
            except BaseException:
                writer.close()
                raise
        return writer

    def delete(self, uri: str, *, wait_s: float = 0.0) -> None:
        target = parse_uri(uri)
        if target.lite and not os.path.isdir(target.path):
            return
        conn = _Conn.acquire(target, wait_s)
        try:
            db = _Db(conn)
            lock = _writer_lock(db, wait_s) if (target.lite and not USE_LEASE_ON_LITE) or db.exists() else None
            try:
                db.drop_all()  # a lease row goes with the meta collection
            finally:
                if lock is not None:
                    lock.release()
        finally:
            conn.release()


def _journal_rows(dirty: Sequence[int], removed: Sequence[int], per_row: int = 4000) -> dict[str, dict]:
    """The files of a commit in flight as meta rows ``journal:<n>`` of up to ``per_row`` ids each."""
    gone = set(removed)
    rows = {}
    for n, start in enumerate(range(0, len(dirty), per_row)):
        ids = [int(i) for i in dirty[start:start + per_row]]
        rows[f"journal:{n:06d}"] = {"ids": ids, "removed": [i for i in ids if i in gone]}
    return rows


def _choices(spec: StoreSpec, target: Target) -> dict[str, IndexChoice]:
    factories = dict(spec.factory) if isinstance(spec.factory, dict) else {m: spec.factory for m in spec.dims}
    if set(factories) != set(spec.dims):
        raise ValueError(f"factory modalities {sorted(factories)} differ from dims {sorted(spec.dims)}")
    for track, dim in spec.dims.items():
        if not re.fullmatch(r"[a-z]+", track) or track in ("meta", "files") or int(dim) <= 0:
            raise ValueError(f"bad track {track!r} of dimension {dim}")
    return {t: choose_index(f, lite=target.lite) for t, f in factories.items()}


def _create(db: _Db, spec: StoreSpec, choices: Mapping[str, IndexChoice]) -> None:
    db.drop_all()  # what a creation that did not finish left
    db.create({t: (int(spec.dims[t]), choices[t]) for t in spec.dims})
    factories = dict(spec.factory) if isinstance(spec.factory, dict) else {m: spec.factory for m in spec.dims}
    creation = uuid.uuid4().hex
    db.meta_put_many({
        "spec": {"format_version": FORMAT_VERSION, "model_id": spec.model_id, "model_spec": spec.model_spec,
                 "dims": {t: int(d) for t, d in spec.dims.items()}, "factory": factories,
                 "index": {t: c.to_json() for t, c in choices.items()}, "creation": creation,
                 "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        "state": {"gen": 0, "pending": None, "next_file_id": 1, "next_item_id": 1, "counts": {},
                  "creation": creation},
    })
    if db.t.lite:
        db.call("flush", db.c.flush, db.t.coll("meta"))
