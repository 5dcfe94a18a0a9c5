"""Exact vectors beside a compressed index: the re-ranking stage of "<first stage>,RFlat" / ",Refine(SQfp16)".

A compressed first stage (IVF-PQ fast scan, RaBitQ, SQ4, ...) returns ``k · k_factor`` candidates; their exact
vectors are read from this store and re-scored, so recall comes from the exact vectors and resident memory
from the codes. The store lives in its own file, memory-mapped read-only: only the rows of candidates are read
(through the page cache, which the kernel may drop at any time), so the vectors do not count as the process's
own memory.

File ``<modality>.<gen>.vecs`` (the sibling of ``<modality>.<gen>.faiss``; VectorIndex.save writes it first, and
the same catalog commit publishes both)::

    header   magic b"XSEXACT1", u32 meta length, u32 meta crc32, JSON meta {format, dim, dtype, n}
    body     (from offset DATA_ALIGN) ids int64[n] sorted ascending, zero padding to DATA_ALIGN,
             vectors dtype[n, dim] (row i belongs to ids[i])
    trailer  u64 body length, u32 body crc32, magic b"XSEXAEND"

The .faiss header records the body's length and CRC, so a .vecs from another generation or a damaged one is
refused when it is opened. Rows added since the file was opened are kept in memory until the next save; rows
of removed ids stay in the file until then (nothing looks them up: callers ask only for live ids).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from xsearch.core.errors import CollectionError

from .atomic import atomic_write, collection_os_error, open_regular

DATA_ALIGN = 4096
SUFFIX = ".vecs"
DTYPES = {"float32": np.float32, "float16": np.float16}
_MAGIC = b"XSEXACT1"
_END = b"XSEXAEND"
_FORMAT = 1
_HEADER = struct.Struct("<8sII")
_TRAILER = struct.Struct("<QI8s")
_ROWS = 65536  # rows per write chunk


def sidecar_path(path: str | os.PathLike) -> Path:
    """The exact-vector file that belongs to vector file ``path`` (``image.000007.faiss`` → ``image.000007.vecs``)."""
    return Path(path).with_suffix(SUFFIX)


def _align(n: int) -> int:
    return -(-n // DATA_ALIGN) * DATA_ALIGN


def _damaged(path: Path, why: str) -> CollectionError:
    return CollectionError(f"vector index {path} is damaged ({why})", code="collection.vectors_damaged",
                           collection=str(path.parent), path=str(path), reason=why)


class ExactStore:
    """Exact (float32) or float16 copies of an index's vectors, addressed by id; see the module docstring."""

    def __init__(self, dim: int, dtype: str = "float16"):
        if dtype not in DTYPES:
            raise ValueError(f"exact vectors are stored as {' or '.join(DTYPES)}, not {dtype!r}")
        self.dim = int(dim)
        self.dtype = dtype
        self._np = DTYPES[dtype]
        self._base_ids = np.empty(0, dtype=np.int64)  # from the file (memory-mapped), sorted
        self._base_vecs = np.empty((0, self.dim), dtype=self._np)
        self._map: mmap.mmap | None = None
        self._path: Path | None = None
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []  # rows added since the file was opened
        self._new_ids = np.empty(0, dtype=np.int64)  # consolidated chunks, sorted, newest row per id
        self._new_vecs = np.empty((0, self.dim), dtype=self._np)

    # -- writing ---------------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Keep rows for ``ids`` (a later add of the same id wins over earlier rows and the file)."""
        if len(ids):
            self._chunks.append((np.array(ids, dtype=np.int64), np.asarray(vectors).astype(self._np, copy=True)))

    def clear(self) -> None:
        """Forget every row (the file stays mapped by nobody)."""
        self.__init__(self.dim, self.dtype)

    def _consolidate(self) -> None:
        if not self._chunks:
            return
        ids = np.concatenate([self._new_ids] + [c[0] for c in self._chunks])
        vecs = np.concatenate([self._new_vecs] + [c[1] for c in self._chunks])
        self._chunks = []
        # newest row per id: a stable sort of the reversed arrays puts the last occurrence first
        rev = np.arange(ids.size - 1, -1, -1)
        order = rev[np.argsort(ids[rev], kind="stable")]
        ids, vecs = ids[order], vecs[order]
        keep = np.ones(ids.size, dtype=bool)
        keep[1:] = ids[1:] != ids[:-1]
        self._new_ids, self._new_vecs = ids[keep], vecs[keep]

    def rows(self, ids) -> np.ndarray:
        """The stored rows of ``ids`` in the storage dtype, [n, dim]; an id without a row raises KeyError."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        out = np.empty((ids.size, self.dim), dtype=self._np)
        if ids.size == 0:
            return out
        self._consolidate()
        todo = np.ones(ids.size, dtype=bool)
        for src_ids, src_vecs in ((self._new_ids, self._new_vecs), (self._base_ids, self._base_vecs)):
            if src_ids.size == 0 or not todo.any():
                continue
            want = ids[todo]
            pos = np.searchsorted(src_ids, want)
            pos[pos == src_ids.size] = 0
            hit = src_ids[pos] == want
            if hit.any():
                where = np.flatnonzero(todo)[hit]
                take = pos[hit]
                order = np.argsort(take, kind="stable")  # ascending file offsets: sequential-ish reads
                out[where[order]] = src_vecs[take[order]]
                todo[where] = False
        if todo.any():
            raise KeyError(f"no exact vector for ids {ids[todo][:10].tolist()}")
        return out

    def vectors(self, ids) -> np.ndarray:
        """float32 [n, dim] rows of ``ids``."""
        return self.rows(ids).astype(np.float32, copy=False)

    def rerank(self, q: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Re-score first-stage ``candidates`` (int64 [nq, c], -1 = none) of the normalised queries ``q`` with their
        exact vectors: (scores float32 [nq, k], ids int64 [nq, k]), the top ``k`` by exact cosine, padded with
        -inf / -1."""
        nq = q.shape[0]
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        labels = np.full((nq, k), -1, dtype=np.int64)
        step = 64
        for start in range(0, nq, step):
            cand = candidates[start:start + step]
            valid = cand >= 0
            if not valid.any():
                continue
            uniq, inv = np.unique(cand[valid], return_inverse=True)
            vecs = self.vectors(uniq)
            s = np.full(cand.shape, -np.inf, dtype=np.float32)
            rows = np.nonzero(valid)[0]
            s[valid] = np.einsum("ij,ij->i", q[start:start + step][rows], vecs[inv])
            kk = min(k, cand.shape[1])
            top = np.argsort(-s, axis=1, kind="stable")[:, :kk]
            best = np.take_along_axis(s, top, axis=1)
            ids = np.take_along_axis(cand, top, axis=1)
            ids[~np.isfinite(best)] = -1
            scores[start:start + step, :kk] = best
            labels[start:start + step, :kk] = ids
        return scores, labels

    def write(self, path: Path, live_ids: np.ndarray) -> dict:
        """Write the rows of ``live_ids`` (sorted, unique) to ``path`` atomically; returns what the index header
        records about the file ({"n", "bytes", "crc", "dtype"})."""
        live_ids = np.ascontiguousarray(live_ids, dtype=np.int64)
        n = int(live_ids.size)
        meta = json.dumps({"format": _FORMAT, "dim": self.dim, "dtype": self.dtype, "n": n}).encode()
        head = _HEADER.pack(_MAGIC, len(meta), zlib.crc32(meta)) + meta
        if len(head) > DATA_ALIGN:
            raise ValueError("exact-vector header too long")
        ids_bytes = live_ids.tobytes()
        pad = b"\0" * (_align(len(ids_bytes)) - len(ids_bytes))
        crc, body = 0, 0
        with atomic_write(path, "wb") as f:
            f.write(head + b"\0" * (DATA_ALIGN - len(head)))
            for part in (ids_bytes, pad):
                f.write(part)
                crc, body = zlib.crc32(part, crc), body + len(part)
            for start in range(0, n, _ROWS):
                block = np.ascontiguousarray(self.rows(live_ids[start:start + _ROWS])).tobytes()
                f.write(block)
                crc, body = zlib.crc32(block, crc), body + len(block)
            f.write(_TRAILER.pack(body, crc, _END))
        return {"n": n, "bytes": DATA_ALIGN + body + _TRAILER.size, "crc": crc, "dtype": self.dtype}

    # -- the file ----------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, dim: int, expect: dict, *, index_path: Path, verify: bool = True) -> ExactStore:
        """Map ``path`` read-only after checking it against ``expect`` (what the index header recorded) and, with
        ``verify``, its CRC (skipped right after writing it). A missing file raises FileNotFoundError; damage is
        a CollectionError naming ``index_path``."""
        dtype = str(expect.get("dtype", ""))
        if dtype not in DTYPES:
            raise _damaged(index_path, f"unknown exact-vector type {dtype!r}")
        self = cls(dim, dtype)
        fd = open_regular(path, os.O_RDONLY, collection=path.parent, doing="read")
        try:
            size = os.fstat(fd).st_size
            if size != int(expect.get("bytes", -1)):
                raise _damaged(index_path, f"{path.name} has {size} bytes, the index expects {expect.get('bytes')}")
            head = os.pread(fd, DATA_ALIGN, 0)
            magic, meta_len, meta_crc = _HEADER.unpack_from(head)
            meta_bytes = head[_HEADER.size:_HEADER.size + meta_len]
            if magic != _MAGIC or len(meta_bytes) != meta_len or zlib.crc32(meta_bytes) != meta_crc:
                raise _damaged(index_path, f"{path.name} has a bad header")
            meta = json.loads(meta_bytes)
            n = int(meta["n"])
            if int(meta["dim"]) != self.dim or meta["dtype"] != dtype or n != int(expect.get("n", -1)):
                raise _damaged(index_path, f"{path.name} does not match its index")
            body, crc, end = _TRAILER.unpack(os.pread(fd, _TRAILER.size, size - _TRAILER.size))
            ids_len = _align(8 * n)
            if end != _END or DATA_ALIGN + body + _TRAILER.size != size or \
                    body != ids_len + n * self.dim * np.dtype(self._np).itemsize:
                raise _damaged(index_path, f"{path.name} is truncated or has trailing bytes")
            got, offset, left = crc, DATA_ALIGN, body if verify else 0
            if left:
                got = 0
            while left:
                chunk = os.pread(fd, min(left, 1 << 22), offset)
                if not chunk:
                    raise _damaged(index_path, f"{path.name} is truncated")
                got = zlib.crc32(chunk, got)
                offset += len(chunk)
                left -= len(chunk)
            if got != crc or crc != int(expect.get("crc", -1)):
                raise _damaged(index_path, f"{path.name} checksum mismatch")
            mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except (CollectionError, FileNotFoundError):
            raise
        except OSError as exc:
            raise collection_os_error(exc, path, collection=path.parent, doing="read") from None
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise _damaged(index_path, f"{path.name}: {type(exc).__name__}") from None
        finally:
            os.close(fd)
        if hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
            mm.madvise(mmap.MADV_RANDOM)  # candidates are scattered: no read-ahead
        self._map, self._path = mm, path
        self._base_ids = np.frombuffer(mm, dtype=np.int64, count=n, offset=DATA_ALIGN)
        self._base_vecs = np.frombuffer(mm, dtype=self._np, count=n * self.dim,
                                        offset=DATA_ALIGN + ids_len).reshape(n, self.dim)
        return self

    # -- accounting --------------------------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The file the base rows are mapped from (None: every row is in memory)."""
        return self._path

    def resident_bytes(self) -> int:
        """Bytes held in this process's own memory: rows added since the file was opened."""
        return int(self._new_ids.nbytes + self._new_vecs.nbytes
                   + sum(i.nbytes + v.nbytes for i, v in self._chunks))

    def row_bytes(self) -> int:
        """Bytes per row in the file (id + vector)."""
        return 8 + self.dim * np.dtype(self._np).itemsize
