"""Copying a collection to another store (local ↔ Milvus, either way), vectors and words included: nothing is embedded
or read again."""

from __future__ import annotations

import time

from xsearch.core.errors import CollectionError, UsageError

from . import backend_for, delete_store, incomplete, open_store, resolve_uri, store_exists
from .store import StoreSpec


def copy_store(source: str | None, destination: str | None, *, replace: bool = False, factory="auto",
               wait_s: float = 0.0, files_per_batch: int = 1024, on_plan=None, on_progress=None) -> dict:
    """Copy a collection to another store (local ↔ Milvus, either way), vectors included (nothing is embedded):
    every file row with its items, read through the source's :meth:`StoreReader.file_items` and written through
    the destination's writer, committed every ``files_per_batch`` files; its words (OCR lines with their boxes,
    confidences and times, text passages; :meth:`StoreReader.file_words`) and text settings (``--ocr``) too, where
    both stores keep a keyword index — where the destination has none they are left behind (``words_left``). The
    model (id, spec, dims) carries over; ``factory`` is the destination's index type. A destination holding files
    is refused (CollectionError code copy.destination_not_empty) unless ``replace``, which deletes it first. The
    destination is marked unfinished (:mod:`xsearch.index.incomplete`) until the last commit: an interrupted copy
    is refused by every reader and started over by the next copy into it. Returns what was copied."""
    t0 = time.time()
    src_uri, dst_uri = resolve_uri(source), resolve_uri(destination)
    if src_uri == dst_uri:
        raise UsageError(f"source and destination are the same collection ({src_uri})", code="copy.same",
                         collection=src_uri)
    backend = backend_for(dst_uri)
    with open_store(src_uri) as src:
        unfinished = incomplete.source_of(backend, dst_uri) is not None  # an interrupted copy: start it over
        if store_exists(dst_uri) and not unfinished:
            with open_store(dst_uri) as dst:
                held = sum(c.get("files", 0) for c in dst.counts().values())
            if held and not replace:
                raise CollectionError(f"collection {dst_uri} already holds {held} file(s)",
                                      code="copy.destination_not_empty", collection=dst_uri, files=held)
        if store_exists(dst_uri):
            delete_store(dst_uri, wait_s=wait_s)
        incomplete.mark(backend, dst_uri, src_uri)  # until the last commit: readers refuse a partial copy
        files = src.files()
        has_tags = bool(src.tag_counts())
        if on_plan:
            on_plan(len(files))
        items: dict[str, int] = {}
        spec = StoreSpec(src.model_id, src.model_spec, dict(src.dims), factory)
        src_words = {t: c for t, c in src.keyword_counts().items() if t != "name"} if src.supports_keywords else {}
        with backend.open_writer(dst_uri, create=spec, wait_s=wait_s) as writer:
            words = src.supports_keywords and writer.supports_keywords
            if words:
                for key, value in src.text_settings().items():
                    writer.set_text_setting(key, value)
            lines: dict[str, int] = {}
            for start in range(0, len(files), max(1, int(files_per_batch))):
                chunk = files[start:start + max(1, int(files_per_batch))]
                data = src.file_items([f.id for f in chunk])
                text = src.file_words([f.id for f in chunk]) if words else {}
                for f in chunk:
                    video = {k: getattr(f, k) for k in ("fps", "has_audio") if getattr(f, k, None) is not None}
                    new_id = writer.upsert_file(f.path, modality=f.modality, size=f.size, mtime_ns=f.mtime_ns,
                                                hash=f.hash, width=f.width, height=f.height, duration=f.duration,
                                                **video)
                    tags = src.tags_of(f.id) if has_tags else []
                    if tags:
                        writer.set_tags(new_id, tags)
                    tracks = data.get(f.id)
                    if tracks:
                        writer.replace_items(new_id, tracks)
                        for track, (offsets, _, _) in tracks.items():
                            items[track] = items.get(track, 0) + len(offsets)
                    if f.id in text:
                        file_lines, reads = text[f.id]
                        writer.replace_text(new_id, file_lines, sorted({*reads, *(ln["track"] for ln in file_lines)}))
                        for line in file_lines:
                            lines[line["track"]] = lines.get(line["track"], 0) + 1
                writer.commit()
                if on_progress:
                    on_progress(len(chunk))
            reindexed = writer.maybe_reindex()
            writer.commit()
        incomplete.clear(backend, dst_uri)
    return {"source": src_uri, "destination": dst_uri, "model_spec": spec.model_spec, "model_id": spec.model_id,
            "files": len(files), "items": items, "lines": lines,
            "words_left": {} if words else {t: c["lines"] for t, c in src_words.items()},
            "reindexed": {m: list(v) for m, v in reindexed.items()},
            "seconds": round(time.time() - t0, 3)}
