"""The vector file on disk (``<modality>.<gen>.faiss``): one self-checking container around a FAISS index.

    header   magic b"XSVECIDX", u32 meta length, u32 meta crc32, JSON meta (format, factory, dim, layout,
             tombstones, the modality when the caller names it, search defaults, why the type was chosen, and a
             refined type's exact-vector file length and CRC; VectorIndex decides what goes in)
    body     the FAISS index as ``faiss.write_index`` writes it
    trailer  u64 body length, u32 body crc32, magic b"XSVECEND"

:func:`read_vector_file` checks both CRCs before FAISS parses anything, so a damaged file is a clear
``CollectionError`` (``collection.vectors_damaged``), never a crash. It never follows a symbolic link and reads
only regular files. Writes are atomic (temp file, fsync, rename, fsync the folder).
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

from xsearch.core.errors import CollectionError

from .atomic import atomic_write, collection_os_error, open_regular
from .faisslib import load_faiss

FILE_FORMAT = 1
_MAGIC = b"XSVECIDX"
_TRAILER_MAGIC = b"XSVECEND"
_HEADER = struct.Struct("<8sII")  # magic, meta length, meta crc32
_TRAILER = struct.Struct("<QI8s")  # blob length, blob crc32, magic


def damaged(path: Path, why: str) -> CollectionError:
    """The error for a vector file whose content cannot be used."""
    return CollectionError(f"vector index {path} is damaged ({why})", code="collection.vectors_damaged",
                           collection=str(path.parent), path=str(path), reason=why)


def write_vector_file(path: Path, meta: dict, index) -> None:
    """Write ``meta`` (a JSON object; "format" is added first) and the FAISS ``index`` to ``path`` atomically."""
    faiss = load_faiss()
    meta_bytes = json.dumps({"format": FILE_FORMAT, **meta}).encode()
    with atomic_write(path, "wb") as f:
        f.write(_HEADER.pack(_MAGIC, len(meta_bytes), zlib.crc32(meta_bytes)))
        f.write(meta_bytes)
        state = {"crc": 0, "n": 0}

        def write(chunk: bytes) -> int:
            state["crc"] = zlib.crc32(chunk, state["crc"])
            state["n"] += len(chunk)
            f.write(chunk)
            return len(chunk)

        writer = faiss.PyCallbackIOWriter(write)
        faiss.write_index(index, writer)
        del writer  # flushes FAISS's buffer through `write`
        f.write(_TRAILER.pack(state["n"], state["crc"], _TRAILER_MAGIC))


def read_vector_file(path: Path) -> tuple[dict, object]:
    """(meta, FAISS index) from a file written by :func:`write_vector_file`.

    A missing file raises FileNotFoundError; a damaged one, a link, a special file or an unreadable file is a
    CollectionError; a file from a newer xsearch is ``collection.newer_format``.
    """
    faiss = load_faiss()
    fd = open_regular(path, os.O_RDONLY, collection=path.parent, doing="read")
    try:
        with open(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            meta, blob_start = _read_meta(f, path)
            _check_body(f, path, size, blob_start)
            f.seek(blob_start)
            reader = faiss.PyCallbackIOReader(f.read)
            try:
                index = faiss.read_index(reader)
            finally:
                del reader
    except CollectionError:
        raise
    except OSError as exc:  # a read error is not damage of the file's content
        raise collection_os_error(exc, path, collection=path.parent, doing="read") from None
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        first = (str(exc).splitlines() or [""])[0][:120]
        raise damaged(path, f"{type(exc).__name__}: {first}") from None
    return meta, index


def _read_meta(f, path: Path) -> tuple[dict, int]:
    """The header's JSON meta (checked against its CRC) and where the body starts."""
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise damaged(path, "file is truncated")
    magic, meta_len, meta_crc = _HEADER.unpack(head)
    if magic != _MAGIC:
        raise damaged(path, "not an xsearch vector index")
    meta_bytes = f.read(meta_len)
    if len(meta_bytes) != meta_len or zlib.crc32(meta_bytes) != meta_crc:
        raise damaged(path, "header checksum mismatch")
    meta = json.loads(meta_bytes)
    if not isinstance(meta, dict):
        raise damaged(path, "header is not a JSON object")
    if meta.get("format", 0) > FILE_FORMAT:
        raise CollectionError(f"vector index {path} was written by a newer xsearch", code="collection.newer_format",
                              collection=str(path.parent), path=str(path))
    return meta, _HEADER.size + meta_len


def _check_body(f, path: Path, size: int, blob_start: int) -> None:
    """The trailer matches the file's length and the body its CRC."""
    if size < blob_start + _TRAILER.size:
        raise damaged(path, "file is truncated")
    f.seek(size - _TRAILER.size)
    blob_len, blob_crc, end_magic = _TRAILER.unpack(f.read(_TRAILER.size))
    if end_magic != _TRAILER_MAGIC or blob_start + blob_len + _TRAILER.size != size:
        raise damaged(path, "file is truncated or has trailing bytes")
    f.seek(blob_start)
    crc, left = 0, blob_len
    while left:
        chunk = f.read(min(left, 1 << 22))
        if not chunk:
            raise damaged(path, "file is truncated")
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
    if crc != blob_crc:
        raise damaged(path, "data checksum mismatch")
