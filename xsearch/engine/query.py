"""Queries: text strings and media files turned into vectors in the space of the index they search."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xsearch.core.errors import MediaError, UsageError
from xsearch.core.types import Query

__all__ = ["Query", "embed_query", "make_queries", "parse_weights", "check_query_file"]


def make_queries(texts: Sequence[str] = (), files: dict[str, Sequence] | None = None) -> list[Query]:
    """Queries in a stable order: texts first, then each modality's files in the order given
    (``files={"image": [...], "audio": [...]}``). Weights are given in the same order."""
    queries = [Query("text", str(t)) for t in texts]
    for modality, paths in (files or {}).items():
        queries += [Query(modality, str(p)) for p in paths]
    return queries


def parse_weights(text: str | None, n: int) -> list[float]:
    """``"0.7,0.3"`` → floats, one per query (default: all 1). Mismatch, non-numbers, NaN/inf → UsageError."""
    if not text:
        return [1.0] * n
    try:
        weights = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"weights {text!r} are not comma-separated numbers such as 0.7,0.3",
                         code="usage.bad_weights", text=text) from None
    return check_weights(weights, n, text)


def check_weights(weights: Sequence[float], n: int, text: str | None = None) -> list[float]:
    """One finite weight per query, not all zero."""
    try:
        weights = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise UsageError(f"weights {weights!r} are not numbers", code="usage.bad_weights",
                         text=str(text or weights)) from None
    if len(weights) != n:
        raise UsageError(f"{len(weights)} weight(s) for {n} queries", code="usage.weights_count",
                         given=len(weights), queries=n)
    if not all(math.isfinite(w) and abs(w) <= 1e6 for w in weights):
        raise UsageError(f"weights must be finite numbers of at most 1e6 in size, not {weights}",
                         code="usage.bad_weights", text=str(text or ",".join(map(str, weights))))
    if all(w == 0 for w in weights):
        raise UsageError("at least one weight must be non-zero", code="usage.zero_weights")
    return weights


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
