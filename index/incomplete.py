"""A collection being written by ``xsearch copy`` carries a marker until the copy's last commit, so an interrupted
copy (kill -9, a full disk) never passes for a complete collection: readers and writers refuse it with
``collection.incomplete``, and running the copy again starts it over without ``--replace``.

The marker is a small JSON file next to the collection when it lives on this machine (``.NAME.copying`` beside a
collection folder or a milvus-lite ``.db``), so it moves with it; for a Milvus server it lives under
``$XSEARCH_HOME/copying/``. Deleting the collection (``--replace``, ``index --rebuild``) removes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from xsearch.core.errors import CollectionError

_LITE = "milvus-lite:"


def marker_path(backend, uri: str) -> Path:
    """Where the marker of the collection named by the canonical ``uri`` lives."""
    folder = backend.directory(uri)
    if folder is None and uri.startswith(_LITE):
        folder = Path(uri[len(_LITE):])
    if folder is not None:
        folder = Path(folder)
        return folder.parent / f".{folder.name}.copying"
    from xsearch.core.paths import data_home

    return data_home() / "copying" / (hashlib.sha1(uri.encode()).hexdigest()[:20] + ".json")


def mark(backend, uri: str, source: str) -> None:
    """Mark ``uri`` as being copied from ``source`` (written before the first row)."""
    path = marker_path(backend, uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"source": source, "destination": uri, "pid": os.getpid()}))
    os.replace(tmp, path)


def clear(backend, uri: str) -> None:
    marker_path(backend, uri).unlink(missing_ok=True)


def source_of(backend, uri: str) -> str | None:
    """The source of an unfinished copy into ``uri`` ("" when the marker is unreadable), or None if none."""
    path = marker_path(backend, uri)
    if not path.is_file():  # none (or a path under a file, which holds no collection either)
        return None
    try:
        text = path.read_text()
    except OSError:
        return ""
    try:
        return str(json.loads(text).get("source", ""))
    except (ValueError, AttributeError):
        return ""


def check(backend, uri: str) -> None:
    """CollectionError ``collection.incomplete`` when ``uri`` is an unfinished copy."""
    source = source_of(backend, uri)
    if source is not None:
        raise CollectionError(f"collection {uri} is an unfinished copy (`xsearch copy` was interrupted); it may lack "
                              "files", code="collection.incomplete", collection=uri, source=source or "SOURCE")
