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

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from xsearch.core.errors import XsearchError
from xsearch.core.types import IndexReport
from xsearch.encoders.base import tracks
from xsearch.engine.embed import decode_options
from xsearch.engine.executors.base import EmbeddedFile, Executor
from xsearch.engine.executors.local import LocalExecutor
from xsearch.media import modalities as media_modalities
from xsearch.media.types import MediaFile, Skipped

__all__ = ["IndexReport", "file_hash", "index_folder", "PRUNE_GUARD_FRACTION"]

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
    linked_out: frozenset = frozenset()  # paths that are now links leaving the root (dropped even past the guard)


def plan_folder(writer, modalities: Sequence[str], root: Path, report: IndexReport, *, include=(), exclude=(),
                hidden: bool = False, follow_links: bool = False, redo: frozenset[int] = frozenset()) -> Plan:
    """Walk ``root`` and compare with the store (see the module docstring)."""
    from xsearch.media import discover
    from xsearch.media.discover import LINK_OUTSIDE, in_scope, require_utf8

    require_utf8(root)  # no path under it could be stored
    seen: set[str] = set()
    linked_out: set[str] = set()
    todo: list[_Pending] = []
    ignored: dict[str, int] = {}
    own = [writer.path] if getattr(writer, "path", None) else []  # a collection kept inside the folder it indexes
    for found in discover(root, include=include, exclude=exclude, hidden=hidden, follow_links=follow_links,
                          ignored=ignored, skip_dirs=own):
        if isinstance(found, Skipped):
            code = getattr(found, "code", "")
            if code == LINK_OUTSIDE:  # a link no longer followed loses what was indexed through it
                linked_out.add(str(found.path))
            else:
                seen.add(str(found.path))  # a file that is unreadable now keeps what was indexed of it
            entry = {"path": str(found.path), "reason": found.reason}
            report.skipped.append({**entry, "code": code} if code else entry)
            continue
        path = str(found.path)
        seen.add(path)
        if found.modality not in modalities:
            report.unsupported[found.modality] = report.unsupported.get(found.modality, 0) + 1
            continue
        row = writer.file(path)
        if row is not None and (row.model_id != writer.model_id or row.id in redo):
            todo.append(_Pending(found, row))  # embedded by another model (a lost manifest), or words unread
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
    for ext, n in sorted(ignored.items(), key=lambda item: (-item[1], item[0])):
        report.ignored[ext] = report.ignored.get(ext, 0) + n
    missing = [r for r in writer.files(under=str(root)) if r.path not in seen
               and in_scope(root, r.path, include=include, exclude=exclude, hidden=hidden)]
    return Plan(todo, missing, frozenset(linked_out))


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
                 report: IndexReport | None = None, worker_init: Callable[[], None] | None = None,
                 executor: Executor | None = None, follow_links: bool = False,
                 text_tracks: Sequence[str] = ()) -> IndexReport:
    """Bring the store behind ``writer`` in line with the media under ``root``; see the module docstring.

    ``encoder`` may be lazy: only its ``modalities`` are read unless some file needs embedding. ``executor``
    decodes and embeds (default: a LocalExecutor with ``workers`` / ``files_per_batch`` / ``worker_init``).
    ``on_plan(n)`` is told how many files will be embedded; ``on_progress(k)`` advances by k files.
    Symlinks whose target lies outside ``root`` are skipped unless ``follow_links``. ``text_tracks``: the opt-in
    text tracks to read (``("ocr",)``); files they have not read yet are decoded again (xsearch.engine.words).
    """
    from xsearch.engine.words import unread_files, words_on

    keywords = words_on(writer)
    t0 = time.time()
    root = Path(root).expanduser().absolute()
    report = report or IndexReport(str(root), writer.uri, writer.model_spec, writer.model_id)
    plan = plan_folder(writer, tracks(encoder), root, report, include=include, exclude=exclude, hidden=hidden,
                       follow_links=follow_links, redo=unread_files(writer, text_tracks) if keywords else frozenset())
    _apply_moves(writer, plan, report)
    if on_plan:
        on_plan(len(plan.todo))

    pending_items, last_commit = 0, time.time()
    by_path = {str(p.file.path): p for p in plan.todo}
    opts = decode_options(encoder) if plan.todo else None  # nothing to embed: the model is never loaded
    if opts is not None and keywords:
        opts = dataclasses.replace(opts, text_tracks=tuple(text_tracks))
    executor = executor or LocalExecutor(workers, files_per_batch, worker_init)
    try:
        for embedded, bad in (executor.run(encoder, [p.file for p in plan.todo], opts) if plan.todo else ()):
            for s in bad:
                report.skipped.append({"path": str(s.path), "reason": s.reason})
            for done in embedded:
                pending_items += done.n_vectors
                _store(writer, by_path[str(done.file.path)], done, report, opts, keywords)
            if on_progress:
                on_progress(len(embedded) + len(bad))
            if pending_items >= commit_every or time.time() - last_commit > commit_seconds:
                writer.commit()
                pending_items, last_commit = 0, time.time()
    except XsearchError as e:
        if e.code == "executor.stalled":  # the cluster, not our data, failed: every file stored so far is whole
            writer.commit()
        raise

    if prune and plan.missing:
        _prune(writer, root, plan.missing, prune_all, report, plan.linked_out)
    report.reindexed = {m: list(v) for m, v in writer.maybe_reindex().items()}
    writer.commit()
    report.seconds = time.time() - t0
    return report


def _prune(writer, root: Path, missing: list, prune_all: bool, report: IndexReport,
           linked_out: frozenset = frozenset()) -> None:
    """Remove what is gone from disk, unless that is most of the folder (see PRUNE_GUARD_FRACTION). A file that
    became a link leaving the folder is not "gone" (an unmounted disk does not do that): it is always dropped,
    so the catalog never keeps pointing at what the link now reaches."""
    relinked = [r for r in missing if _under_any(r.path, linked_out)]
    if relinked:
        writer.remove_files([r.id for r in relinked])
        report.removed += len(relinked)
        report.notes.append(f"dropped {len(relinked)} indexed file(s) that are now links leaving {root} "
                            f"(e.g. {relinked[0].path}); pass --follow-links to index what such links reach")
        gone = {r.id for r in relinked}
        missing = [r for r in missing if r.id not in gone]
        if not missing:
            return
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


def _under_any(path: str, folders: frozenset) -> bool:
    """Whether ``path`` is one of ``folders`` or lies below one of them."""
    return path in folders or any(path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def _store(writer, pending: _Pending, done: EmbeddedFile, report: IndexReport, opts, keywords: bool = False) -> None:
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
    info = done.info
    file_id = writer.upsert_file(str(f.path), modality=f.modality, size=f.size,
                                 mtime_ns=STALE_MTIME if stale else f.mtime_ns, hash=digest,
                                 width=info.get("width"), height=info.get("height"), duration=info.get("duration"),
                                 fps=info.get("fps"), has_audio=info.get("has_audio"))
    writer.replace_items(file_id, {track: (t.offsets, t.vectors, t.snippets) for track, t in done.tracks.items()})
    if keywords:
        from xsearch.engine.words import store_words

        store_words(writer, file_id, info, report)
    for track, t in done.tracks.items():
        report.vectors_added[track] = report.vectors_added.get(track, 0) + len(t.offsets)
    if pending.row is None:
        report.added += 1
    else:
        report.updated += 1
    if info.get("truncated") or info.get("damaged"):
        report.notes.append(_truncation_note(f, info, done.n_vectors, opts))
    if info.get("note"):
        report.notes.append(f"{f.path}: {info['note']}")


def _truncation_note(f: MediaFile, info: dict, n_segments: int, opts) -> str:
    """What a cut file lost, in the report (a long recording, a huge text, a file shorter than its header says)."""
    if info.get("damaged"):
        return f"{f.path}: {info['damaged']}; indexed what could be read ({n_segments} segment(s))"
    modality = media_modalities.find(f.modality)  # each modality words its own cut (which limit, what was kept)
    if modality is None:
        return f"{f.path}: only part of it was indexed"
    return f"{f.path}: {modality.truncation_note(info.get('duration', 0), n_segments, opts)}"
