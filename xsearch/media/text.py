"""Read text files in any common encoding, cut them into passages, and normalise queries."""

from __future__ import annotations

import codecs
import functools
import os
import re
import unicodedata

from xsearch.core.errors import MediaError
from xsearch.media._io import open_binary
from xsearch.media.types import DecodeOptions, MediaFile, Segment

# Byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BYTES_PER_CHAR = 4  # the most any supported encoding spends on one character
_WESTERN = "cp1252"

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\f\v]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])\s*")


def read_text(path: str | os.PathLike, max_chars: int = 1_000_000) -> tuple[str, dict]:
    """Read at most ``max_chars`` characters of a text file, detecting its encoding.

    UTF-8 (and any byte-order-marked UTF-8/16/32) first; otherwise charset-normalizer decides.
    Line endings become ``\\n``. Returns ``(text, {"encoding": name, "truncated": bool})``;
    binary or undecodable content raises MediaError.
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    limit = max_chars * _BYTES_PER_CHAR + _BYTES_PER_CHAR
    with open_binary(path) as handle:
        try:
            raw = handle.read(limit + 1)
        except OSError as exc:
            raise MediaError(f"cannot read: {exc.strerror or exc}") from exc
    cut = len(raw) > limit
    raw = raw[:limit]
    text, encoding = _decode(raw, final=not cut)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    truncated = cut or len(text) > max_chars
    return text[:max_chars], {"encoding": encoding, "truncated": truncated}


def _decode(raw: bytes, *, final: bool) -> tuple[str, str]:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return _decode_as(raw, encoding, final=final), encoding
    if b"\x00" in raw:
        raise MediaError("binary content, not text")
    try:
        return _decode_as(raw, "utf-8", final=final), "utf-8"
    except UnicodeDecodeError:
        pass
    encoding = _detect_encoding(raw)
    try:
        return _decode_as(raw, encoding, final=final), encoding
    except (UnicodeDecodeError, LookupError) as exc:
        raise MediaError(f"undecodable text: detected {encoding} but it does not decode") from exc


def _decode_as(raw: bytes, encoding: str, *, final: bool) -> str:
    # An incremental decoder leaves a multibyte character cut by the read limit out instead of failing.
    return codecs.getincrementaldecoder(encoding)(errors="strict").decode(raw, final=final)


def _detect_encoding(raw: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw))
    if not matches:
        # charset-normalizer rejects short, punctuation-heavy Western text ("«Déjà vu» — €5") as too
        # messy; accept Windows-1252 when it decodes to text without stray control characters.
        if _decodes_to_clean_text(raw, _WESTERN):
            return _WESTERN
        raise MediaError("undecodable text: no known encoding fits its bytes")
    best = matches[0]
    # On short texts many single-byte code pages tie with the best score; charset-normalizer then
    # picks one arbitrarily (often cp1250 or cp1006 for French or German). Among equally good
    # candidates, prefer Windows-1252, the most common legacy encoding (a superset of Latin-1's text).
    for match in matches:
        if (match.chaos, match.coherence) != (best.chaos, best.coherence):
            continue
        if _WESTERN in match.could_be_from_charset:
            return _WESTERN
    return best.encoding


def _decodes_to_clean_text(raw: bytes, encoding: str) -> bool:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return not any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f" for ch in text)


def split_passages(text: str, max_chars: int = 1000) -> list[str]:
    """Split ``text`` into passages of at most ``max_chars`` characters, whitespace collapsed.

    Each paragraph (blank-line separated) is one passage when it fits; a longer paragraph is packed
    sentence by sentence; a longer sentence is cut at a space (or hard-cut). No passage is empty.
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    passages: list[str] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            passages.append(paragraph)
            continue
        passages.extend(_pack_sentences(_SENTENCE_END.split(paragraph), max_chars))
    return passages


def _pack_sentences(sentences: list[str], max_chars: int) -> list[str]:
    packed: list[str] = []
    current = ""
    for sentence in sentences:
        for piece in _cut(sentence, max_chars):
            if current and len(current) + 1 + len(piece) <= max_chars:
                current = f"{current} {piece}"
            else:
                if current:
                    packed.append(current)
                current = piece
    if current:
        packed.append(current)
    return packed


def _cut(sentence: str, max_chars: int) -> list[str]:
    """Cut an over-long sentence at the last space before the limit, or hard at the limit."""
    pieces = []
    while len(sentence) > max_chars:
        space = sentence.rfind(" ", 0, max_chars + 1)
        end = space if space > max_chars // 2 else max_chars
        pieces.append(sentence[:end].rstrip())
        sentence = sentence[end:].lstrip()
    if sentence:
        pieces.append(sentence)
    return pieces


def normalize_query(text: str) -> str:
    """NFKC-normalise a query, read control characters (C0, C1, DEL) as spaces and collapse runs of whitespace to
    one space; a word of nothing but invisible characters (see :func:`invisible`) is dropped, so a query of only
    such characters is "" (the empty query)."""
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in unicodedata.normalize("NFKC", text))
    return " ".join(word for word in text.split() if not all(map(invisible, word)))


def invisible(ch: str) -> bool:
    """Whether a character shows nothing, by its Unicode properties: other (C*: controls, format characters such
    as zero-width spaces, unassigned) and separators (Z*), White_Space, Default_Ignorable_Code_Point (fillers
    such as U+3164 HANGUL FILLER, variation selectors) and the blanks by name (U+2800 BRAILLE PATTERN BLANK)."""
    return bool(_invisible_pattern().match(ch)) or unicodedata.name(ch, "").endswith(" BLANK")


@functools.lru_cache(maxsize=1)
def _invisible_pattern():
    import regex  # Python's unicodedata has no Default_Ignorable_Code_Point

    return regex.compile(r"[\p{C}\p{Z}\p{White_Space}\p{Default_Ignorable_Code_Point}]")


def decode_text(file: MediaFile, opts: DecodeOptions) -> list[Segment]:
    """The text modality's decoder: one Segment per passage (offset = passage index), info {encoding, truncated}."""
    text, source = read_text(file.path, opts.max_text_chars)
    passages = split_passages(text, opts.text_passage_chars)
    if not passages:
        raise MediaError("text has no content (only whitespace)")
    return [
        Segment(file=file, data=passage, offset=float(index), info=dict(source))
        for index, passage in enumerate(passages)
    ]
