"""Connections: one MilvusClient per collection argument and process, and milvus-lite's in-process server.

milvus-lite runs inside the process that opens the .db and serves it to that process only: another process that
tries gets CollectionLockedError (code collection.in_use) at once. A Milvus server is reached over gRPC with the
token from ``$XSEARCH_STORE_TOKEN`` (else the older ``$XSEARCH_MILVUS_TOKEN``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import threading
import time
from pathlib import Path

from xsearch.core.errors import CollectionError, CollectionLockedError, XsearchError

from .. import locks
from .uri import Target

#: Where the server token is read, first set first: the generic store credential (the CLI's --store-token sets
#: it), then its older Milvus-only name.
TOKEN_ENVS = ("XSEARCH_STORE_TOKEN", "XSEARCH_MILVUS_TOKEN")
#: pymilvus pings every 10 s; a gRPC server's default policy (one ping per 5 min without data) answers the third
#: ping inside one long call with GOAWAY, cutting calls longer than ~30 s. Pinging rarely avoids that.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 600_000}
CONNECT_TIMEOUT_S = 10.0  # how long to try reaching a Milvus server

# one coded line instead of library tracebacks on stderr (see _quiet_pymilvus)
for _name in ("milvus_lite", "pymilvus"):
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


def lite_servers() -> dict:
    """milvus-lite's servers running in this process, by .db path."""
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
        "at a time)", code="collection.in_use", collection=target.uri, path=target.path,
        hint="wait for that process to end, or keep the collection on a Milvus server (-c milvus://HOST:PORT/NAME; "
             "`xsearch copy` moves it) to search while indexing")


class Connection:
    """One MilvusClient per collection argument and process, shared by its readers and writer (thread-safe).
    milvus-lite's in-process server is stopped when the last user closes, which frees the .db for others."""

    _lock = threading.Lock()
    _open: dict[str, Connection] = {}

    def __init__(self, target: Target, client, lock_fd: int | None):
        self.target = target
        self.client = client
        self.users = 0
        self._lock_fd = lock_fd
        self.key = target.uri

    @classmethod
    def acquire(cls, target: Target, wait_s: float = 0.0) -> Connection:
        """The shared connection for ``target`` (one more user), opened if none is; waits up to ``wait_s`` for
        another process to let go of a milvus-lite .db."""
        deadline = time.monotonic() + max(0.0, float(wait_s))
        key = target.uri if target.lite else f"{target.uri} {_token()}"  # another token: another connection
        with cls._lock:
            conn = cls._open.get(key)
            if conn is None:
                conn = cls._connect(target, deadline)
                conn.key = key
                cls._open[key] = conn
            conn.users += 1
            return conn

    @classmethod
    def _connect(cls, target: Target, deadline: float) -> Connection:
        pymilvus = _pymilvus()
        if target.lite:
            try:
                import milvus_lite  # noqa: F401
            except ImportError:
                raise XsearchError("milvus-lite collections need milvus-lite, which is not installed: install the "
                                   "'milvus' extra (pip install 'xsearch[milvus]')", code="store.missing_dependency",
                                   extra="milvus", package="milvus-lite") from None
            Path(target.path).parent.mkdir(parents=True, exist_ok=True)
            if target.path not in lite_servers() and not _lite_writable(target.path):
                raise _lite_read_only(target)
            if target.path not in lite_servers():
                while _lite_lock_busy(target.path):
                    if time.monotonic() >= deadline:
                        raise _lite_in_use(target)
                    time.sleep(0.1)
            try:
                client = pymilvus.MilvusClient(target.path, grpc_options=dict(GRPC_OPTIONS))
            except Exception as exc:  # noqa: BLE001 - pymilvus wraps milvus-lite's DataDirLockedError
                if _lite_lock_busy(target.path):
                    raise _lite_in_use(target) from None
                raise milvus_error(exc, target, "open") from None
            fd = None
            entry = lite_servers().get(target.path)
            if entry is not None:  # forked decode workers must not keep milvus-lite's LOCK after we exit
                fd = getattr(entry[1], "_lock_fd", None)
                if isinstance(fd, int):
                    locks.close_in_children(fd)
            return cls(target, client, fd)
        token = _token()
        try:
            client = pymilvus.MilvusClient(f"http://{target.address}", token=token, timeout=CONNECT_TIMEOUT_S,
                                           grpc_options=dict(GRPC_OPTIONS))
        except Exception as exc:  # noqa: BLE001
            raise _connect_error(exc, target, token) from None
        return cls(target, client, None)

    @classmethod
    def is_open(cls, target: Target) -> bool:
        """Whether this process holds a connection for ``target``."""
        return any(conn.target.uri == target.uri for conn in cls._open.values())

    def release(self) -> None:
        """One user fewer; the last closes the client (and stops milvus-lite's server for the .db)."""
        with self._lock:
            self.users -= 1
            if self.users > 0:
                return
            self._open.pop(self.key, None)
            with contextlib.suppress(Exception):
                self.client.close()
            if self.target.lite:
                if self._lock_fd is not None:
                    locks.forget(self._lock_fd)
                with contextlib.suppress(Exception):
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(self.target.path)


def _token() -> str:
    return next((os.environ[name] for name in TOKEN_ENVS if os.environ.get(name)), "")


def _lite_writable(path: str) -> bool:
    """Whether milvus-lite can open the .db at ``path``: it writes its lock and logs there even to search."""
    existing = path if os.path.isdir(path) else os.path.dirname(path)
    return not os.path.isdir(existing) or os.access(existing, os.W_OK)


def _lite_read_only(target: Target) -> CollectionError:
    return CollectionError(f"the milvus-lite collection {target.path} is on a read-only folder, and milvus-lite "
                           "cannot open a .db it cannot write, not even to search", code="store.read_only",
                           hint="copy the .db folder somewhere writable (cp -r) and use that copy",
                           collection=target.uri)


def _answers(address: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _connect_error(exc: BaseException, target: Target, token: str) -> CollectionError:
    """A failed connect. pymilvus says "Fail connecting ... or server unavailable" both when nothing listens and
    when a server with authentication on refuses a missing or wrong token (Milvus 2.3.5, measured): the port
    answering tells the two apart."""
    error = milvus_error(exc, target, "connect")
    if error.code != "store.unreachable" or not _answers(target.address):
        return error
    said = "the token given was refused" if token else "no token was given"
    return CollectionError(f"Milvus at {target.address} answers but refused the connection ({said}); a server with "
                           "authentication on needs a user's token", code="store.auth",
                           hint="pass --store-token USER:PASSWORD (or set XSEARCH_STORE_TOKEN)",
                           collection=target.uri, reason=error.params.get("reason", ""))


def milvus_error(exc: BaseException, target: Target, doing: str) -> CollectionError:
    """One coded CollectionError for a failed Milvus call."""
    text = " ".join(str(getattr(exc, "message", "") or exc).split())[:300] or type(exc).__name__
    where = target.path or target.address
    low = text.lower()
    if target.lite and ("read-only file system" in low or "read only" in low):
        return _lite_read_only(target)
    if "collection" in low and "does not exist" in low:  # one of its Milvus collections (files, a track) is gone
        return CollectionError(f"collection {target.uri} is missing one of its parts ({text})",
                               code="collection.damaged", collection=target.uri, reason=text)
    if any(s in low for s in ("fail connecting", "unavailable", "connection refused", "deadline exceeded",
                              "failed to connect")):
        return CollectionError(f"cannot reach Milvus at {where} ({text})", code="store.unreachable",
                               hint="check that Milvus runs there", collection=target.uri, reason=text)
    if any(s in low for s in ("auth", "permission denied", "token")):
        return CollectionError(f"Milvus at {where} refused the credentials ({text})", code="store.auth",
                               collection=target.uri, reason=text)
    return CollectionError(f"Milvus could not {doing} collection {target.uri} ({text})", code="store.milvus_error",
                           collection=target.uri, reason=text, doing=doing)

