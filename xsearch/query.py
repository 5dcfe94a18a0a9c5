"""Queries: text strings and media files turned into vectors in the space of the index they search."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xsearch.encoders.base import l2_normalize
from xsearch.errors import MediaError, UsageError

FLAG = {"image": "--image", "audio": "--audio", "text": "a text argument"}


@dataclass(frozen=True)
class Query:
    """One query: a text string, or the path of an image / audio / text file."""

    modality: str
    value: str

    @property
    def label(self) -> str:
        return f'"{self.value}"' if self.modality == "text" else f"{self.modality}:{Path(self.value).name}"


def embed_query(encoder, query: Query, space: str) -> np.ndarray:
    """A unit vector for ``query`` in ``space``. Audio files average their windows; errors are one sentence."""
    if query.modality not in encoder.modalities:
        raise UsageError(f"model {encoder.spec} cannot embed {query.modality} queries (it has "
                         f"{', '.join(encoder.modalities)}).")
    if query.modality == "text":
        from xsearch.media.text import normalize_query

        text = normalize_query(query.value)
        if not text:
            raise UsageError("empty text query; say what to look for.")
        return encoder.embed_text([text], space=space)[0]
    segments = decode_query_file(Path(query.value).expanduser(), query.modality, encoder)
    data = [s.data for s in segments]
    if query.modality == "image":
        vecs = encoder.embed_images(data, space=space)
    else:
        vecs = encoder.embed_audio(data, space=space)
    return l2_normalize(vecs.mean(0, keepdims=True))[0]


def decode_query_file(path: Path, modality: str, encoder):
    """Decode a query file after checking it exists and really is of ``modality``."""
    from xsearch.indexer import decode_options
    from xsearch.media import decode, discover
    from xsearch.media.types import Skipped

    if not path.exists():
        raise UsageError(f"query file not found: {path}")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give one {modality} file.")
    try:
        found = next(iter(discover(path)), None)
    except MediaError as e:
        raise UsageError(f"{path}: {e}") from None
    if found is None:
        raise UsageError(f"{path} is not an image, audio or text file xsearch can read.")
    if isinstance(found, Skipped):
        raise UsageError(f"{path}: {found.reason}")
    if found.modality != modality:
        raise UsageError(f"{path} is {found.modality}, not {modality}; pass it with {FLAG[found.modality]}.")
    try:
        segments = decode(found, decode_options(encoder))
    except MediaError as e:
        raise UsageError(f"{path}: {e}") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror or e})") from None
    if not segments:
        raise UsageError(f"{path}: nothing to embed in it.")
    return segments
