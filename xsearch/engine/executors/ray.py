"""The ``ray`` executor: decoding and embedding on a Ray cluster, the indexer's driver staying the one writer.

Pipeline (Ray Data, streaming)::

    files (driver) ─ from_arrow, one block per batch of files
      → map_batches(_decode_batch)          Ray tasks, CPU: decode, segments as plain numpy / str / bytes
      → map_batches(_Embedder)              actor pool: each actor builds its encoder from the model *spec*
                                            (``load_encoder(spec, device)``), on a GPU when the cluster has them
      → iter_batches (driver)               vectors back in batches → EmbeddedFile / Skipped → the writer

What crosses a process boundary is plain data: a file's decoded segments as ``(track, offset, info, data)`` with
images as uint8 arrays (PIL is rebuilt in the actor, bit for bit), and an embedded file as ``{track: (offsets,
vectors, snippets)}`` plus its info. The driver builds ``EmbeddedFile`` / ``Skipped`` from that, so the indexer,
its report and its progress bar are the same as with the local executor, and so are the vectors.

Under Ray Client (``ray://``) Ray Data cannot run in the driver (ray-project/ray#42739), so the same pipeline runs
in a coordinator actor on the cluster and the driver pulls its output batches one by one.

The model spec: the actors need the writer's concrete spec; it is read from the encoder (``encoder.spec``) only
when there is work, when the indexer has loaded the model on the driver anyway (its decode options and model
check), or given as ``spec=``. Every returned batch carries the actors' model id, checked against the driver's.

Failures: a file that fails to decode or embed is skipped with its reason, as locally. A worker process that
dies (a decoder crash, an out-of-memory kill) is retried ``max_retries`` times, then its batch is dropped
instead of failing the run (``DataContext.max_errored_blocks``); the files of dropped batches are tried again
one file per batch, and those that still bring a worker down are skipped with a reason.

A node that dies mid-run (its raylet killed) can leave Ray Data waiting forever in ``iter_batches`` ("Attempting
to recover N lost objects", measured 3 of 3 times on a two-node cluster): a watchdog ends the run with one coded
line (``executor.stalled``) when no batch has come for ``stall_s`` seconds; the indexer commits the files embedded
before it and the same command resumes from them.

Resources (measured on Ray 2.60 with 2 CPUs): actors that each reserve a whole CPU leave nothing for the decode
tasks and the pipeline hangs; so the actor pool together reserves at most half of the cluster's CPUs (fractional
``num_cpus``) and the pool is a fixed ``ActorPoolStrategy(size=N)`` (``concurrency=`` is deprecated).
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import ray  # at import time: a missing 'ray' extra is reported when the executor is made

from xsearch.core.errors import ModelError, XsearchError
from xsearch.engine.executors.base import Batch, EmbeddedFile, TrackItems, embed_decoded
from xsearch.media.types import DecodeOptions, MediaFile, Segment, Skipped

#: Reason given for a file whose worker process died on it (after retries, and alone in its batch).
CRASHED = "a Ray worker crashed while decoding or embedding it"
#: Dropped batches with more files than this are not retried file by file: their files are skipped as a batch.
MAX_RETRY_FILES = 256
_PICKLE = pickle.HIGHEST_PROTOCOL


# -- wire format: plain data across process boundaries ----------------------------------------------------


def to_plain(data):
    """Segment data as plain values: a PIL image becomes ``("pil", mode, uint8 array)``; lists recurse (a video's
    window of frames); numpy arrays and strings stay as they are."""
    if isinstance(data, (list, tuple)):
        return [to_plain(d) for d in data]
    mode = getattr(data, "mode", None)
    if mode is not None and hasattr(data, "getbands"):  # a PIL image
        return ("pil", mode, np.asarray(data))
    return data


def from_plain(data):
    """Inverse of :func:`to_plain` (PIL images rebuilt exactly from their pixels)."""
    if isinstance(data, tuple) and len(data) == 3 and data[0] == "pil":
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(data[2]), mode=data[1])
    if isinstance(data, list):
        return [from_plain(d) for d in data]
    return data


def _media_files(batch: dict) -> list[MediaFile]:
    return [MediaFile(Path(str(p)), str(m), int(s), int(t))
            for p, m, s, t in zip(batch["path"], batch["modality"], batch["size"], batch["mtime_ns"])]


def _file_table(files: list[MediaFile]):
    import pyarrow as pa

    return pa.table({"path": [str(f.path) for f in files], "modality": [f.modality for f in files],
                     "size": pa.array([int(f.size) for f in files], pa.int64()),
                     "mtime_ns": pa.array([int(f.mtime_ns) for f in files], pa.int64())})


def _decode_batch(batch: dict, opts: DecodeOptions, decode: Callable | None = None) -> dict:
    """Ray task: decode a batch of files; one output row per file (segments pickled as plain data, or a reason)."""
    if decode is None:
        from xsearch.media.loader import decode_files as decode
    files = _media_files(batch)
    try:
        segments, skipped = decode(files, opts)
    except Exception as e:  # noqa: BLE001 - decode_files isolates files; this is a bug or a custom decode
        segments, skipped = [], [Skipped(f.path, f"decoder failed: {_one_line(e)}") for f in files]
    reasons = {str(s.path): s.reason for s in skipped}
    by_path: dict[str, list] = {str(f.path): [] for f in files}
    for s in segments:
        by_path.setdefault(str(s.file.path), []).append((s.track, float(s.offset), dict(s.info), to_plain(s.data)))
    out = {k: list(batch[k]) for k in ("path", "modality", "size", "mtime_ns")}
    out["reason"] = [reasons.get(str(p), "") for p in batch["path"]]
    out["payload"] = [b"" if reasons.get(str(p)) else pickle.dumps(by_path.get(str(p), []), protocol=_PICKLE)
                      for p in batch["path"]]
    return out


class _Embedder:
    """Ray actor: builds its encoder once from the model spec (never a pickled model), then embeds batches."""

    def __init__(self, spec: str, device: str | None, threads: int | None = None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        from xsearch.encoders.registry import load_encoder

        self.encoder = load_encoder(spec, device, quiet=True)
        self.model_id = self.encoder.model_id

    def __call__(self, batch: dict) -> dict:
        paths = [str(p) for p in batch["path"]]
        reasons = [str(r) for r in batch["reason"]]
        payloads: list[bytes] = [b""] * len(paths)
        try:
            files = _media_files(batch)
            segments: list[Segment] = []
            for f, reason, raw in zip(files, reasons, batch["payload"]):
                if reason:
                    continue
                for track, offset, info, data in pickle.loads(bytes(raw)):
                    segments.append(Segment(f, from_plain(data), offset, info, track=track))
            late: dict[str, str] = {}
            done = embed_decoded(self.encoder, segments, lambda path, why: late.__setitem__(path, why))
            index = {p: i for i, p in enumerate(paths)}
            for path, why in late.items():
                reasons[index[path]] = why
            for e in done:
                tracks = {t: (list(map(float, ti.offsets)), np.asarray(ti.vectors, dtype=np.float32), ti.snippets)
                          for t, ti in e.tracks.items()}
                payloads[index[str(e.file.path)]] = pickle.dumps({"tracks": tracks, "info": e.info}, protocol=_PICKLE)
        except Exception as e:  # noqa: BLE001 - a bug here must cost this batch, not the run
            why = f"embedding failed: {_one_line(e)}"
            reasons = [r or why for r in reasons]
            payloads = [b""] * len(paths)
        return {"path": paths, "reason": reasons, "payload": payloads, "model_id": [self.model_id] * len(paths)}


def _one_line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# -- the pipeline (runs in the driver, or in a coordinator actor under Ray Client) ---------------------------


def _pipeline(rows: list[tuple], opts: DecodeOptions, per_batch: int, spec: str, res: dict,
              decode: Callable | None, max_retries: int, quiet: bool) -> Iterator[dict]:
    """Decode tasks → encoder actor pool over ``rows`` (path, modality, size, mtime_ns); yields output batches."""
    from ray.data import ActorPoolStrategy, DataContext

    files = [MediaFile(Path(p), m, s, t) for p, m, s, t in rows]
    blocks = [_file_table(files[i:i + per_batch]) for i in range(0, len(files), per_batch)]
    with warnings.catch_warnings():  # Ray 2.60's DataContext() warns about its own deprecated fields
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\.context")
        ctx = DataContext.get_current()
    saved = (ctx.max_errored_blocks, ctx.enable_progress_bars, ctx.print_on_execution_start)
    ctx.max_errored_blocks = -1  # a dead worker's batch is dropped (its files are retried), not the run
    if quiet:
        ctx.enable_progress_bars = False  # the caller has its own progress bar
        ctx.print_on_execution_start = False
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    if quiet:
        data_logger.setLevel(logging.ERROR)
    try:
        # One block per batch of files, and whole blocks as batches: a dropped block is exactly one batch.
        with warnings.catch_warnings():
            # max_retries / max_task_retries have no named parameter yet (Ray 2.60), and without them a crashing
            # file is retried forever; the extra pins ray below 2.64, which drops the pass-through.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated", category=Warning)
            # Ray Data warns about its own deprecated settings whenever it copies its context.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\.context")
            ds = ray.data.from_arrow(blocks)
            ds = ds.map_batches(
                _decode_batch, fn_kwargs={"opts": opts, "decode": decode}, batch_size=None, batch_format="numpy",
                num_cpus=res["decode_cpus"], max_retries=max_retries)
            ds = ds.map_batches(
                _Embedder, batch_size=None, batch_format="numpy",
                fn_constructor_kwargs={"spec": spec, "device": res["device"], "threads": res["threads"]},
                compute=ActorPoolStrategy(size=res["actors"]), num_cpus=res["num_cpus"],
                num_gpus=res["num_gpus"] or None, max_restarts=-1, max_task_retries=max_retries)
        yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
    finally:
        ctx.max_errored_blocks, ctx.enable_progress_bars, ctx.print_on_execution_start = saved
        data_logger.setLevel(level)


class _Coordinator:
    """Ray actor (no CPU) that runs the pipeline inside the cluster for a Ray Client driver."""

    def __init__(self, *args):
        self._batches = _pipeline(*args)

    def next(self) -> dict | None:
        return next(self._batches, None)


# -- the executor --------------------------------------------------------------------------------------------


#: Seconds to wait for a cluster address to accept a TCP connection before ``ray.init``.
CONNECT_TIMEOUT_S = 5.0
#: Seconds without a batch after which a run is declared stalled ($XSEARCH_RAY_STALL_S; 0 turns the watchdog off).
#: The first batch waits for the actors to start and build their encoder (~10-30 s on 2 busy cores).
STALL_S = 90.0
FIRST_BATCH_FACTOR = 2  # the wait for the first batch, in stall_s


def stall_seconds(value: float | None = None) -> float:
    if value is not None:
        return float(value)
    raw = os.environ.get("XSEARCH_RAY_STALL_S", "").strip()
    try:
        return float(raw) if raw else STALL_S
    except ValueError:
        raise XsearchError(f"XSEARCH_RAY_STALL_S={raw!r} is not a number of seconds", code="usage.bad_value",
                           name="XSEARCH_RAY_STALL_S", value=raw) from None


def watched(batches: Iterator, stall_s: float) -> Iterator:
    """``batches`` pulled on a helper thread; XsearchError ``executor.stalled`` when none comes for ``stall_s``
    seconds (Ray waiting forever on a lost node; twice that for the first batch). Time the consumer spends on a
    batch does not count."""
    if stall_s <= 0:
        yield from batches
        return
    box: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        box.put(("batch", item), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer's thread
            box.put(("error", e))

    thread = threading.Thread(target=pump, name="xsearch-ray-batches", daemon=True)
    thread.start()
    wait = FIRST_BATCH_FACTOR * stall_s  # the first batch also waits for the actors to start and load the model
    try:
        while True:
            started = time.monotonic()
            try:
                kind, value = box.get(timeout=wait)
            except queue.Empty:
                raise XsearchError(
                    f"the Ray run made no progress for {time.monotonic() - started:.0f} s (a node lost, or the "
                    "cluster out of resources?); the files embedded before it are kept: run the same command again "
                    "to resume",
                    code="executor.stalled", stall_s=stall_s,
                    hint="check `ray status`; XSEARCH_RAY_STALL_S sets how long to wait") from None
            if kind == "end":
                return
            if kind == "error":
                raise value
            wait = stall_s
            yield value
    finally:
        stop.set()


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, in one sentence, when a ``HOST:PORT`` or ``ray://HOST:PORT`` address accepts no connection.

    Without this, ``ray.init`` on an unreachable GCS address (Ray 2.60) logs "Failed to connect to GCS" and retries
    (measured: an ``xsearch index`` on 127.0.0.1:1 still retrying when killed after 600 s). Addresses without a
    port (``auto``, ``local``) and other schemes go to Ray as given.
    """
    scheme, sep, rest = address.strip().partition("://")
    if not sep:
        scheme, rest = "", address.strip()
    if scheme not in ("", "ray"):
        return
    host, colon, port = rest.split("/", 1)[0].rpartition(":")
    if not colon or not port.isdigit() or not host:
        return
    host = host.strip("[]")  # [::1]:6379
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e) or type(e).__name__)
        raise XsearchError(f"cannot reach the Ray cluster at {address} ({why}); check the address (HEAD:6379, "
                           "ray://HEAD:10001 or auto) and that the cluster is running",
                           code="executor.unreachable", address=address, reason=why) from None


def _connect_error(address: str | None, e: BaseException) -> XsearchError:
    """One coded line for a ``ray.init`` that failed on a reachable address. Ray 2.60 clusters use token auth by
    default, and a plain HEAD:PORT driver without the token fails after ~30 s with only "Failed to connect to Ray
    cluster": say so."""
    hint = ("if the cluster uses token authentication (Ray 2.60's default), copy the head's ~/.ray/auth_token to "
            "this machine's ~/.ray/auth_token (or set RAY_AUTH_TOKEN) and set RAY_AUTH_MODE=token; this applies to "
            "HEAD:PORT addresses as well as ray://")
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        hint = "check that ~/.ray/auth_token (or RAY_AUTH_TOKEN) holds the head's token and the cluster is healthy"
    return XsearchError(f"could not join the Ray cluster at {address} ({_one_line(e)})",
                        code="executor.connect_failed", address=address, reason=_one_line(e), hint=hint)


class RayExecutor:
    """Decode and embed on Ray (see the module docstring); ``run`` yields ``(embedded, skipped)`` per batch.

    ``address``: a Ray address (``auto``, ``ray://head:10001``); default ``$RAY_ADDRESS``, else a Ray instance
    started here for the run (and shut down after). When Ray is already initialised in this process, it is used.
    ``actors``: encoder actors (default: one per GPU, else one per 4 CPUs, at least 1); ``num_gpus`` per actor
    (default 1 when the cluster has GPUs, else 0); ``num_cpus`` per actor (default: the pool reserves at most half
    the CPUs, at most 1 each); ``decode_cpus`` per decode task (default 1, capped at half the cluster's CPUs).
    ``spec``: the model spec the actors build (default: the encoder's ``.spec``); ``device`` for the actors
    (default cuda when they hold a GPU, else cpu). ``decode``: the per-batch decode function (default
    ``xsearch.media.loader.decode_files``). ``workers`` (the local executor's decode processes) is not used:
    decode tasks spread over the cluster's CPUs. ``stall_s``: seconds without a batch before the run ends with
    ``executor.stalled`` (default $XSEARCH_RAY_STALL_S, else STALL_S; 0: never).
    """

    name = "ray"

    def __init__(self, files_per_batch: int = 32, *, workers: int | None = None, address: str | None = None,
                 actors: int | None = None, num_cpus: float | None = None, num_gpus: float | None = None,
                 decode_cpus: float | None = None, spec: str | None = None, device: str | None = None,
                 max_retries: int = 1, decode: Callable | None = None, quiet: bool = True,
                 stall_s: float | None = None):
        self.files_per_batch = files_per_batch
        self.address = address
        self.actors = actors
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.decode_cpus = decode_cpus
        self.spec = spec
        self.device = device
        self.max_retries = max_retries
        self.decode = decode
        self.quiet = quiet
        self.stall_s = stall_seconds(stall_s)
        self.resources: dict = {}  # what the last run used (for reports and benchmarks)

    # Read from the encoder only here, when there is work (see the module docstring).
    def _spec(self, encoder) -> str:
        return self.spec or encoder.spec

    def run(self, encoder, files: list[MediaFile], opts: DecodeOptions) -> Iterator[Batch]:
        if not files:
            return
        started = self._connect()
        try:
            spec = self._spec(encoder)
            expected = getattr(encoder, "model_id", None)
            seen: set[str] = set()
            yield from self._run_pass(spec, expected, files, opts, self.files_per_batch, seen)
            dropped = [f for f in files if str(f.path) not in seen]
            if dropped and len(dropped) <= MAX_RETRY_FILES:
                yield from self._run_pass(spec, expected, dropped, opts, 1, seen)
                dropped = [f for f in dropped if str(f.path) not in seen]
            for i in range(0, len(dropped), self.files_per_batch):
                yield [], [Skipped(f.path, CRASHED) for f in dropped[i:i + self.files_per_batch]]
        finally:
            if started:
                ray.shutdown()

    def _connect(self) -> bool:
        """Initialise Ray unless it already is; True when this call started it."""
        if ray.is_initialized():
            return False
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        if address is not None:
            check_reachable(address)
        kwargs = {"include_dashboard": False} if address is None else {}
        if self.quiet:
            kwargs.update(logging_level=logging.ERROR, log_to_driver=False)
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as e:
            raise _connect_error(address, e) from None
        return True

    def _plan_resources(self) -> dict:
        total = ray.cluster_resources()
        cpus, gpus = float(total.get("CPU", 1)), float(total.get("GPU", 0))
        num_gpus = self.num_gpus if self.num_gpus is not None else (1.0 if gpus >= 1 else 0.0)
        if self.actors is not None:
            actors = self.actors
        elif num_gpus > 0:
            actors = max(1, int(gpus // num_gpus))
        else:
            actors = max(1, int(cpus // 4))
        num_cpus = self.num_cpus if self.num_cpus is not None else min(1.0, cpus / 2 / actors)
        decode_cpus = self.decode_cpus if self.decode_cpus is not None else min(1.0, cpus / 2)
        device = self.device or ("cuda" if num_gpus > 0 else "cpu")
        threads = None if num_gpus > 0 else max(1, int(num_cpus))
        return {"cluster_cpus": cpus, "cluster_gpus": gpus, "actors": actors, "num_cpus": num_cpus,
                "num_gpus": num_gpus, "decode_cpus": decode_cpus, "device": device, "threads": threads}

    def _run_pass(self, spec: str, expected: str | None, files: list[MediaFile], opts: DecodeOptions,
                  per_batch: int, seen: set[str]) -> Iterator[Batch]:
        res = self.resources = self._plan_resources()
        by_path = {str(f.path): f for f in files}
        rows = [(str(f.path), f.modality, int(f.size), int(f.mtime_ns)) for f in files]
        args = (rows, opts, per_batch, spec, res, self.decode, self.max_retries, self.quiet)
        if ray.util.client.ray.is_connected():
            # Ray Client (ray://): Ray Data cannot run in a client driver, so a coordinator actor on the cluster
            # runs the pipeline and this process pulls its output batch by batch (still the one writer).
            coordinator = ray.remote(num_cpus=0)(_Coordinator).remote(*args)
            def pulled() -> Iterator[dict]:
                while (out := ray.get(coordinator.next.remote())) is not None:
                    yield out

            try:
                for out in watched(pulled(), self.stall_s):
                    yield self._unpack(out, by_path, expected, seen)
            finally:
                ray.kill(coordinator)
        else:
            for out in watched(_pipeline(*args), self.stall_s):
                yield self._unpack(out, by_path, expected, seen)

    @staticmethod
    def _unpack(out: dict, by_path: dict[str, MediaFile], expected: str | None, seen: set[str]) -> Batch:
        embedded: list[EmbeddedFile] = []
        skipped: list[Skipped] = []
        for path, reason, raw, model_id in zip(out["path"], out["reason"], out["payload"], out["model_id"]):
            path = str(path)
            if expected is not None and str(model_id) != expected:
                raise ModelError(f"the Ray workers built model {model_id}, not {expected} as this collection "
                                 "needs; install the same xsearch and model files on every node",
                                 code="model.worker_mismatch", expected=expected, got=str(model_id))
            seen.add(path)
            if reason:
                skipped.append(Skipped(Path(path), str(reason)))
                continue
            if not len(raw):
                continue  # nothing to embed in it (as locally: neither embedded nor skipped)
            data = pickle.loads(bytes(raw))
            tracks = {t: TrackItems(offsets, vectors, snippets) for t, (offsets, vectors, snippets)
                      in data["tracks"].items()}
            embedded.append(EmbeddedFile(by_path[path], tracks, data["info"]))
        return embedded, skipped
