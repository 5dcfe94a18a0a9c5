"""Decode many files ahead of the consumer in DataLoader worker processes, reporting bad files."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence

from xsearch.core.errors import MediaError
from xsearch.media._io import one_line, os_error_reason
from xsearch.media.decode import decode
from xsearch.media.types import DecodeOptions, MediaFile, Segment, Skipped

Batch = tuple[list[Segment], list[Skipped]]

CRASHED = "decoder crashed (its worker process died)"
_DEFAULTS = DecodeOptions()


def iter_decoded(
    files: Iterable[MediaFile],
    opts: DecodeOptions = _DEFAULTS,
    *,
    files_per_batch: int = 16,
    workers: int = 2,
    worker_init: Callable[[], None] | None = None,
) -> Iterator[Batch]:
    """Yield ``(segments, skipped)`` for consecutive groups of ``files_per_batch`` files, in order.

    Decoding runs in ``workers`` processes (0 = in this process), a couple of batches ahead of the
    consumer. A file that fails to decode becomes ``Skipped(path, reason)``; a worker process that
    dies (e.g. a decoder crash) costs only the files it was decoding, and iteration goes on.

    Workers die with the process that iterates (Linux: PR_SET_PDEATHSIG), so a killed parent leaves no
    decoder behind holding what it inherited (e.g. a collection's lock). ``worker_init`` runs first thing in
    each worker process (e.g. ``close_inherited_lock_fds``); it must be picklable where workers are spawned.
    """
    if files_per_batch < 1:
        raise ValueError("files_per_batch must be at least 1")
    if workers < 0:
        raise ValueError("workers must be 0 or more")
    return _iterate(list(files), opts, files_per_batch, workers, worker_init)


def decode_files(files: Sequence[MediaFile], opts: DecodeOptions) -> Batch:
    """Decode each file, turning every failure into a Skipped entry (the DataLoader collate_fn)."""
    segments: list[Segment] = []
    skipped: list[Skipped] = []
    for file in files:
        try:
            segments.extend(decode(file, opts))
        except MediaError as exc:
            skipped.append(Skipped(file.path, str(exc)))
        except OSError as exc:
            skipped.append(Skipped(file.path, os_error_reason(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            skipped.append(Skipped(file.path, f"decoder failed: {type(exc).__name__}: {one_line(exc)}"))
    return segments, skipped


class _FileList:
    """A map-style dataset over a list of MediaFile."""

    def __init__(self, files: Sequence[MediaFile]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> MediaFile:
        return self.files[index]


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the thread that forked it dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the DataLoader's own watchdog still notices, later
        pass


def _init_worker(worker_id: int, parent_pid: int, extra: Callable[[], None] | None) -> None:
    """DataLoader worker_init_fn: die with the parent, bail out if it is already gone, then ``extra``."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    if extra is not None:
        extra()


def _loader(
    files: Sequence[MediaFile], opts: DecodeOptions, batch_size: int, workers: int, prefetch: int = 2,
    worker_init: Callable[[], None] | None = None,
):
    from torch.utils.data import DataLoader

    return DataLoader(
        _FileList(files),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=functools.partial(decode_files, opts=opts),
        prefetch_factor=prefetch if workers else None,
        worker_init_fn=functools.partial(_init_worker, parent_pid=os.getpid(), extra=worker_init) if workers
        else None,
    )


def _is_worker_death(exc: BaseException) -> bool:
    # DataLoader reports a dead worker as a plain RuntimeError ("DataLoader worker (pid ...) ...").
    return isinstance(exc, RuntimeError) and "DataLoader worker" in str(exc)


def _iterate(files: list[MediaFile], opts: DecodeOptions, batch_size: int, workers: int,
             worker_init: Callable[[], None] | None = None) -> Iterator[Batch]:
    start = 0  # index of the first file not yet delivered
    while start < len(files):
        try:
            for batch in _loader(files[start:], opts, batch_size, workers, worker_init=worker_init):
                start += batch_size
                yield batch
            return
        except RuntimeError as exc:
            if workers == 0 or not _is_worker_death(exc):
                raise
        # Any prefetched batch may have killed the worker; retry the next undelivered one file by file.
        head = files[start : start + batch_size]
        start += batch_size
        yield _decode_one_by_one(head, opts, worker_init)


def _decode_one_by_one(files: list[MediaFile], opts: DecodeOptions,
                       worker_init: Callable[[], None] | None = None) -> Batch:
    """Decode in a single worker with one file in flight, so a crash is pinned on its file."""
    segments: list[Segment] = []
    skipped: list[Skipped] = []
    done = 0
    while done < len(files):
        try:
            for file_segments, file_skipped in _loader(files[done:], opts, 1, 1, prefetch=1, worker_init=worker_init):
                segments.extend(file_segments)
                skipped.extend(file_skipped)
                done += 1
        except RuntimeError as exc:
            if not _is_worker_death(exc):
                raise
            skipped.append(Skipped(files[done].path, CRASHED))
            done += 1
    return segments, skipped
