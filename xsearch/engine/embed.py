"""The one path from media to vectors: decode options that match an encoder, segments → vectors, files → one vector.

Indexing, queries, evaluation and the bind trainer all go through here, so "a file is the mean of its segments"
(audio windows, text passages) exists once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xsearch.core.errors import MediaError
from xsearch.media.types import DecodeOptions, MediaFile, Segment

#: Segments embedded per encoder call when many files are embedded at once.
SEGMENTS_PER_CALL = 64


#: Audio windows overlap by half: a sound shifted in time still falls whole inside one window.
AUDIO_HOP_FRACTION = 0.5


def decode_options(encoder) -> DecodeOptions:
    """Decoding that matches what the encoder expects (sample rate, window length and hop, early image shrink)."""
    window = getattr(encoder, "audio_window_s", 0) or 2.0
    return DecodeOptions(sample_rate=getattr(encoder, "sample_rate", 0) or 16000, audio_window_s=window,
                         audio_hop_s=window * AUDIO_HOP_FRACTION,
                         image_short_side=getattr(encoder, "image_short_side", 0) or 0)


def embed_segments(encoder, modality: str, segments: Sequence[Segment], space: str | None = None) -> np.ndarray:
    """Vectors for decoded segments of one modality, in ``space`` (default: where that modality is indexed)."""
    space = space or encoder.index_space(modality)
    return encoder.embed(modality, [s.data for s in segments], space=space)


def segment_vectors(encoder, segments: Sequence[Segment], space: str) -> np.ndarray:
    """Vectors of segments that may belong to several tracks (a video's pictures and sound), all in ``space``,
    in the segments' order: one encoder call per track."""
    by_track: dict[str, list[int]] = {}
    for i, s in enumerate(segments):
        by_track.setdefault(s.track or s.modality, []).append(i)
    if len(by_track) == 1:
        track = next(iter(by_track))
        return embed_segments(encoder, track, segments, space)
    out: np.ndarray | None = None
    for track, rows in by_track.items():
        vecs = embed_segments(encoder, track, [segments[i] for i in rows], space)
        if out is None:
            out = np.zeros((len(segments), vecs.shape[1]), dtype=np.float32)
        out[rows] = vecs
    return out


def mean_vector(vectors: np.ndarray) -> np.ndarray:
    """The L2-normalised mean of a file's segment vectors: the file as one vector."""
    from xsearch.encoders.base import l2_normalize

    return l2_normalize(np.asarray(vectors, dtype=np.float32).mean(0, keepdims=True))[0]


def media_file(path: str | os.PathLike, modality: str) -> MediaFile:
    """A MediaFile for a path whose modality is already known (a manifest record, a checked query file)."""
    p = Path(path)
    st = p.stat()
    return MediaFile(p, modality, st.st_size, st.st_mtime_ns)


def decode_file(file: MediaFile, encoder) -> list[Segment]:
    """Segments of one file, decoded as the encoder expects; failures are a MediaError naming the file."""
    from xsearch.media import decode

    try:
        segments = decode(file, decode_options(encoder))
    except MediaError as e:
        raise MediaError(f"{file.path}: {e}", code=e.code, path=str(file.path)) from None
    except OSError as e:
        raise MediaError(f"{file.path}: cannot read ({e.strerror or e})", code="media.unreadable",
                         path=str(file.path)) from None
    if not segments:
        raise MediaError(f"{file.path}: nothing to embed in it", code="media.empty", path=str(file.path))
    return segments


def embed_files(encoder, files: Sequence[MediaFile], space: str | None = None,
                on_file: Callable[[], None] | None = None,
                on_error: Callable[[int, MediaError], None] | None = None) -> np.ndarray:
    """One unit vector per file (the mean of its segments), ``[len(files), dim]``, in ``space``.

    Files of one modality are expected; segments of several files share encoder calls. A file that cannot be
    decoded raises its MediaError, or, with ``on_error``, is passed to it (with its position in ``files``) and
    left out: the result then has one row per other file, in order.
    """
    if not files:
        raise ValueError("embed_files needs at least one file")
    modality = files[0].modality
    space = space or encoder.index_space(modality)
    out: list[np.ndarray] = []
    pending: list[list[Segment]] = []

    def flush() -> None:
        if not pending:
            return
        flat = [s for segs in pending for s in segs]
        vecs = segment_vectors(encoder, flat, space)
        start = 0
        for segs in pending:
            out.append(mean_vector(vecs[start:start + len(segs)]))
            start += len(segs)
            if on_file:
                on_file()
        pending.clear()

    queued = 0
    for i, f in enumerate(files):
        try:
            segs = decode_file(f, encoder)
        except MediaError as e:
            if on_error is None:
                raise
            on_error(i, e)
            continue
        pending.append(segs)
        queued += len(segs)
        if queued >= SEGMENTS_PER_CALL:
            flush()
            queued = 0
    flush()
    if not out:  # every file failed (only with on_error)
        return np.zeros((0, encoder.spaces[space]), dtype=np.float32)
    return np.stack(out)


def embed_file(encoder, file: MediaFile, space: str | None = None) -> np.ndarray:
    """One unit vector for one file (the mean of its segments)."""
    return embed_files(encoder, [file], space)[0]
