"""Byte-level format checks on a file's first bytes (magic numbers), independent of its extension.

Pure functions with no knowledge of the modality registry: :mod:`xsearch.media.modalities` hands them to the
built-in modalities as their content sniffers, and :mod:`xsearch.media.sniff` asks the registry.
"""

from __future__ import annotations

HEAD_BYTES = 8192  # enough for every signature below and for a NUL-byte test on text

_TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff", b"\xff\xfe", b"\xfe\xff")
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})

# Common formats that are not media we decode, named so a mismatch reason says what the file really is.
_OTHER_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)


def is_image(head: bytes) -> bool:
    """PNG, JPEG, GIF, TIFF (incl. BigTIFF), BMP or WebP."""
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")):
        return True
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return True
    if head.startswith(b"BM") and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return True
    return head.startswith(b"RIFF") and len(head) >= 12 and head[8:12] == b"WEBP"


def is_audio(head: bytes) -> bool:
    """WAV (RIFF, RF64, BW64), AIFF/AIFC, FLAC, Ogg, or MP3 (ID3 tag or a Layer III frame)."""
    if head.startswith(b"RIFF") and len(head) >= 12 and head[8:12] == b"WAVE":
        return True
    if head.startswith((b"RF64", b"BW64")) and head[8:12] == b"WAVE":
        return True
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return True
    if head.startswith((b"fLaC", b"OggS")):
        return True
    if head.startswith(b"ID3") and len(head) >= 5 and head[3] in (2, 3, 4) and head[4] != 0xFF:
        return True
    return _is_mpeg_layer3_frame(head)


def _is_mpeg_layer3_frame(head: bytes) -> bool:
    # 11-bit frame sync, a valid version, Layer III, a valid bitrate and sample-rate index.
    # Requiring Layer III keeps a UTF-16 BOM (FF FE) from passing as an MPEG Layer I frame.
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate_index = head[2] >> 4
    rate_index = (head[2] >> 2) & 0b11
    return version != 0b01 and layer == 0b01 and bitrate_index != 0b1111 and rate_index != 0b11


def has_text_bom(head: bytes) -> bool:
    """True when ``head`` starts with a UTF-8/16/32 byte-order mark."""
    return head.startswith(_TEXT_BOMS)


def text_content_problem(head: bytes) -> str | None:
    """Why bytes with a text extension are not text (NULs without a UTF-16/32 byte-order mark), or None."""
    if b"\x00" in head and not has_text_bom(head):
        return "binary content, not text"
    return None


def describe_content(head: bytes) -> str:
    """A few words saying what unrecognised content looks like, for a mismatch reason."""
    for signature, name in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return name
    if head[4:8] == b"ftyp":
        return "MP4/QuickTime (not supported)"
    if head.startswith(b"RIFF"):
        return f"RIFF/{head[8:12].decode('latin-1').strip() or '?'} (not supported)"
    if has_text_bom(head) or looks_like_text(head):
        return "text"
    return "unrecognised binary data"


def looks_like_text(head: bytes) -> bool:
    """True for bytes with no NULs that decode as UTF-8 or are mostly printable single-byte text."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            return True  # a multibyte character cut by the read limit
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return control <= len(head) // 100


def is_video(head: bytes) -> bool:
    """MP4 / MOV (an ISO base-media ``ftyp`` box or a QuickTime atom first), Matroska / WebM (EBML) or AVI."""
    if len(head) >= 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return True
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return True
    return head.startswith(b"RIFF") and len(head) >= 12 and head[8:12] == b"AVI "
