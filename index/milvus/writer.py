"""The one writer of a Milvus collection: its changes are buffered in memory (writer_reads.py) and applied by a
journaled commit (commit.py); its words (the keyword index) likewise (words_writer.py)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from xsearch.core.errors import CollectionError

from ..store import FileRecord, StoreWriter, TrackData
from .commit import JournaledCommit, MilvusRepair
from .connection import Connection
from .db import Db
from .indexes import auto_switch
from .rows import sorted_tags
from .words_writer import WordsWriter


class MilvusWriter(WordsWriter, JournaledCommit, StoreWriter):
    """The one writer of a Milvus collection. It holds every file row in memory (the planner asks for each file
    it walks), buffers changes and applies them in :meth:`commit` (commit.py)."""

    def __init__(self, conn: Connection, lock, *, repair: bool = True):
        self._conn = conn
        self._db = Db(conn)
        self._wlock = lock
        self.uri = conn.target.uri
        self._spec = self._db.meta_get("spec")
        found = self._db.state_get()
        self._state_seq, raw = found if found is not None else (0, None)
        if self._spec is None or raw is None:
            raise CollectionError(f"collection {self.uri} is damaged (its meta rows are missing)",
                                  code="collection.damaged", collection=self.uri, reason="meta rows missing")
        self._raw_state = raw
        self._closed = False
        self._db.load_all()
        self._load_files()
        self._counts = self._counts_from_table()
        self.repair_report = self._repair() if repair and raw.get("pending") is not None else MilvusRepair()
        self._open_words()
        self._begin()

    # changes ------------------------------------------------------------------------------------------------

    def upsert_file(self, path: str, *, modality: str, size: int, mtime_ns: int, hash: str | None,
                    width: int | None = None, height: int | None = None, duration: float | None = None,
                    fps: float | None = None, has_audio: bool | None = None) -> int:
        self._require_open()
        path = str(path)
        extra = {"fps": None if fps is None else float(fps),
                 "has_audio": None if has_audio is None else int(bool(has_audio))}
        now = time.time()
        fid = self._by_path.get(path)
        if fid is None:
            fid = self._next_file_id
            self._next_file_id += 1
            self._remember(fid)
            self._files[fid] = FileRecord(fid, path, modality, int(size), int(mtime_ns), hash, width, height,
                                          duration, self.model_id, now, now, **extra)
            self._tracks[fid] = {}
            self._by_path[path] = fid
            self._account(fid, +1)
            return fid
        self._remember(fid)
        self._account(fid, -1)
        old = self._files[fid]
        self._files[fid] = FileRecord(fid, path, modality, int(size), int(mtime_ns), hash, width, height, duration,
                                      self.model_id, old.added_at, now, **extra)
        self._account(fid, +1)
        self._meta_dirty.add(fid)
        return fid

    def replace_items(self, file_id: int, tracks: Mapping[str, TrackData]) -> None:
        self._require_open()
        fid = int(file_id)
        if fid not in self._files:
            raise KeyError(f"no file with id {file_id}")
        clean: dict[str, TrackData] = {}
        for track, (offsets, vectors, snippets) in tracks.items():
            if track not in self.dims:
                raise ValueError(f"collection {self.uri} has no {track} index (it has {', '.join(sorted(self.dims))})")
            vecs = np.asarray(vectors, dtype=np.float32)
            vecs = vecs.reshape(len(offsets), -1) if vecs.size else np.zeros((len(offsets), self.dims[track]),
                                                                              dtype=np.float32)
            if vecs.shape != (len(offsets), self.dims[track]):
                raise ValueError(f"{track} vectors of shape {vecs.shape} for {len(offsets)} offsets of dimension "
                                 f"{self.dims[track]}")
            if snippets is not None and len(snippets) != len(offsets):
                raise ValueError(f"{len(snippets)} snippets for {len(offsets)} offsets")
            clean[track] = ([float(o) for o in offsets], vecs.copy(), None if snippets is None else list(snippets))
        self._remember(fid)
        self._account(fid, -1)
        self._tracks[fid] = {t: len(d[0]) for t, d in clean.items() if len(d[0])}
        self._account(fid, +1)
        self._new_items[fid] = clean

    def set_tags(self, file_id: int, tags: Sequence[tuple[str, float]]) -> None:
        self._require_open()
        fid = int(file_id)
        if fid not in self._files:
            raise KeyError(f"no file with id {file_id}")
        self._remember(fid)
        best: dict[str, float] = {}
        for tag, score in tags:
            best[str(tag)] = max(float(score), best.get(str(tag), float("-inf")))
        if best:
            self._tags[fid] = sorted_tags(best.items())
        else:
            self._tags.pop(fid, None)
        self._meta_dirty.add(fid)  # item rows carry the tags (the tag filter)

    def rename_file(self, file_id: int, new_path: str, mtime_ns: int) -> None:
        self._require_open()
        fid = int(file_id)
        if fid not in self._files:
            raise KeyError(f"no file with id {file_id}")
        new_path = str(new_path)
        if self._by_path.get(new_path, fid) != fid:
            raise ValueError(f"cannot rename file {file_id}: {new_path} is already in the collection")
        self._remember(fid)
        old = self._files[fid]
        del self._by_path[old.path]
        self._files[fid] = replace(old, path=new_path, mtime_ns=int(mtime_ns), updated_at=time.time())
        self._by_path[new_path] = fid
        self._meta_dirty.add(fid)

    def touch_file(self, file_id: int, *, mtime_ns: int) -> None:
        self._require_open()
        fid = int(file_id)
        if fid not in self._files:
            raise KeyError(f"no file with id {file_id}")
        self._remember(fid)
        self._files[fid] = replace(self._files[fid], mtime_ns=int(mtime_ns), updated_at=time.time())
        self._meta_dirty.add(fid)

    def remove_files(self, file_ids: Sequence[int]) -> None:
        self._require_open()
        for fid in {int(i) for i in file_ids}:
            if fid not in self._files:
                continue
            self._remember(fid)
            self._forget_words(fid)
            self._account(fid, -1)
            row = self._files.pop(fid)
            self._by_path.pop(row.path, None)
            self._tracks.pop(fid, None)
            self._tags.pop(fid, None)
            self._new_items.pop(fid, None)
            self._meta_dirty.discard(fid)

    def rollback(self) -> None:
        self._rollback_words()
        for fid, (row, tracks, tags) in self._undo.items():
            current = self._files.pop(fid, None)
            if current is not None:
                self._by_path.pop(current.path, None)
            self._tracks.pop(fid, None)
            self._tags.pop(fid, None)
            if row is not None:
                self._files[fid] = row
                self._by_path[row.path] = fid
                self._tracks[fid] = tracks
                if tags:
                    self._tags[fid] = tags
        self._counts = self._counts_from_table()
        self._begin()

    # index, close -------------------------------------------------------------------------------------------

    def maybe_reindex(self) -> dict:
        """milvus-lite, "auto" tracks: FLAT → HNSW32 once a track holds 50k vectors (back below 25k), as the local
        store switches Flat → HNSW32; a server starts with HNSW. Applied at once (release, new index, load)."""
        switched = {}
        for track in self.dims:
            if self._spec["factory"].get(track, "auto") != "auto" or not self._db.t.lite:
                continue
            current = self._index(track)
            target = auto_switch(current, int(self._counts.get(track, {}).get("items", 0)))
            if target is None:
                continue
            self._db.reindex(track, target)
            self._spec = {**self._spec, "index": {**self._spec["index"], track: target.to_json()}}
            self._db.meta_put("spec", self._spec)
            switched[track] = (current.factory, target.factory)
        return switched

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._wlock.release()
        finally:
            self._conn.release()
