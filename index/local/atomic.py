"""Crash-safe file replacement (write a temporary sibling, fsync it, rename it over the target, fsync the folder)
and safe opening of collection files (never through a symbolic link, only regular files, OSErrors as one line)."""

from __future__ import annotations

import errno
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from xsearch.core.errors import CollectionError


@contextmanager
def atomic_write(path: Path, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Yield a file whose content replaces ``path`` only if the block finishes; otherwise ``path`` is untouched."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, opener=_nofollow_opener, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _nofollow_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, 0o644)


def dir_writable(directory: Path) -> bool:
    """Whether this process may create files in ``directory`` (False on a read-only mount or without permission)."""
    return os.access(directory, os.W_OK)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def unsafe_file(path: Path, collection: Path, kind: str) -> CollectionError:
    return CollectionError(f"collection file {path} is {kind}; xsearch only uses regular files inside a collection",
                           code="collection.unsafe_file", collection=str(collection), path=str(path), kind=kind)


def collection_os_error(exc: OSError, path: Path, *, collection: Path, doing: str) -> CollectionError:
    """A one-line CollectionError for an OSError met while ``doing`` ("open", "read", "write", ...) ``path``."""
    code = exc.errno
    where = dict(collection=str(collection), path=str(path), reason=exc.strerror or str(exc))
    if code in (errno.ENOSPC, errno.EDQUOT):
        return CollectionError(f"no space left on the disk holding {collection} (while trying to {doing} {path.name})",
                               code="collection.disk_full", **where)
    if code == errno.EROFS:
        return CollectionError(f"collection {collection} is on a read-only file system (cannot {doing} {path.name})",
                               code="collection.read_only", **where)
    if code in (errno.EACCES, errno.EPERM):
        return CollectionError(f"permission denied: cannot {doing} {path}", code="collection.permission_denied",
                               **where)
    if code == errno.ELOOP:
        return unsafe_file(path, collection, "a symbolic link")
    if code == errno.EISDIR:
        return unsafe_file(path, collection, "a directory")
    return CollectionError(f"cannot {doing} {path} ({exc.strerror or exc})", code="collection.io_error", **where)


def open_regular(path: Path, flags: int, *, collection: Path, doing: str = "open", mode: int = 0o644) -> int:
    """``os.open`` that never follows a symbolic link and only returns a regular file's descriptor.

    FileNotFoundError propagates (callers decide what a missing file means); every other OSError, a link, a
    directory or a special file is a one-line CollectionError.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)  # NONBLOCK: a FIFO
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise collection_os_error(exc, path, collection=collection, doing=doing) from None
    try:
        st_mode = os.fstat(fd).st_mode
    except OSError as exc:
        os.close(fd)
        raise collection_os_error(exc, path, collection=collection, doing=doing) from None
    if not stat.S_ISREG(st_mode):
        os.close(fd)
        raise unsafe_file(path, collection, _kind(st_mode))
    return fd


def check_regular(path: Path, *, collection: Path) -> bool:
    """True when ``path`` is a regular file, False when it does not exist; a link or special file raises."""
    try:
        st_mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise collection_os_error(exc, path, collection=collection, doing="inspect") from None
    if not stat.S_ISREG(st_mode):
        raise unsafe_file(path, collection, _kind(st_mode))
    return True
