"""Writer locks: an exclusive ``fcntl.flock`` on a lock file that holds its owner's pid, shared by every store that
keeps one on local disk (the local collection's ``<collection>/lock``, milvus-lite's ``PATH.db.lock``).

Forks: an flock belongs to the open file description, which a forked child shares, so a child that outlives a
killed writer would keep the lock held for good. Every lock descriptor this process holds is therefore
registered here (:func:`close_in_children`) and closed in each forked child (:func:`close_inherited_lock_fds`,
run after every ``os.fork`` and by decode workers first thing). Closing a child's copy never releases the
parent's lock: only the last close or an explicit unlock of the shared open file description does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)

#: Descriptors this process must not pass on to forked children (see the module docstring).
_held_fds: set[int] = set()


def close_in_children(fd: int) -> None:
    """Register ``fd`` (a lock descriptor this process holds) to be closed in every forked child."""
    _held_fds.add(fd)


def forget(fd: int) -> bool:
    """Unregister ``fd``; whether it was still registered (False in a forked child, where the fork hook closed
    it already)."""
    if fd in _held_fds:
        _held_fds.discard(fd)
        return True
    return False


def held_lock_fds() -> frozenset[int]:
    """The lock descriptors this process holds (registered with :func:`close_in_children`)."""
    return frozenset(_held_fds)


def close_inherited_lock_fds() -> None:
    """Close this process's copies of the lock descriptors (call it in a forked child; it also runs after every
    os.fork). Closing a child's copy never releases the parent's lock."""
    while _held_fds:
        fd = _held_fds.pop()
        with contextlib.suppress(OSError):
            os.close(fd)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=close_inherited_lock_fds)


def pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` is running (a zombie is not); None when that cannot be told."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def holder_at_work(path: Path | str) -> bool:
    """Whether the lock file at ``path`` names a running process (a writer holds it; a released lock is empty).
    Reads only: never takes the lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return False
    finally:
        os.close(fd)
    return text.isdigit() and pid_alive(int(text)) is not False


class WriterLock:
    """An exclusive ``fcntl.flock`` on an open lock file ``fd`` (which the lock now owns), holding the owner's pid.

    Waits up to ``wait_s`` for another holder; then raises ``busy(holder_pid)`` (the pid the file names, or None).
    OSErrors propagate (callers word them); on any failure the descriptor is closed. A forked copy never unlocks
    its parent's lock.
    """

    def __init__(self, fd: int, path: Path | str, wait_s: float, busy: Callable[[int | None], BaseException]):
        self.path = path
        self._pid = os.getpid()
        self._fd: int | None = fd
        close_in_children(fd)
        try:
            self._acquire(wait_s, busy)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            self._close()
            raise

    @property
    def lost(self) -> bool:
        """Whether the lock was taken from this writer (an flock never is)."""
        return False

    def _acquire(self, wait_s: float, busy: Callable[[int | None], BaseException]) -> None:
        deadline = time.monotonic() + max(0.0, float(wait_s))
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in _BUSY:
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(0.05, left))
        raise busy(self.holder_pid())

    def holder_pid(self) -> int | None:
        """The pid the lock file names (its holder while locked), or None."""
        try:
            text = os.pread(self._fd, 64, 0).decode("ascii", "replace").strip()
            return int(text) if text else None
        except (OSError, ValueError, TypeError):
            return None

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and forget(fd):  # not registered any more: a forked child, which closed it already
            os.close(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        if os.getpid() != self._pid:  # a forked copy: never unlock the parent's lock (its fd is closed already)
            self._fd = None
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._close()
