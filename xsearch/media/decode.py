"""Turn one discovered file into the segments an encoder embeds, by its modality's registered decoder."""

from __future__ import annotations

from xsearch.core.errors import MediaError
from xsearch.media import modalities
from xsearch.media._io import one_line, os_error_reason
from xsearch.media.types import DecodeOptions, MediaFile, Segment

_DEFAULTS = DecodeOptions()


def decode(file: MediaFile, opts: DecodeOptions = _DEFAULTS) -> list[Segment]:
    """Decode ``file`` by its modality (see :mod:`xsearch.media.modalities`) into one or more Segments.

    Built in: image → one Segment (RGB PIL image, info {width, height});
    audio → one Segment per window (offset = window start in s, info {duration, sample_rate,
    source_sample_rate, channels, truncated}; ``sample_rate`` is the rate of ``data``);
    text → one Segment per passage (offset = passage index, info {encoding, truncated}).
    Every failure, including unexpected library errors, is a MediaError with a one-line reason.
    """
    if file.modality not in modalities.names():
        raise MediaError(f"unsupported modality {file.modality!r}", code="media.unsupported_modality",
                         modality=str(file.modality))
    modality = modalities.get(file.modality)
    try:
        segments = modality.decode(file, opts)
    except MediaError:
        raise
    except OSError as exc:
        raise MediaError(os_error_reason(exc)) from exc
    except Exception as exc:
        raise MediaError(f"decoder failed: {type(exc).__name__}: {one_line(exc)}") from exc
    if modality.text_tracks and segments:  # words for the keyword index (OCR, passages), in this worker too
        from xsearch.media.words import read_text_tracks

        read_text_tracks(modality, file, segments, opts)
    return segments
