"""Words read from a file for the keyword index: the text tracks of the modality registry, run after decoding.

Each :class:`~xsearch.media.modalities.TextTrack` of a file's modality that is on (always, or named in
``DecodeOptions.text_tracks`` when it is opt-in, as OCR is) reads its lines; they travel to the indexer in the
first segment's ``info["text_lines"]`` as dicts ``{track, text, offset, box, confidence}`` (box and confidence
only where the reader has them). A reader that fails costs its lines, never the file: the reason goes to
``info["note"]`` and the report.
"""

from __future__ import annotations

from xsearch.media._io import one_line
from xsearch.media.types import DecodeOptions, MediaFile, Segment

#: Where the lines ride to the indexer (the first segment's info).
TEXT_LINES = "text_lines"
#: Which text tracks were read for the file (even when they found nothing), so a re-run does not read them again.
TEXT_READ = "text_read"


def read_text_tracks(modality, file: MediaFile, segments: list[Segment], opts: DecodeOptions) -> None:
    """Run ``modality``'s text tracks that are on for ``opts`` and attach their lines to ``segments[0].info``."""
    lines: list[dict] = []
    done: list[str] = []
    for track in modality.text_tracks:
        if track.opt_in and track.name not in opts.text_tracks:
            continue
        try:
            found = track.read(file, segments, opts)
        except Exception as exc:  # noqa: BLE001 - the file is still indexed; its words are missing, said so
            note = f"{track.name} could not read it ({type(exc).__name__}: {one_line(exc)})"
            info = segments[0].info
            info["note"] = f"{info['note']}; {note}" if info.get("note") else note
            continue
        done.append(track.name)
        lines += [{**line, "track": track.name} for line in found if str(line.get("text", "")).strip()]
    if done:
        segments[0].info = {**segments[0].info, TEXT_LINES: lines, TEXT_READ: done}


def passage_lines(file: MediaFile, segments: list[Segment], opts: DecodeOptions) -> list[dict]:
    """A text file's passages, whole (the vectors' snippets are cut short), at their passage offsets."""
    return [{"text": s.data, "offset": float(s.offset)} for s in segments if isinstance(s.data, str)]
