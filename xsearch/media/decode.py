"""Turn one discovered file into the segments an encoder embeds."""

from __future__ import annotations

from xsearch.errors import MediaError
from xsearch.media._io import one_line, os_error_reason
from xsearch.media.types import AUDIO, IMAGE, TEXT, DecodeOptions, MediaFile, Segment

_DEFAULTS = DecodeOptions()


def decode(file: MediaFile, opts: DecodeOptions = _DEFAULTS) -> list[Segment]:
    """Decode ``file`` by its modality into one or more Segments.

    image → one Segment (RGB PIL image, info {width, height});
    audio → one Segment per window (offset = window start in s, info {duration, sample_rate,
    source_sample_rate, channels, truncated}; ``sample_rate`` is the rate of ``data``);
    text → one Segment per passage (offset = passage index, info {encoding, truncated}).
    Every failure, including unexpected library errors, is a MediaError with a one-line reason.
    """
    try:
        if file.modality == IMAGE:
            return _decode_image(file, opts)
        if file.modality == AUDIO:
            return _decode_audio(file, opts)
        if file.modality == TEXT:
            return _decode_text(file, opts)
    except MediaError:
        raise
    except OSError as exc:
        raise MediaError(os_error_reason(exc)) from exc
    except Exception as exc:
        raise MediaError(f"decoder failed: {type(exc).__name__}: {one_line(exc)}") from exc
    raise MediaError(f"unsupported modality {file.modality!r}")


def _decode_image(file: MediaFile, opts: DecodeOptions) -> list[Segment]:
    from xsearch.media.image import load_image, shrink_to_short_side

    image = load_image(file.path, opts.max_image_pixels)
    info = {"width": image.width, "height": image.height}
    return [Segment(file=file, data=shrink_to_short_side(image, opts.image_short_side), offset=0.0, info=info)]


def _decode_audio(file: MediaFile, opts: DecodeOptions) -> list[Segment]:
    from xsearch.media.audio import load_audio, split_windows

    wave, source = load_audio(file.path, opts.sample_rate, opts.max_audio_s)
    info = {
        "duration": source["duration"],
        "sample_rate": opts.sample_rate,
        "source_sample_rate": source["sample_rate"],
        "channels": source["channels"],
        "truncated": source["truncated"],
    }
    windows = split_windows(wave, opts.sample_rate, opts.audio_window_s)
    if not windows:
        raise MediaError("audio has no samples after resampling")
    return [Segment(file=file, data=samples, offset=start, info=dict(info)) for start, samples in windows]


def _decode_text(file: MediaFile, opts: DecodeOptions) -> list[Segment]:
    from xsearch.media.text import read_text, split_passages

    text, source = read_text(file.path, opts.max_text_chars)
    passages = split_passages(text, opts.text_passage_chars)
    if not passages:
        raise MediaError("text has no content (only whitespace)")
    return [
        Segment(file=file, data=passage, offset=float(index), info=dict(source))
        for index, passage in enumerate(passages)
    ]
