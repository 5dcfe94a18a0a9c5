"""The writer's in-memory file table and the reads through it, which see the writer's uncommitted changes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import numpy as np

from xsearch.core.errors import CollectionError
from xsearch.core.types import Filters, Hit

from ..store import FileRecord, TrackData
from .filters import matches
from .reader import CommittedReads, State
from .rows import FILE_FIELDS, file_record, item_meta, sorted_tags


class WriterReads(CommittedReads):
    """Every file row in memory (the planner asks for each file it walks) with its item count per track and its
    tags, and the changes since the last commit: new items per file, the files whose metadata changed, and an
    undo record of each file changed (what commit writes, what rollback restores)."""

    _raw_state: dict  # the state row as this writer last wrote or read it
    _counts: dict  # per track: files and items, kept up to date change by change
    _closed: bool

    # the table ----------------------------------------------------------------------------------------------

    def _load_files(self) -> None:
        self._files: dict[int, FileRecord] = {}
        self._tracks: dict[int, dict[str, int]] = {}
        self._tags: dict[int, list[tuple[str, float]]] = {}
        self._by_path: dict[str, int] = {}
        for page in self._db.scan(self._coll("files"), "", FILE_FIELDS):
            for r in page:
                row = file_record(r)
                self._files[row.id] = row
                self._tracks[row.id] = {t: int(n) for t, n in json.loads(r["tracks"] or "{}").items()}
                tags = json.loads(r.get("tag_scores") or "[]")
                if tags:
                    self._tags[row.id] = sorted_tags(tags)
                self._by_path[row.path] = row.id
        self._next_file_id = max(int(self._raw_state.get("next_file_id", 1)), max(self._files, default=0) + 1)
        self._next_item_id = int(self._raw_state.get("next_item_id", 1))

    def _counts_from_table(self) -> dict:
        counts: dict[str, dict[str, int]] = {}
        for fid, row in self._files.items():
            counts.setdefault(row.modality, {"files": 0, "items": 0})["files"] += 1
            for track, n in self._tracks.get(fid, {}).items():
                counts.setdefault(track, {"files": 0, "items": 0})["items"] += int(n)
        return {m: c for m, c in counts.items() if c["files"] or c["items"]}

    def _begin(self) -> None:
        """Start a new batch of changes (the counts carry over: they are kept up to date change by change)."""
        self._undo: dict[int, tuple[FileRecord | None, dict, list]] = {}
        self._new_items: dict[int, dict[str, TrackData]] = {}
        self._meta_dirty: set[int] = set()

    def _remember(self, file_id: int) -> None:
        """Keep a file's row, item counts and tags as they were before its first change in this batch."""
        if file_id not in self._undo:
            self._undo[file_id] = (self._files.get(file_id), dict(self._tracks.get(file_id, {})),
                                   list(self._tags.get(file_id, [])))

    def _account(self, file_id: int, sign: int) -> None:
        """Add (+1) or take away (-1) a file and its items in the counts."""
        row = self._files.get(file_id)
        if row is None:
            return
        self._counts.setdefault(row.modality, {"files": 0, "items": 0})["files"] += sign
        for track, n in self._tracks.get(file_id, {}).items():
            self._counts.setdefault(track, {"files": 0, "items": 0})["items"] += sign * int(n)

    def _require_open(self) -> None:
        if self._closed:
            raise CollectionError(f"the writer of {self.uri} is closed", code="collection.closed",
                                  collection=self.uri)

    def _state(self) -> State:
        return State(int(self._raw_state["gen"]), self._counts, self._raw_state.get("creation", ""))

    # reads (see uncommitted changes) -----------------------------------------------------------------------

    def file(self, path: str) -> FileRecord | None:
        fid = self._by_path.get(str(path))
        return None if fid is None else self._files[fid]

    def file_by_id(self, file_id: int) -> FileRecord | None:
        return self._files.get(int(file_id))

    def files(self, *, under: str | None = None, modality: str | None = None) -> list[FileRecord]:
        out = list(self._files.values())
        if modality is not None:
            out = [f for f in out if f.modality == modality]
        if under is not None:
            prefix = str(under).rstrip("/") + "/"
            out = [f for f in out if f.path.startswith(prefix) or f.path == (prefix[:-1] or "/")]
        return sorted(out, key=lambda f: f.path)

    def files_by_hash(self, hash: str, size: int) -> list[FileRecord]:
        return sorted((f for f in self._files.values() if f.hash == hash and f.size == int(size)), key=lambda f: f.id)

    def file_sizes(self) -> set[int]:
        return {f.size for f in self._files.values()}

    def counts(self) -> dict[str, dict[str, int]]:
        return {m: dict(c) for m, c in self._counts.items() if c["files"] or c["items"]}

    def _hidden(self) -> set[int]:
        """Files whose committed items are stale for this writer (replaced or removed)."""
        return set(self._new_items) | {fid for fid in self._undo if fid not in self._files}

    def item(self, item_id: int) -> Hit | None:
        found = self._committed_item(item_id, int(self._raw_state["gen"]))
        if found is None or found[1] in self._hidden():
            return None
        hit, fid = found
        row = self._files[fid]  # its metadata as this writer sees it (a rename, a touch)
        hit.path, hit.size, hit.width, hit.height, hit.duration = row.path, row.size, row.width, row.height, \
            row.duration
        return hit

    def file_vectors(self, file_id: int, track: str | None = None) -> np.ndarray:
        fid = int(file_id)
        row = self._files.get(fid)
        tracks = self._tracks.get(fid, {})
        if row is None or not any(tracks.values()):
            return np.zeros((0, 0), dtype=np.float32)
        if track is None:
            track = row.modality if tracks.get(row.modality) else next(t for t, n in sorted(tracks.items()) if n)
        if fid in self._new_items:
            data = self._new_items[fid].get(track)
            if data is None:
                return np.zeros((0, self.dims.get(track, 0)), dtype=np.float32)
            order = np.argsort(np.asarray(data[0], dtype=np.float64), kind="stable")
            return np.asarray(data[1], dtype=np.float32)[order]
        return self._committed_vectors(fid, track, int(self._raw_state["gen"]))

    def iter_items(self, modality: str, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Committed items (uncommitted ones have no id yet), without the files this writer replaced or removed."""
        hidden = sorted(self._hidden())
        extra = f"file_id not in [{', '.join(map(str, hidden))}]" if hidden else ""
        yield from self._iter_committed(modality, batch, int(self._raw_state["gen"]), extra)

    def file_items(self, file_ids: Sequence[int]) -> dict[int, dict[str, TrackData]]:
        ids = [int(i) for i in file_ids if int(i) in self._files]
        out = {fid: dict(self._new_items[fid]) for fid in ids if fid in self._new_items}
        out.update(self._committed_file_items([i for i in ids if i not in self._new_items],
                                              int(self._raw_state["gen"])))
        return out

    def search_files(self, modality: str, queries: np.ndarray, k: int, *, filters: Filters | None = None,
                     exclude_paths: Sequence[str] = (), threshold: float | None = None,
                     params: dict | None = None) -> list[list[Hit]]:
        """Committed items (less replaced and removed files) merged with this writer's new items (exact)."""
        if modality not in self.dims:
            return [[] for _ in range(len(np.atleast_2d(queries)))]
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dims[modality])
        hidden = sorted(self._hidden())
        extra = [f"file_id not in [{', '.join(map(str, hidden))}]"] if hidden else []
        committed = self._search(modality, q, k, filters=filters, exclude_paths=exclude_paths, threshold=threshold,
                                 params=params, state=self._state(), extra=extra)
        excluded = set(exclude_paths)
        out = []
        for qi, hits in enumerate(committed):
            extra_hits = []
            for fid, tracks in self._new_items.items():
                row = self._files.get(fid)
                if modality not in tracks or row is None or row.path in excluded:
                    continue
                meta = item_meta(row, self._tags.get(fid, ()))
                if not matches(filters, meta):
                    continue
                offsets, vecs, snippets = tracks[modality]
                scores = np.asarray(vecs, dtype=np.float32) @ q[qi]
                j = int(np.argmax(scores))
                if threshold is not None and scores[j] < threshold:
                    continue
                extra_hits.append(Hit(0, float(scores[j]), row.path, modality, float(offsets[j]), -1,
                                      (snippets[j] if snippets else None) or None, row.width, row.height,
                                      row.duration, row.size))
            merged = sorted(hits + extra_hits, key=lambda h: -h.score)[:k]
            for rank, h in enumerate(merged, 1):
                h.rank = rank
            out.append(merged)
        return out


    def tags_of(self, file_id: int) -> list[tuple[str, float]]:
        return list(self._tags.get(int(file_id), []))

    def tag_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for tags in self._tags.values():
            for tag in {t for t, _ in tags}:
                counts[tag] = counts.get(tag, 0) + 1
        return dict(sorted(counts.items(), key=lambda tn: (-tn[1], tn[0])))
