"""Executors: where files are decoded and embedded during indexing. The indexer plans and writes on the driver;
an executor turns planned files into vectors and hands them back in batches, in any order of batches.

- ``local`` (default): DataLoader worker processes decode a few batches ahead; the model runs in this process.
- ``ray``: Ray Data actors, each building its own encoder from the model spec (xsearch/executors_ray.py).

Every executor yields ``(embedded files, skipped files)`` per batch and passes the same contract tests
(tests/test_executors.py): same vectors as ``local``, bad files skipped with a reason, never a lost run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from xsearch.core.errors import UsageError
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


class LocalExecutor:
    """Decode in DataLoader worker processes (a few batches ahead), embed in this process."""

    name = "local"

    def __init__(self, workers: int = 2, files_per_batch: int = 32, worker_init: Callable[[], None] | None = None):
        self.workers = workers
        self.files_per_batch = files_per_batch
        self.worker_init = worker_init

    def run(self, encoder, files: list[MediaFile], opts: DecodeOptions) -> Iterator[Batch]:
        if not files:
            return
        from xsearch.media import iter_decoded

        for segments, bad in iter_decoded(files, opts, files_per_batch=self.files_per_batch, workers=self.workers,
                                          worker_init=self.worker_init):
            skipped = list(bad)
            embedded = embed_decoded(encoder, segments,
                                     lambda path, reason: skipped.append(Skipped(_path(path), reason)))
            yield embedded, skipped


def _path(text: str):
    from pathlib import Path

    return Path(text)


EXECUTORS = ("local", "ray")


def make_executor(name: str = "local", *, workers: int = 2, files_per_batch: int = 32,
                  worker_init: Callable[[], None] | None = None, **options):
    """The executor called ``name`` ("local" or "ray"; ``options`` go to it, e.g. ``address`` for Ray)."""
    if name == "local":
        if options:
            raise UsageError(f"the ray executor's options ({', '.join(sorted(options))}) do not apply to the local "
                             "executor",
                             code="executor.bad_option", executor=name, options=", ".join(sorted(options)))
        return LocalExecutor(workers, files_per_batch, worker_init)
    if name == "ray":
        try:
            from xsearch.engine.executors.ray import RayExecutor
        except ImportError as e:
            raise UsageError(f"the ray executor needs the 'ray' extra ({e})", code="executor.unavailable",
                             executor=name) from None
        try:
            return RayExecutor(files_per_batch=files_per_batch, **options)
        except TypeError as e:  # an option the ray executor does not know
            raise UsageError(f"bad option for the ray executor: {e}", code="executor.bad_option",
                             executor=name, options=", ".join(sorted(options))) from None
    raise UsageError(f"unknown executor {name!r}; choose {', '.join(EXECUTORS)}", code="executor.unknown",
                     executor=name, choices=", ".join(EXECUTORS))
