"""OCR: the words in pictures, read by PP-OCRv4 (detection + recognition, Chinese and English) on ONNX Runtime.

The model comes inside the ``rapidocr-onnxruntime`` wheel (the ``ocr`` extra, about 15 MB), so it runs offline and
nothing is downloaded. It is built once per process (a decode worker) on first use. What it gets wrong, and what
the keyword index does about it (index/local/keywords.py): spaces between words are often dropped
("INVOICE2031PAID"), ``O`` and ``0`` swap (both sides are folded to ``0``), so words are matched as character
trigrams, not whole tokens.

A picture is read at its own size, its longer side capped at :data:`MAX_SIDE` pixels (the decoder's copy may have
been shrunk for the embedding model, too small to read); a video is read on one frame per picture window.
"""

from __future__ import annotations

import functools
import threading

from xsearch.core.errors import MediaError
from xsearch.media.types import DecodeOptions, MediaFile, Segment

#: Pictures are read with their longer side at most this many pixels (small print stays legible, time bounded).
MAX_SIDE = 1600
#: Lines read with less confidence than this are dropped (mostly texture read as letters).
MIN_CONFIDENCE = 0.5

_lock = threading.Lock()


def available() -> bool:
    """Whether the OCR model can be loaded (the ``ocr`` extra is installed)."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _engine():
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise MediaError("OCR needs the 'ocr' extra (pip install 'xsearch[ocr]')",
                         code="media.ocr_unavailable") from None
    import logging

    logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # it logs every empty picture as a warning
    return RapidOCR()


def read_lines(image) -> list[dict]:
    """The text lines in a PIL image: ``[{"text", "box": [[x, y] × 4], "confidence"}]``, top to bottom."""
    import numpy as np

    image = image.convert("RGB")
    scale = 1.0
    if max(image.size) > MAX_SIDE:
        scale = max(image.size) / MAX_SIDE
        image = image.resize((round(image.width / scale), round(image.height / scale)))
    engine = _engine()
    with _lock:  # one call at a time per process (ONNX Runtime sessions are shared)
        result, _ = engine(np.asarray(image)[:, :, ::-1])  # it expects OpenCV's BGR order
    lines = []
    for box, text, confidence in result or ():
        if float(confidence) < MIN_CONFIDENCE or not str(text).strip():
            continue
        lines.append({"text": str(text), "confidence": round(float(confidence), 4),
                      "box": [[round(float(x) * scale, 1), round(float(y) * scale, 1)] for x, y in box]})
    return lines


def read_image(file: MediaFile, segments: list[Segment], opts: DecodeOptions) -> list[dict]:
    """The image modality's ``ocr`` text track: the picture read again at full size (same bomb guard)."""
    from xsearch.media.image import load_image

    image = load_image(file.path, opts.max_image_pixels)
    return read_lines(image)


def read_video(file: MediaFile, segments: list[Segment], opts: DecodeOptions) -> list[dict]:
    """The video modality's ``ocr`` text track: the middle frame of each picture window, each line at its window's
    start (s); the same words in consecutive windows are kept once, at their first window."""
    lines, seen = [], set()
    for s in segments:
        if s.track != "video" or not s.data:
            continue
        frame = s.data[len(s.data) // 2]
        for line in read_lines(frame):
            if line["text"] in seen:
                continue
            seen.add(line["text"])
            lines.append({**line, "offset": float(s.offset)})
    return lines
