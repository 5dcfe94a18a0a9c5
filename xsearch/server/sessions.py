"""The server's state: one long-lived Engine per collection, the upload area, the thumbnail cache, the limits."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from xsearch.core.errors import UsageError, XsearchError
from xsearch.core.types import Query
from xsearch.engine import Engine

log = logging.getLogger("xsearch.server")


@dataclass(frozen=True)
class Limits:
    """What one client may ask for. ``concurrency`` searches run at once; a search that waits longer than
    ``busy_wait_s`` for a slot is answered 503 ``server.busy``."""

    upload_bytes: int = 25 * 1024 * 1024
    upload_seconds: float = 120.0
    max_queries: int = 8
    max_limit: int = 100
    max_window: int = 1000  # offset + limit
    concurrency: int = 8
    busy_wait_s: float = 10.0
    uploads_kept: int = 256
    max_labels: int = 1000  # labels one POST .../tags may score
    uploads_total_bytes: int = 512 * 1024 * 1024  # the upload area's size; the oldest uploads go beyond it


class Collections:
    """Named collections, each behind one Engine kept for the server's life (thread-safe, follows commits)."""

    def __init__(self, collections: Mapping[str, str] | Iterable[str | Path | None], limits: Limits):
        named = dict(collections) if isinstance(collections, Mapping) else names_for(list(collections) or [None])
        self.engines: dict[str, Engine] = {name: Engine(uri) for name, uri in named.items()}
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.concurrency)

    def names(self) -> list[str]:
        return list(self.engines)

    def get(self, name: str) -> Engine:
        engine = self.engines.get(name)
        if engine is None:
            raise UsageError(f"no collection named {name!r} on this server; it serves "
                             f"{', '.join(self.engines) or 'none'}", code="collection.unknown", collection=name)
        return engine

    @contextmanager
    def slot(self):
        """One of ``concurrency`` search slots, or 503 ``server.busy`` after ``busy_wait_s``."""
        if not self._slots.acquire(timeout=self.limits.busy_wait_s):
            raise XsearchError("the server is busy with other searches; try again in a moment", code="server.busy")
        try:
            yield
        finally:
            self._slots.release()

    def load(self, on_loaded: Callable[[str, dict | None, XsearchError | None], None] | None = None) -> None:
        """Open every existing collection's store and model now (and touch its indexes with one search), so the
        first real query does not pay for it. A collection that fails to load is reported, not fatal."""
        for name, engine in self.engines.items():
            stats, error = None, None
            try:
                if engine.exists():
                    stats = engine.stats()
                    spec = engine.stored_model()
                    engine.encoder(spec)
                    engine.prepare(spec)
                    if any(m.get("files") for m in stats["modalities"].values()):
                        engine.search([Query("text", "warm up")], to="all", k=1)
                else:
                    _why_missing(engine)
            except XsearchError as e:
                error = e
                if on_loaded is None:  # else the caller reports it (once)
                    log.warning("collection %s: %s", name, e.message)
            if on_loaded is not None:
                on_loaded(name, stats, error)

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()


def _why_missing(engine: Engine) -> None:
    """Raise the store's reason when a collection that does not exist cannot be created there either (a path that
    is a regular file: ``collection.not_a_folder``); nothing when it is simply not made yet."""
    try:
        engine.store()
    except XsearchError as e:
        if e.code != "collection.missing":
            raise


def names_for(collections: list[str | Path | None]) -> dict[str, str]:
    """URL names for collection arguments: a plain name stays itself, a path is named by its folder (``-2``,
    ``-3`` … when two share a name)."""
    named: dict[str, str] = {}
    for arg in collections:
        uri = Engine(arg).uri
        base = Path(uri).name or "collection"
        name, n = base, 1
        while name in named:
            n += 1
            name = f"{base}-{n}"
        named[name] = uri
    return named
