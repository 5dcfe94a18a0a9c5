"""Queries: text strings and media files turned into vectors in the space of the index they search."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xsearch.core.errors import MediaError, UsageError
from xsearch.core.types import Query

__all__ = ["embed_query", "check_query_file"]


def embed_query(encoder, query: Query, space: str) -> np.ndarray:
    """A unit vector for ``query`` in ``space``: a text, or a file's segments averaged (xsearch.engine.embed)."""
    from xsearch.encoders.base import tracks
    from xsearch.engine.embed import embed_file

    if query.modality not in tracks(encoder):
        raise UsageError(f"model {encoder.spec} cannot embed {query.modality} queries (it has "
                         f"{', '.join(encoder.modalities)})", code="model.modality_unsupported",
                         modality=query.modality, model=encoder.spec)
    if query.modality == "text":
        from xsearch.media.text import normalize_query

        text = normalize_query(query.value)
        if not text:
            raise UsageError("empty text query; say what to look for", code="query.empty")
        return encoder.embed("text", [text], space=space)[0]
    file = check_query_file(Path(query.value).expanduser(), query.modality)
    try:
        return embed_file(encoder, file, space)
    except MediaError as e:
        raise UsageError(str(e), code="query.bad_file", path=str(file.path)) from None


def check_query_file(path: Path, modality: str):
    """The MediaFile of a query file, after checking it exists and really is of ``modality``."""
    from xsearch.media import discover
    from xsearch.media.types import Skipped

    if not path.exists():
        raise UsageError(f"query file not found: {path}", code="query.file_missing", path=str(path))
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give one {modality} file", code="query.is_folder", path=str(path))
    try:
        found = next(iter(discover(path)), None)
    except MediaError as e:
        raise UsageError(f"{path}: {e}", code="query.bad_file", path=str(path)) from None
    if found is None:
        raise UsageError(f"{path} is not a media file xsearch can read", code="query.bad_file", path=str(path))
    if isinstance(found, Skipped):
        raise UsageError(f"{path}: {found.reason}", code="query.bad_file", path=str(path))
    if found.modality != modality:
        raise UsageError(f"{path} is {found.modality}, not {modality}", code="query.wrong_modality",
                         path=str(path), actual=found.modality, expected=modality)
    return found
