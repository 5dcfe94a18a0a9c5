"""``manifest.json``: what a collection is — its model, its modalities and their dimensions, how their index types
are chosen.

Keys: format_version, model_id, model_spec, dims and factory per modality ("auto" or a FAISS factory string),
created_at, memory_budget_bytes, latency_budget_ms (when given) and, per "auto" modality, ``index_choice`` (the
choice and its reason, mirrored from the vector files after each commit). Its presence is what makes a folder a
collection; it is written atomically and read defensively (a regular file, at most 1 MiB, checked field by field).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path

from xsearch.core.errors import CollectionError

from .atomic import atomic_write, collection_os_error, open_regular

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: How a modality's index type is chosen unless the collection names one: by size and budgets (index/local/budget.py).
AUTO = "auto"
MODALITY_RE = re.compile(r"[a-z]+")  # modality names become file names


def factories_for(dims: dict[str, int], factory: str | dict[str, str]) -> dict[str, str]:
    """The index type of each modality of a new collection (``factory``: one for all, or {modality: factory}),
    after checking the dimensions and modality names (ValueError)."""
    if not dims or any(int(d) <= 0 for d in dims.values()):
        raise ValueError(f"dims must map each modality to a positive dimension, got {dims!r}")
    if not all(isinstance(m, str) and MODALITY_RE.fullmatch(m) for m in dims):
        raise ValueError(f"modality names must be lowercase letters, got {sorted(dims)!r}")
    factories = dict(factory) if isinstance(factory, dict) else {m: factory for m in dims}
    if set(factories) != set(dims):
        raise ValueError(f"factory modalities {sorted(factories)} differ from dims {sorted(dims)}")
    return factories


def new_manifest(*, model_id: str, model_spec: str, dims: dict[str, int], factories: dict[str, str],
                 memory_budget_bytes: int | None, latency_budget_ms: float | None) -> dict:
    """The manifest of a collection created now."""
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_id": model_id,
        "model_spec": model_spec,
        "dims": {m: int(d) for m, d in dims.items()},
        "factory": factories,
        "memory_budget_bytes": memory_budget_bytes,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if latency_budget_ms is not None:
        manifest["latency_budget_ms"] = float(latency_budget_ms)
    return manifest


def write_manifest(root: Path, manifest: dict) -> None:
    """Replace ``root``'s manifest atomically."""
    path = root / MANIFEST
    try:
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
    except OSError as exc:
        raise collection_os_error(exc, path, collection=path.parent, doing="write") from None


def read_manifest(root: Path) -> dict:
    """``root``'s manifest, checked (``collection.damaged`` when it is not one; ``collection.newer_format`` when a
    newer xsearch wrote it)."""
    path = root / MANIFEST

    def damaged(why: str) -> CollectionError:
        return CollectionError(f"manifest {path} is damaged ({why})", code="collection.damaged",
                               collection=str(root), path=str(path), reason=why)

    try:
        fd = open_regular(path, os.O_RDONLY, collection=root, doing="read")
    except FileNotFoundError:
        raise damaged("missing") from None
    try:
        with open(fd, "rb") as f:
            data = f.read(1 << 20)
    except OSError as exc:
        raise collection_os_error(exc, path, collection=root, doing="read") from None
    try:
        manifest = json.loads(data.decode("utf-8"))
        version = int(manifest["format_version"])
        manifest["model_id"]
        if not isinstance(manifest["dims"], dict) or not isinstance(manifest["factory"], dict):
            raise TypeError("dims and factory must be objects")
        for modality, dim in manifest["dims"].items():
            if not MODALITY_RE.fullmatch(modality) or int(dim) <= 0:
                raise ValueError(f"bad modality {modality!r}: {dim!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise damaged(type(exc).__name__ if data.strip() else "empty") from None
    if version > FORMAT_VERSION:
        raise CollectionError(
            f"collection {root} has format version {version}, newer than this xsearch supports "
            f"({FORMAT_VERSION})", code="collection.newer_format", collection=str(root), version=version)
    return manifest


def manifest_lost(root: Path) -> CollectionError:
    """The error for a collection whose catalog is there but whose manifest is not."""
    path = root / MANIFEST
    return CollectionError(f"collection {root} has lost its manifest: {path} is missing (the catalog is still there, "
                           "but not which model made its vectors)", code="collection.damaged",
                           collection=str(root), path=str(path), reason="manifest missing")
