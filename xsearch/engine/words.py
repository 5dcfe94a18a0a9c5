"""The indexer's side of the keyword index: which text tracks a collection reads, and storing each file's words.

A collection remembers its opt-in text tracks (``xsearch index --ocr`` turns ``ocr`` on, ``--no-ocr`` off and
forgets its lines); always-on tracks (a text file's passages) and file names need nothing. A file that a track it
should have been read by has not read (OCR turned on for a collection already indexed) is decoded again by the next
run, as a changed file is.
"""

from __future__ import annotations

from collections.abc import Sequence

from xsearch.core.errors import UsageError
from xsearch.core.types import IndexReport
from xsearch.media import modalities
from xsearch.media.words import TEXT_LINES, TEXT_READ

OCR = "ocr"


def words_on(writer) -> bool:
    """Whether the store keeps a keyword index (the local store does; Milvus where it has full-text search:
    docs/ocr.md)."""
    return bool(getattr(writer, "supports_keywords", False))


def resolve_text_tracks(writer, ocr: bool | None) -> tuple[str, ...]:
    """The opt-in text tracks to read this run: the collection's remembered ones, ``ocr`` turned on (True) or off
    (False, its lines forgotten); the choice is remembered. Raises when OCR is asked of a store without a keyword
    index, or without the ``ocr`` extra."""
    if not words_on(writer):
        if ocr:
            writer.set_text_setting("text_tracks", [OCR])  # the store's own error (store.keyword_unsupported)
        return ()
    remembered = list(writer.text_settings().get("text_tracks", []))
    if ocr is None:
        wanted = remembered
    elif ocr:
        wanted = list(dict.fromkeys([*remembered, OCR]))
    else:
        wanted = [t for t in remembered if t != OCR]
        writer.drop_text_track(OCR)
    if OCR in wanted:
        from xsearch.media.ocr import available

        if not available():
            raise UsageError("OCR needs the 'ocr' extra: pip install 'xsearch[ocr]' (rapidocr-onnxruntime)",
                             code="media.ocr_unavailable")
    if wanted != remembered:
        writer.set_text_setting("text_tracks", wanted)
    return tuple(wanted)


def unread_files(writer, text_tracks: Sequence[str]) -> frozenset[int]:
    """Files that a text track on for this collection has not read yet (decoded again this run)."""
    ids: set[int] = set()
    for track in (*text_tracks, *modalities.text_tracks(opt_in=False)):
        ids |= writer.unread_files(track, modalities.reading(track))
    return frozenset(ids)


def store_words(writer, file_id: int, info: dict, report: IndexReport) -> None:
    """Store the lines the decode worker read for one file (and its name), counting them in the report."""
    lines = info.get(TEXT_LINES, [])
    writer.replace_text(file_id, lines, info.get(TEXT_READ, []))
    for line in lines:
        report.lines_added[line["track"]] = report.lines_added.get(line["track"], 0) + 1
