"""Incremental indexing of a folder into a collection (rclip's scheme, for three modalities).

Walk the folder; skip files whose size and mtime are unchanged (a changed mtime with the same content hash is
only re-stamped); embed new and changed files; a new file whose content hash matches a file that disappeared is
a rename and keeps its vectors; files gone from the folder are pruned. Decoding runs in DataLoader workers a few
batches ahead of the model; bad files are reported and skipped. The collection commits every
``commit_every`` items (vectors saved first, then the catalog), so a crash loses at most one batch.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from xsearch.media.types import DecodeOptions, MediaFile, Segment, Skipped

SNIPPET_CHARS = 200


@dataclass
class IndexReport:
    """What one `xsearch index` run did."""

    root: str
    collection: str
    model_spec: str
    model_id: str
    model_note: str = ""
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    renamed: int = 0
    removed: int = 0
    vectors_added: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)  # [{"path", "reason"}]
    unsupported: dict = field(default_factory=dict)  # modality -> files the model cannot embed
    notes: list = field(default_factory=list)
    reindexed: dict = field(default_factory=dict)
    repaired: str = ""
    seconds: float = 0.0

    @property
    def embedded(self) -> int:
        return self.added + self.updated

    def to_dict(self) -> dict:
        return asdict(self)


def file_hash(path: Path) -> str:
    """blake2b of the content (16 bytes hex): decides "changed?" when only the mtime moved, and finds renames."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def decode_options(encoder) -> DecodeOptions:
    """Decoding that matches what the encoder expects (sample rate, window length)."""
    return DecodeOptions(sample_rate=encoder.sample_rate or 16000, audio_window_s=encoder.audio_window_s or 2.0,
                         image_short_side=getattr(encoder, "image_short_side", 0) or 0)


def embed_segments(encoder, modality: str, segments: Sequence[Segment]) -> np.ndarray:
    """Vectors for decoded segments of one modality, in the space that modality is indexed in."""
    space = encoder.index_space(modality)
    data = [s.data for s in segments]
    if modality == "image":
        return encoder.embed_images(data, space=space)
    if modality == "audio":
        return encoder.embed_audio(data, space=space)
    return encoder.embed_text(data, space=space)


@dataclass
class _Pending:
    file: MediaFile
    row: object | None  # catalog FileRow when the file was indexed before
    hash: str | None = None


def index_folder(collection, encoder, root: str | Path, *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                 hidden: bool = False, prune: bool = True, workers: int = 2, files_per_batch: int = 32,
                 commit_every: int = 512, commit_seconds: float = 30.0,
                 on_plan: Callable[[int], None] | None = None,
                 on_progress: Callable[[int], None] | None = None, report: IndexReport | None = None) -> IndexReport:
    """Bring ``collection`` in line with the media under ``root``; see the module docstring.

    ``on_plan(n)`` is told how many files will be embedded; ``on_progress(k)`` advances by k files.
    """
    from xsearch.media import discover, iter_decoded

    t0 = time.time()
    root = Path(root).expanduser().absolute()
    catalog = collection.catalog
    report = report or IndexReport(str(root), str(collection.path), collection.model_spec, collection.model_id)

    seen: set[str] = set()
    todo: list[_Pending] = []
    for found in discover(root, include=include, exclude=exclude, hidden=hidden):
        if isinstance(found, Skipped):
            seen.add(str(found.path))  # a file that is unreadable now keeps what was indexed of it
            report.skipped.append({"path": str(found.path), "reason": found.reason})
            continue
        path = str(found.path)
        seen.add(path)
        if found.modality not in encoder.modalities:
            report.unsupported[found.modality] = report.unsupported.get(found.modality, 0) + 1
            continue
        row = catalog.get_file(path)
        if row is not None and row.size == found.size and row.mtime_ns == found.mtime_ns:
            report.unchanged += 1
            continue
        pending = _Pending(found, row)
        if row is not None and row.size == found.size:
            try:
                pending.hash = file_hash(found.path)
            except OSError as e:
                report.skipped.append({"path": path, "reason": f"cannot read: {e.strerror or e}"})
                continue
            if pending.hash == row.hash:
                catalog.touch_file(row.id, mtime_ns=found.mtime_ns)
                report.unchanged += 1
                continue
        todo.append(pending)

    missing = [r for r in catalog.files(under=root) if r.path not in seen]
    todo = _apply_renames(collection, todo, missing, report)
    if on_plan:
        on_plan(len(todo))

    pending_items, last_commit = 0, time.time()
    by_path = {str(p.file.path): p for p in todo}
    decode_opts = decode_options(encoder) if todo else None  # nothing to embed: the model is never loaded
    batches = iter_decoded([p.file for p in todo], decode_opts, files_per_batch=files_per_batch,
                           workers=workers) if todo else ()
    for segments, bad in batches:
        for s in bad:
            report.skipped.append({"path": str(s.path), "reason": s.reason})
        done_files = {str(s.path) for s in bad}
        by_file: dict[str, list[Segment]] = defaultdict(list)
        for seg in segments:
            by_file[str(seg.file.path)].append(seg)
        for path, vectors in _embed_files(encoder, by_file, report).items():
            pending_items += len(vectors)
            _store(collection, by_path[path], by_file[path], vectors, report, decode_opts.max_audio_s)
        done_files |= set(by_file)
        if on_progress:
            on_progress(len(done_files))
        if pending_items >= commit_every or time.time() - last_commit > commit_seconds:
            collection.commit()
            pending_items, last_commit = 0, time.time()

    if prune and missing:
        collection.remove_files([r.id for r in missing])
        report.removed += len(missing)
    report.reindexed = {m: list(v) for m, v in collection.maybe_reindex().items()}
    collection.commit()
    report.seconds = time.time() - t0
    return report


def _apply_renames(collection, todo: list[_Pending], missing: list, report: IndexReport) -> list[_Pending]:
    """A new file with the content of a vanished one takes over its catalog row (and vectors)."""
    if not missing:
        return todo
    vanished = {(r.hash, r.size): r for r in missing if r.hash}
    keep = []
    for p in todo:
        if p.row is None and (p.file.size in {size for _, size in vanished}):
            try:
                p.hash = p.hash or file_hash(p.file.path)
            except OSError:
                keep.append(p)
                continue
            old = vanished.pop((p.hash, p.file.size), None)
            if old is not None and old.modality == p.file.modality:
                collection.catalog.rename_file(old.id, str(p.file.path), p.file.mtime_ns)
                missing.remove(old)
                report.renamed += 1
                continue
        keep.append(p)
    return keep


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


def _store(collection, pending: _Pending, segs: list[Segment], vectors: np.ndarray, report: IndexReport,
           max_audio_s: float) -> None:
    """Replace the file's catalog row and vectors with the new ones (not committed yet)."""
    f = pending.file
    if pending.hash is None:
        try:
            pending.hash = file_hash(f.path)
        except OSError:
            pending.hash = None
    info = segs[0].info
    if pending.row is not None:
        collection.clear_files([pending.row.id])
    file_id = collection.catalog.upsert_file(
        str(f.path), modality=f.modality, size=f.size, mtime_ns=f.mtime_ns, model_id=collection.model_id,
        hash=pending.hash, width=info.get("width"), height=info.get("height"), duration=info.get("duration"),
    )
    snippets = [s.data[:SNIPPET_CHARS] for s in segs] if f.modality == "text" else None
    collection.add(f.modality, file_id, [s.offset for s in segs], vectors, snippets)
    report.vectors_added[f.modality] = report.vectors_added.get(f.modality, 0) + len(vectors)
    if pending.row is None:
        report.added += 1
    else:
        report.updated += 1
    if info.get("truncated") and f.modality == "audio":
        report.notes.append(f"{f.path}: {info.get('duration', 0):.0f} s long; only the first {max_audio_s:.0f} s "
                            "were indexed")
