"""xsearch.index: vectors, ids and metadata of a collection — never models (a model is an opaque model_id).

The entry point: :func:`open_store` / :func:`open_writer` pick the store from the collection argument, so callers
never branch (the protocol they get is index/store.py's):

    store = open_store("~/my-collection")          # a directory, or a name under $XSEARCH_HOME → local
    store = open_store("milvus-lite:~/lib.db")     # milvus-lite; "milvus://HOST:PORT/NAME" for a Milvus server

Backends are found by the longest matching prefix in a registry of ``"module:Class"`` names, imported on first
use: the local store (FAISS files + SQLite catalog, index/local/) serves everything without a known prefix, and
pymilvus only loads for Milvus collections. Heavy imports (faiss) happen when an index is created or loaded, not
when this package is imported.
"""

from __future__ import annotations

import importlib

from .store import Backend, Store, StoreSpec, StoreWriter

_MILVUS = "xsearch.index.milvus.backend:MilvusBackend"

#: Collection-argument prefix → its backend: an instance, or "module:Class" imported on first use. "" = the default.
_REGISTRY: dict[str, Backend | str] = {
    "": "xsearch.index.local.store:LocalBackend",  # a directory, or a name under $XSEARCH_HOME/collections
    "milvus-lite:": _MILVUS,  # milvus-lite:PATH.db (embedded)
    "milvus://": _MILVUS,  # milvus://HOST:PORT/NAME (a Milvus server)
}
_LOADED: dict[str, Backend] = {}  # "module:Class" → its one instance (both Milvus prefixes share one)


def register_backend(prefix: str, backend: Backend | str) -> None:
    """Serve collection arguments starting with ``prefix`` (e.g. "milvus-lite:") by ``backend``: an instance, or
    "module:Class" to import on first use."""
    _REGISTRY[prefix] = backend


def backend_for(uri: str | None) -> Backend:
    """The backend for a collection argument: the longest matching prefix; anything else is local."""
    text = "" if uri is None else str(uri)
    prefix = max((p for p in _REGISTRY if text.startswith(p)), key=len)
    entry = _REGISTRY[prefix]
    if isinstance(entry, Backend):
        return entry
    if entry not in _LOADED:
        module, _, cls = entry.partition(":")
        _LOADED[entry] = getattr(importlib.import_module(module), cls)()
    return _LOADED[entry]


def open_store(uri: str | None) -> Store:
    """A long-lived reader of the collection named by ``uri`` (CollectionError code collection.missing if none)."""
    backend = backend_for(uri)
    resolved = backend.resolve(uri)
    _check_complete(backend, resolved)
    return backend.open(resolved)


def open_writer(uri: str | None, *, create: StoreSpec | None = None, wait_s: float = 0.0) -> StoreWriter:
    """The collection's writer (created from ``create`` when missing and given)."""
    backend = backend_for(uri)
    resolved = backend.resolve(uri)
    _check_complete(backend, resolved)
    return backend.open_writer(resolved, create=create, wait_s=wait_s)


def store_exists(uri: str | None) -> bool:
    """Whether a collection exists under ``uri``."""
    backend = backend_for(uri)
    return backend.exists(backend.resolve(uri))


def delete_store(uri: str | None, *, wait_s: float = 0.0) -> None:
    """Delete the collection's data under its writer lock (a damaged collection too)."""
    from .incomplete import clear

    backend = backend_for(uri)
    resolved = backend.resolve(uri)
    backend.delete(resolved, wait_s=wait_s)
    clear(backend, resolved)  # an unfinished copy's marker goes with what it marked


def _check_complete(backend: Backend, uri: str) -> None:
    """CollectionError ``collection.incomplete`` for a collection an interrupted ``xsearch copy`` left behind."""
    from .incomplete import check

    check(backend, uri)


def resolve_uri(uri: str | None) -> str:
    """The canonical collection name (an absolute directory for local collections)."""
    backend = backend_for(uri)
    return backend.resolve(uri)


__all__ = ["backend_for", "delete_store", "open_store", "open_writer", "register_backend", "resolve_uri",
           "store_exists"]
