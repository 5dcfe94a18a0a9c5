"""Incremental indexing of a folder into a store (rclip's scheme, for every modality).

Plan (on the driver, the only writer): walk the folder; skip files whose size and mtime are unchanged (a changed
mtime with the same content hash is only re-stamped; a file embedded by another model is re-embedded); a new
file whose content hash matches an indexed file that is gone — anywhere in the collection — is a move and keeps
its vectors; files gone from the folder are pruned, but only those this walk would have looked at, and not when
more than half of the folder's files vanished at once (an unmounted disk) unless ``prune_all``.

Embed: an executor decodes and embeds the planned files in batches (local: DataLoader worker processes a few
batches ahead of the model). Write: each file's items replace its old ones; the store commits every
``commit_every`` items, so a crash loses at most one batch. A file modified while it was being embedded is
stored as stale (it is embedded again by the next run), so the catalog never pairs new bytes with old vectors.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xsearch.embed import decode_options, embed_segments
from xsearch.media.types import MediaFile, Segment, Skipped
from xsearch.types import IndexReport

__all__ = ["IndexReport", "file_hash", "index_folder", "SNIPPET_CHARS", "PRUNE_GUARD_FRACTION"]

SNIPPET_CHARS = 200
#: Pruning more than this share of a folder's indexed files in one run needs ``prune_all``.
PRUNE_GUARD_FRACTION = 0.5
#: mtime recorded for a file that changed while it was embedded: never equal to a real one, so it is redone.
STALE_MTIME = -1


def file_hash(path: Path) -> str:
    """blake2b of the content (16 bytes hex): decides "changed?" when only the mtime moved, and finds moves."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class _Pending:
    file: MediaFile
    row: object | None  # the store's FileRecord when the file was indexed before
    hash: str | None = None


@dataclass
class Plan:
    """What an indexing run will do: files to embed, files gone, and counts for the report."""

    todo: list[_Pending]
    missing: list  # FileRecords under the root that this walk would have seen and did not


def plan_folder(writer, modalities: Sequence[str], root: Path, report: IndexReport, *, include=(), exclude=(),
                hidden: bool = False) -> Plan:
    """Walk ``root`` and compare with the store (see the module docstring)."""
    from xsearch.media import discover
    from xsearch.media.discover import in_scope

    seen: set[str] = set()
    todo: list[_Pending] = []
    for found in discover(root, include=include, exclude=exclude, hidden=hidden):
        if isinstance(found, Skipped):
            seen.add(str(found.path))  # a file that is unreadable now keeps what was indexed of it
            report.skipped.append({"path": str(found.path), "reason": found.reason})
            continue
        path = str(found.path)
        seen.add(path)
        if found.modality not in modalities:
            report.unsupported[found.modality] = report.unsupported.get(found.modality, 0) + 1
            continue
        row = writer.file(path)
        if row is not None and row.model_id != writer.model_id:
            todo.append(_Pending(found, row))  # embedded by another model (a lost manifest): embed again
            continue
        if row is not None and row.size == found.size and row.mtime_ns == found.mtime_ns:
            report.unchanged += 1
            continue
        pending = _Pending(found, row)
        if row is not None and row.size == found.size and row.hash:
            try:
                pending.hash = file_hash(found.path)
            except OSError as e:
                report.skipped.append({"path": path, "reason": f"cannot read: {e.strerror or e}"})
                continue
            if pending.hash == row.hash:
                writer.touch_file(row.id, mtime_ns=found.mtime_ns)
                report.unchanged += 1
                continue
        todo.append(pending)
    missing = [r for r in writer.files(under=str(root)) if r.path not in seen
               and in_scope(root, r.path, include=include, exclude=exclude, hidden=hidden)]
    return Plan(todo, missing)


def _apply_moves(writer, plan: Plan, report: IndexReport) -> None:
    """A new file with the content of an indexed file that is gone (from this folder or any other folder of the
    collection) takes over its row and vectors."""
    missing_ids = {r.id for r in plan.missing}
    sizes = writer.file_sizes() if plan.todo else set()
    keep = []
    for p in plan.todo:
        if p.row is not None or p.file.size not in sizes:
            keep.append(p)
            continue
        try:
            p.hash = p.hash or file_hash(p.file.path)
        except OSError:
            keep.append(p)
            continue
        old = next((r for r in writer.files_by_hash(p.hash, p.file.size)
                    if r.modality == p.file.modality and r.model_id == writer.model_id
                    and (r.id in missing_ids or not os.path.lexists(r.path))), None)
        if old is None:
            keep.append(p)
            continue
        writer.rename_file(old.id, str(p.file.path), p.file.mtime_ns)
        missing_ids.discard(old.id)
        report.renamed += 1
    plan.todo = keep
    plan.missing = [r for r in plan.missing if r.id in missing_ids]


def index_folder(writer, encoder, root: str | Path, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                 hidden: bool = False, prune: bool = True, prune_all: bool = False, workers: int = 2,
                 files_per_batch: int = 32, commit_every: int = 512, commit_seconds: float = 30.0,
                 on_plan: Callable[[int], None] | None = None, on_progress: Callable[[int], None] | None = None,
                 report: IndexReport | None = None, worker_init: Callable[[], None] | None = None) -> IndexReport:
    """Bring the store behind ``writer`` in line with the media under ``root``; see the module docstring.

    ``encoder`` may be lazy: only its ``modalities`` are read unless some file needs embedding.
    ``on_plan(n)`` is told how many files will be embedded; ``on_progress(k)`` advances by k files.
    """
    t0 = time.time()
    root = Path(root).expanduser().absolute()
    report = report or IndexReport(str(root), writer.uri, writer.model_spec, writer.model_id)
    plan = plan_folder(writer, encoder.modalities, root, report, include=include, exclude=exclude, hidden=hidden)
    _apply_moves(writer, plan, report)
    if on_plan:
        on_plan(len(plan.todo))

    pending_items, last_commit = 0, time.time()
    by_path = {str(p.file.path): p for p in plan.todo}
    opts = decode_options(encoder) if plan.todo else None  # nothing to embed: the model is never loaded
    for vectors_by_file, segments_by_file, bad in embed_batches(encoder, [p.file for p in plan.todo], opts,
                                                                files_per_batch, workers, worker_init, report):
        for s in bad:
            report.skipped.append({"path": str(s.path), "reason": s.reason})
        for path, vectors in vectors_by_file.items():
            pending_items += len(vectors)
            _store(writer, by_path[path], segments_by_file[path], vectors, report, opts)
        if on_progress:
            on_progress(len(segments_by_file) + len(bad))
        if pending_items >= commit_every or time.time() - last_commit > commit_seconds:
            writer.commit()
            pending_items, last_commit = 0, time.time()

    if prune and plan.missing:
        _prune(writer, root, plan.missing, prune_all, report)
    report.reindexed = {m: list(v) for m, v in writer.maybe_reindex().items()}
    writer.commit()
    report.seconds = time.time() - t0
    return report


def _prune(writer, root: Path, missing: list, prune_all: bool, report: IndexReport) -> None:
    indexed = len(writer.files(under=str(root)))
    if not prune_all and len(missing) > PRUNE_GUARD_FRACTION * indexed:
        examples = ", ".join(r.path for r in missing[:3])
        report.prune_refused = len(missing)
        report.notes.append(
            f"not removing {len(missing)} of the {indexed} indexed files under {root}: they are gone from disk "
            f"(e.g. {examples}); so many at once looks like an unmounted or emptied folder. If they were really "
            "deleted, index again allowing a full prune")
        return
    writer.remove_files([r.id for r in missing])
    report.removed += len(missing)


def embed_batches(encoder, files: list[MediaFile], opts, files_per_batch: int, workers: int,
                  worker_init, report: IndexReport) -> Iterator[tuple[dict, dict, list]]:
    """The local executor: decode in DataLoader workers, embed in this process. Yields, per batch,
    ({path: vectors}, {path: segments}, [Skipped])."""
    if not files:
        return
    from xsearch.media import iter_decoded

    kwargs = {"worker_init": worker_init} if worker_init is not None else {}
    for segments, bad in iter_decoded(files, opts, files_per_batch=files_per_batch, workers=workers, **kwargs):
        by_file: dict[str, list[Segment]] = defaultdict(list)
        for seg in segments:
            by_file[str(seg.file.path)].append(seg)
        vectors = _embed_files(encoder, by_file, report)
        yield vectors, {p: by_file[p] for p in vectors}, list(bad)


def _embed_files(encoder, by_file: dict[str, list[Segment]], report: IndexReport) -> dict[str, np.ndarray]:
    """Embed a batch of files' segments, one encoder call per modality; a failing file is isolated and skipped."""
    by_modality: dict[str, list[str]] = defaultdict(list)
    for path, segs in by_file.items():
        by_modality[segs[0].modality].append(path)
    out: dict[str, np.ndarray] = {}
    for modality, paths in by_modality.items():
        segs = [s for p in paths for s in by_file[p]]
        try:
            vecs = embed_segments(encoder, modality, segs)
        except Exception:
            vecs = None
        if vecs is not None:
            start = 0
            for p in paths:
                n = len(by_file[p])
                out[p] = vecs[start : start + n]
                start += n
            continue
        for p in paths:  # the batch failed: find the file(s) at fault
            try:
                out[p] = embed_segments(encoder, modality, by_file[p])
            except Exception as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                report.skipped.append({"path": p, "reason": f"the model could not embed it: {first}"})
    return out


def _store(writer, pending: _Pending, segs: list[Segment], vectors: np.ndarray, report: IndexReport,
           opts) -> None:
    """Replace the file's items and vectors with the new ones (not committed yet).

    The hash and stat stored must describe the bytes that were embedded: the file is hashed after embedding and
    stat'ed again; if it changed since discovery it is stored as stale and embedded again next run.
    """
    f = pending.file
    stale = False
    try:
        digest = pending.hash or file_hash(f.path)
        st = os.stat(f.path)
        stale = (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns)
    except OSError:
        digest, stale = None, True
    if stale:
        digest = None
        report.notes.append(f"{f.path}: changed while it was being indexed; it will be embedded again next run")
    info = segs[0].info
    file_id = writer.upsert_file(str(f.path), modality=f.modality, size=f.size,
                                 mtime_ns=STALE_MTIME if stale else f.mtime_ns, hash=digest,
                                 width=info.get("width"), height=info.get("height"), duration=info.get("duration"))
    snippets = [s.data[:SNIPPET_CHARS] for s in segs] if f.modality == "text" else None
    writer.replace_items(file_id, f.modality, [s.offset for s in segs], vectors, snippets)
    report.vectors_added[f.modality] = report.vectors_added.get(f.modality, 0) + len(vectors)
    if pending.row is None:
        report.added += 1
    else:
        report.updated += 1
    if info.get("truncated"):
        report.notes.append(_truncation_note(f, info, len(segs), opts))


def _truncation_note(f: MediaFile, info: dict, n_segments: int, opts) -> str:
    """What a cut file lost, in the report (a long recording, a huge text, a file shorter than its header says)."""
    if info.get("damaged"):
        return f"{f.path}: {info['damaged']}; indexed what could be read ({n_segments} segment(s))"
    if f.modality == "audio":
        return (f"{f.path}: {info.get('duration', 0):.0f} s long; only the first {opts.max_audio_s:.0f} s were "
                "indexed")
    if f.modality == "text":
        return (f"{f.path}: longer than {opts.max_text_chars:,} characters; only the first {opts.max_text_chars:,} "
                f"were indexed ({n_segments} passages)")
    return f"{f.path}: only part of it was indexed"
