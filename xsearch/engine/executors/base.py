"""Executors: where files are decoded and embedded during indexing. The indexer plans and writes on the driver;
an executor turns planned files into vectors and hands them back in batches, in any order of batches.

This module holds what every executor shares: the :class:`Executor` protocol the indexer calls, the batch types
it yields (:class:`EmbeddedFile` with one :class:`TrackItems` per track, and skipped files) and
:func:`embed_decoded`, the step from decoded segments to embedded files. The implementations
(``local``: DataLoader workers, ``ray``: Ray Data actors) are listed in ``xsearch.engine.executors``.

Every executor yields ``(embedded files, skipped files)`` per batch and passes the same contract
(tests/helpers/executors.py, run by tests/unit/test_executors.py and, against ``local``,
tests/unit/test_executor_ray.py): same vectors as ``local``, bad files skipped with a reason, never a lost run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from xsearch.engine.embed import embed_segments
from xsearch.media.types import DecodeOptions, MediaFile, Segment, Skipped

SNIPPET_CHARS = 200


@dataclass
class TrackItems:
    """The items of one track of a file (a modality's segments): offsets, vectors and text snippets."""

    offsets: list[float]
    vectors: np.ndarray
    snippets: list[str] | None = None


@dataclass
class EmbeddedFile:
    """A file turned into vectors: one TrackItems per track (``image``, ``audio``, ``text``; a video has two)."""

    file: MediaFile
    tracks: dict[str, TrackItems]
    info: dict = field(default_factory=dict)  # from its first segment: width/height, duration, truncated...

    @property
    def n_vectors(self) -> int:
        return sum(len(t.offsets) for t in self.tracks.values())


Batch = tuple[list[EmbeddedFile], list[Skipped]]


@runtime_checkable
class Executor(Protocol):
    """Decodes and embeds files for the indexer, which stays the one writer.

    ``run`` yields ``(embedded, skipped)`` per batch, in any order of batches; every file given comes back in one
    batch, embedded or skipped (a file with nothing in it to embed: in neither list). A file that fails to decode or
    embed is skipped with a one-line reason, never the run. An implementation is built as
    ``Class(workers=..., files_per_batch=..., **options)`` by ``xsearch.engine.executors.make_executor`` and
    raises UsageError (code ``executor.bad_option``) for an option it does not take.
    """

    name: str

    def run(self, encoder, files: list[MediaFile], opts: DecodeOptions) -> Iterator[Batch]: ...


def segment_track(segment: Segment) -> str:
    """The track a segment is embedded and indexed in (its file's modality unless the decoder set one)."""
    return getattr(segment, "track", None) or segment.modality


def embed_decoded(encoder, segments: Sequence[Segment], report_skip: Callable[[str, str], None]) -> list[EmbeddedFile]:
    """Embed decoded segments of several files, one encoder call per track; a failing file is isolated and
    reported through ``report_skip(path, reason)``."""
    by_file: dict[str, list[Segment]] = defaultdict(list)
    for seg in segments:
        by_file[str(seg.file.path)].append(seg)
    by_track: dict[str, list[tuple[str, list[Segment]]]] = defaultdict(list)
    for path, segs in by_file.items():
        groups: dict[str, list[Segment]] = defaultdict(list)
        for s in segs:
            groups[segment_track(s)].append(s)
        for track, group in groups.items():
            by_track[track].append((path, group))
    vectors: dict[tuple[str, str], np.ndarray] = {}
    failed: set[str] = set()
    for track, groups in by_track.items():
        flat = [s for _, group in groups for s in group]
        try:
            vecs = embed_segments(encoder, track, flat)
        except Exception:  # noqa: BLE001 - find the file(s) at fault below
            vecs = None
        if vecs is not None:
            start = 0
            for path, group in groups:
                vectors[(path, track)] = vecs[start:start + len(group)]
                start += len(group)
            continue
        for path, group in groups:
            try:
                vectors[(path, track)] = embed_segments(encoder, track, group)
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the others
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                report_skip(path, f"the model could not embed it: {first}")
                failed.add(path)
    out = []
    for path, segs in by_file.items():
        if path in failed:
            continue
        tracks: dict[str, TrackItems] = {}
        for s in segs:
            track = segment_track(s)
            if track not in tracks:
                group = [g for g in segs if segment_track(g) == track]
                snippets = [g.data[:SNIPPET_CHARS] for g in group] if track == "text" else None
                tracks[track] = TrackItems([g.offset for g in group], vectors[(path, track)], snippets)
        out.append(EmbeddedFile(segs[0].file, tracks, dict(segs[0].info)))
    return out
