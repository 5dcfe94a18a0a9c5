"""Opening media files for reading, with OS errors turned into one-line MediaError reasons."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

from xsearch.core.errors import MediaError


def os_error_reason(exc: OSError) -> str:
    """A short, path-free reason for an OS-level failure to read a file or directory."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    detail = exc.strerror or str(exc) or type(exc).__name__
    return f"cannot read: {detail}".replace("\n", " ")


def open_binary(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading; empty or unreadable files raise MediaError."""
    try:
        handle = open(Path(path), "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise MediaError(os_error_reason(exc)) from exc
    try:
        size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        handle.close()
        raise MediaError(os_error_reason(exc)) from exc
    if size == 0:
        handle.close()
        raise MediaError("empty file (0 bytes)")
    return handle


def one_line(text: str) -> str:
    """Collapse a library message onto one line."""
    return " ".join(str(text).split())
