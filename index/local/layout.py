"""The collection folder: the names of its files, its writer lock, and what can be wrong with the folder itself.

Layout::

    <collection>/
        manifest.json            format_version, model_id, model_spec, dims and factory per modality, created_at,
                                 memory / latency budget and, per "auto" modality, the index choice and its reason
                                 (index/local/manifest.py)
        catalog.sqlite           files and items (index/local/catalog.py), WAL mode
        <modality>.<gen>.faiss   the vector index of each modality (index/local/vectors.py); the catalog names the
                                 committed one (table vector_files), <gen> counts commits that changed it
        <modality>.<gen>.vecs    a refined index's exact vectors (index/local/exact.py), written before its .faiss
                                 and published with it by the same catalog commit (the .faiss header holds its CRC)
        lock                     fcntl.flock'ed by the one writer; holds its pid

The protocol that keeps these consistent is the Collection's (index/local/collection.py); this module names the
files, takes the lock, deletes what a collection leaves, and words the errors about the folder.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from xsearch.core.errors import CollectionError, CollectionLockedError

from ..locks import WriterLock, pid_alive
from .atomic import collection_os_error, open_regular
from .exact import SUFFIX as EXACT_SUFFIX
from .exact import sidecar_path
from .manifest import MANIFEST

CATALOG = "catalog.sqlite"
LOCK = "lock"
_CATALOG_FILES = (CATALOG, CATALOG + "-wal", CATALOG + "-shm")


def missing(root: Path) -> CollectionError:
    return CollectionError(f"no collection at {root}", code="collection.missing", collection=str(root))


def not_a_folder(root: Path) -> CollectionError | None:
    """The error for a collection path that is (or lies under) something that is not a folder, else None."""
    for where in (root, *root.parents):
        try:
            st = os.stat(where)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return None
        kind = "a file" if stat.S_ISREG(st.st_mode) else "a special file"
        message = (f"the collection path {root} is {kind}, not a folder" if where == root else
                   f"the collection path {root} lies under {where}, which is {kind}, not a folder")
        return CollectionError(message, code="collection.not_a_folder", collection=str(root), path=str(where))
    return None


def read_only(root: Path) -> CollectionError:
    return CollectionError(f"collection {root} is read-only (its folder cannot be written)",
                           code="collection.read_only", collection=str(root))


def vectors_damaged(root: Path, path: Path, why: str) -> CollectionError:
    return CollectionError(f"vector index {path} is damaged ({why})", code="collection.vectors_damaged",
                           collection=str(root), path=str(path), reason=why)


def next_vector_file(modality: str, current: str | None) -> str:
    """``<modality>.<generation>.faiss`` with the generation after ``current``'s."""
    generation = 0
    if current:
        try:
            generation = int(current.rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            generation = 0
    return f"{modality}.{generation + 1:06d}.faiss"


def _locked(root: Path, holder: int | None) -> CollectionLockedError:
    alive = pid_alive(holder) if holder else None
    if alive is False:
        message = (f"collection {root} is locked: the writer that locked it (pid {holder}) is no longer "
                   "running, but a process it started still holds the lock")
    else:
        message = f"collection {root} is being written by another process (pid {holder or 'unknown'})"
    return CollectionLockedError(message, collection=str(root), holder_pid=holder, holder_alive=alive)


def writer_lock(root: Path, wait_s: float) -> WriterLock:
    """The collection's writer lock: an exclusive flock on ``<collection>/lock`` holding the owner's pid."""
    path = root / LOCK
    try:
        fd = open_regular(path, os.O_RDWR | os.O_CREAT, collection=root)
    except FileNotFoundError:
        raise missing(root) from None
    try:
        return WriterLock(fd, path, wait_s, busy=lambda holder: _locked(root, holder))
    except OSError as exc:
        raise collection_os_error(exc, path, collection=root, doing="lock") from None


def discard_vector_file(root: Path, name: str) -> None:
    """Delete vector file ``name`` and its exact-vector file if it can (one no commit names; best effort)."""
    with contextlib.suppress(OSError):
        (root / name).unlink(missing_ok=True)
        sidecar_path(root / name).unlink(missing_ok=True)


def unlink(root: Path, path: Path) -> None:
    """Delete one file of the collection (a link is removed, never followed); absent is fine."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise collection_os_error(exc, path, collection=root, doing="delete") from None


def has_files(root: Path) -> bool:
    """Whether ``root`` holds any collection file besides the lock (e.g. one whose manifest was lost)."""
    return any(os.path.lexists(root / n) for n in (MANIFEST, *_CATALOG_FILES)) or any(root.glob("*.faiss")) or \
        any(root.glob("*" + EXACT_SUFFIX))


def remove_files(root: Path) -> None:
    """Delete the catalog, vector files and temp files (links are removed, never followed)."""
    for name in _CATALOG_FILES:
        unlink(root, root / name)
    for stale in [*root.glob("*.faiss"), *root.glob("*" + EXACT_SUFFIX), *root.glob(".*.tmp")]:
        unlink(root, stale)


def stale_files(root: Path, referenced: set[str]) -> list[Path]:
    """Vector, exact-vector and temp files that no commit refers to (``referenced``: names the catalog holds)."""
    return [p for p in sorted([*root.glob(".*.tmp"), *root.glob("*.faiss"), *root.glob("*" + EXACT_SUFFIX)])
            if p.name not in referenced]
