"""The ``local`` executor (the default): DataLoader worker processes decode a few batches ahead; the model runs in
this process, which stays the one writer."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

from xsearch.core.errors import UsageError
from xsearch.engine.executors.base import Batch, embed_decoded
from xsearch.media.types import DecodeOptions, MediaFile, Skipped


class LocalExecutor:
    """Decode in DataLoader worker processes (a few batches ahead), embed in this process.

    Each worker first closes its inherited copies of the collection's writer-lock descriptors (so a worker that
    outlives a killed parent can never hold the lock), then runs ``worker_init`` when given.
    """

    name = "local"

    def __init__(self, workers: int = 2, files_per_batch: int = 32, worker_init: Callable[[], None] | None = None,
                 **options):
        if options:
            raise UsageError(f"the ray executor's options ({', '.join(sorted(options))}) do not apply to the local "
                             "executor",
                             code="executor.bad_option", executor=self.name, options=", ".join(sorted(options)))
        self.workers = workers
        self.files_per_batch = files_per_batch
        self.worker_init = worker_init

    def run(self, encoder, files: list[MediaFile], opts: DecodeOptions) -> Iterator[Batch]:
        if not files:
            return
        from xsearch.media import iter_decoded

        start = functools.partial(start_worker, self.worker_init)  # picklable where workers are spawned
        for segments, bad in iter_decoded(files, opts, files_per_batch=self.files_per_batch, workers=self.workers,
                                          worker_init=start):
            skipped = list(bad)
            embedded = embed_decoded(encoder, segments,
                                     lambda path, reason: skipped.append(Skipped(Path(path), reason)))
            yield embedded, skipped


def start_worker(extra: Callable[[], None] | None = None) -> None:
    """What a decode worker runs first: close its copies of writer-lock descriptors, then ``extra``."""
    from xsearch.index.locks import close_inherited_lock_fds

    close_inherited_lock_fds()
    if extra is not None:
        extra()
