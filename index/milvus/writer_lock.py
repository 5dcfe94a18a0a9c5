"""One writer per collection: on milvus-lite an flock on ``PATH.db.lock`` beside the .db; on a server a lease row
(owner, expiry; renewed in the background, taken over once expired)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import threading
import time
import uuid

from xsearch.core.errors import CollectionLockedError

from ..locks import WriterLock
from .db import Db
from .uri import Target

LEASE_TTL_S = 60.0

#: Tests set this to exercise the server's lease on milvus-lite.
USE_LEASE_ON_LITE = False


def uses_flock(target: Target) -> bool:
    """Whether the writer of ``target`` holds an flock (milvus-lite) rather than a lease (a server)."""
    return target.lite and not USE_LEASE_ON_LITE


def take_writer_lock(db: Db, wait_s: float):
    """The writer lock of ``db``'s collection (CollectionLockedError once ``wait_s`` passed); ``.release()`` it."""
    if uses_flock(db.t):
        return flock_lock(db.t, wait_s)
    return Lease(db, wait_s)


def flock_lock(target: Target, wait_s: float) -> WriterLock:
    """milvus-lite: an exclusive flock on ``PATH.db.lock`` beside the .db (per open file, so also in-process)."""
    path = target.path + ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    return WriterLock(fd, path, wait_s, busy=lambda _holder: CollectionLockedError(
        f"collection {target.uri} is being written by another writer", collection=target.uri))


class Lease:
    """A Milvus server: a ``lease`` row in the meta collection (owner, host, pid, expiry), renewed every TTL/3 by a
    daemon thread. A lease that expired (its writer died) is taken over. Milvus has no compare-and-set, so a
    taker writes its lease, waits a moment and reads it back: of two writers racing for a free lease, the one whose
    write landed last wins and the other sees the winner's row."""

    SETTLE_S = 0.3

    def __init__(self, db: Db, wait_s: float, ttl_s: float = LEASE_TTL_S):
        self._db = db
        self.ttl = float(ttl_s)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self.lost = False
        deadline = time.monotonic() + max(0.0, float(wait_s))
        while True:
            cur = db.meta_get("lease", strong=True)
            if cur is None or float(cur.get("expires", 0)) < time.time() or cur.get("owner") == self.owner:
                self._write()
                time.sleep(self.SETTLE_S)
                cur = db.meta_get("lease", strong=True)
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
                cur = self._db.meta_get("lease", strong=True)
                if cur is None or cur.get("owner") != self.owner:
                    self.lost = True
                    return
                self._write()
            except Exception:  # noqa: BLE001 - a missed renewal is retried; expiry is TTL away
                pass

    def release(self) -> None:
        """Stop renewing and delete the lease row if it is still this writer's."""
        self._stop.set()
        with contextlib.suppress(Exception):
            cur = self._db.meta_get("lease", strong=True)
            if cur is not None and cur.get("owner") == self.owner:
                self._db.meta_delete('key == "lease"')

