"""Reading a Milvus collection: what the reader and the writer share (:class:`CommittedReads`: spec, items of
the published generation, search) and the long-lived reader, :class:`MilvusStore`.

Search: best item per file is Milvus's ``group_by_field="file_id"``; milvus-lite groups an over-fetch of 10×limit
items, so when that may have missed files (more items than it looked at) or a post-filter dropped some, the
store falls back to over-fetching items and grouping them itself, as the local store does.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from xsearch.core.errors import CollectionError
from xsearch.core.types import Filters, Hit

from ..store import FileRecord, Store, TrackData, assemble_items
from .connection import Connection
from .db import ID_CHUNK, MAX_TOPK, Db
from .filters import Compiled, compile_filters, quote
from .indexes import IndexChoice, search_params
from .rows import FILE_FIELDS, HIT_FIELDS, file_record, hit_from_entity, sorted_tags, unpack_hit
from .words import WordsReader

#: How long a search reuses the state a reader read just before (seconds): Engine.search counts files, then searches
STATE_REUSE_S = 0.5
LITE_GROUP_OVERFETCH = 10  # milvus-lite's group_by looks at limit × 10 items (its engine/collection.py)


@dataclass
class State:
    """The published state a read sees: generation, item and file counts per track, creation id."""

    gen: int
    counts: dict
    creation: str


class CommittedReads:
    """What the reader and the writer share: spec, per-call state, item reads and search. A subclass sets
    ``_db``, ``uri`` and ``_spec`` and says which state a call reads (:meth:`_state`)."""

    _db: Db
    uri: str
    _spec: dict

    # what the collection is --------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._spec["model_id"]

    @property
    def model_spec(self) -> str:
        return self._spec["model_spec"]

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(d) for m, d in self._spec["dims"].items()}

    def _index(self, track: str) -> IndexChoice:
        return IndexChoice.from_json(self._spec["index"][track])

    def _state(self) -> State:
        raise NotImplementedError

    def _fresh_state(self) -> State:
        """The state as published now (a reader may reuse a state read a moment ago: MilvusStore._state)."""
        return self._state()

    def _coll(self, track: str) -> str:
        return self._db.t.coll(track)

    # items ------------------------------------------------------------------------------------------------------

    def _item_expr(self, gen: int, extra: str = "") -> str:
        return f"gen <= {gen}" + (f" and ({extra})" if extra else "")

    def _items_of(self, file_ids: Sequence[int], gen: int, tracks: Iterable[str],
                  fields: Sequence[str]) -> dict[str, list[dict]]:
        """Item rows (committed up to ``gen``) of these files, per track."""
        out: dict[str, list[dict]] = {}
        ids = sorted({int(i) for i in file_ids})
        for track in tracks:
            rows: list[dict] = []
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ids[start:start + ID_CHUNK]
                expr = self._item_expr(gen, f"file_id in [{', '.join(map(str, chunk))}]")
                for page in self._db.scan(self._coll(track), expr, list(fields)):
                    rows += page
            if rows:
                out[track] = rows
        return out

    def _committed_item(self, item_id: int, gen: int) -> tuple[Hit, int] | None:
        """(the item as a Hit, its file id), or None."""
        for track in self.dims:
            rows = self._db.call("read", self._db.c.query, self._coll(track),
                                 filter=self._item_expr(gen, f"id == {int(item_id)}"), output_fields=HIT_FIELDS,
                                 limit=1)
            if rows:
                return hit_from_entity(track, item_id, 0.0, rows[0]), int(rows[0]["file_id"])
        return None

    def _committed_file_items(self, file_ids: Sequence[int], gen: int) -> dict[int, dict[str, TrackData]]:
        found: dict[int, dict[str, list]] = {}
        for track, rows in self._items_of(file_ids, gen, self.dims, ["file_id", "at", "snippet", "vector"]).items():
            for r in rows:
                found.setdefault(int(r["file_id"]), {}).setdefault(track, []).append(
                    (float(r["at"]), int(r["id"]), r["vector"], r.get("snippet") or None))
        return assemble_items(found)

    def _committed_vectors(self, file_id: int, track: str, gen: int) -> np.ndarray:
        rows = self._items_of([file_id], gen, [track], ["at", "vector"]).get(track, [])
        rows.sort(key=lambda r: (float(r["at"]), int(r["id"])))
        if not rows:
            return np.zeros((0, self.dims.get(track, 0)), dtype=np.float32)
        return np.asarray([r["vector"] for r in rows], dtype=np.float32)

    def _iter_committed(self, track: str, batch: int, gen: int, extra: str = ""):
        if track not in self.dims:
            return
        for rows in self._db.scan(self._coll(track), self._item_expr(gen, extra), ["file_id", "vector"], batch):
            yield (np.asarray([r["id"] for r in rows], dtype=np.int64),
                   np.asarray([r["file_id"] for r in rows], dtype=np.int64),
                   np.asarray([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), self.dims[track]))

    # search ---------------------------------------------------------------------------------------------------

    def _search(self, track: str, queries: np.ndarray, k: int, *, filters: Filters | None,
                exclude_paths: Sequence[str], threshold: float | None, params: dict | None, state: State,
                extra: Sequence[str] = ()) -> list[list[Hit]]:
        """Best files per query. Searched first without a generation filter (a filter costs on every search);
        when a hit comes from a commit still in progress (``gen`` above the published one), searched again with
        ``gen <= published``."""
        n_items = int(state.counts.get(track, {}).get("items", 0))
        if track not in self.dims or n_items == 0 or k <= 0:
            return [[] for _ in range(len(queries))]
        data = [q for q in np.asarray(queries, dtype=np.float32)]
        like_full = self._db.features.like_full
        unfiltered = compile_filters(filters, exclude_paths=exclude_paths, extra=extra, like_full=like_full)
        results = self._search_with(track, data, k, unfiltered, threshold, params, n_items, newest=state.gen)
        if results is None:  # a newer generation may have been published since ``state`` was read: read it again
            fresh = self._fresh_state()
            if fresh.gen > state.gen:
                state = fresh
                n_items = int(state.counts.get(track, {}).get("items", 0))
                results = self._search_with(track, data, k, unfiltered, threshold, params, n_items,
                                            newest=state.gen)
        if results is None:
            results = self._search_with(track, data, k, compile_filters(filters, exclude_paths=exclude_paths,
                                                                         gen=state.gen, extra=extra,
                                                                         like_full=like_full),
                                        threshold, params, n_items, newest=None)
        for hits in results:
            for rank, h in enumerate(hits, 1):
                h.rank = rank
        return results

    def _search_with(self, track: str, data: list, k: int, compiled: Compiled, threshold: float | None,
                     params: dict | None, n_items: int, newest: int | None) -> list[list[Hit]] | None:
        """None when ``newest`` is given and a hit is newer than it."""
        choice = self._index(track)
        coll = self._coll(track)
        results: list[list[Hit] | None] = [None] * len(data)
        limit = min(int(k), MAX_TOPK)

        def newer(raw) -> bool:
            return newest is not None and any(int(unpack_hit(h)[2]["gen"]) > newest for hits in raw for h in hits)

        # 1. Milvus groups by file: one call for every query (where it can: features.py)
        todo = list(range(len(data)))
        if self._db.features.group_by:
            raw = self._db.call("search", self._db.c.search, coll, data=data, limit=limit, filter=compiled.expr,
                                output_fields=HIT_FIELDS, search_params=search_params(choice, params, limit),
                                anns_field="vector", group_by_field="file_id")
            if newer(raw):
                return None
            grouped_complete = not self._db.t.lite or n_items <= LITE_GROUP_OVERFETCH * limit
            todo = []
            for qi, hits in enumerate(raw):
                best, done, dropped = _best_files(track, hits, k, compiled, threshold)
                if done or (len(hits) < limit and grouped_complete and not dropped):
                    results[qi] = best
                else:
                    todo.append(qi)
        # 2. where grouping may have missed files: over-fetch items and group here (as the local store does)
        fetch = min(n_items, MAX_TOPK, max(4 * k, k + 8))
        while todo:
            raw = self._db.call("search", self._db.c.search, coll, data=[data[i] for i in todo], limit=fetch,
                                filter=compiled.expr, output_fields=HIT_FIELDS,
                                search_params=search_params(choice, params, fetch), anns_field="vector")
            if newer(raw):
                return None
            again = []
            for qi, hits in zip(todo, raw):
                best, done, _ = _best_files(track, hits, k, compiled, threshold)
                if done or len(hits) < fetch or fetch >= min(n_items, MAX_TOPK):
                    results[qi] = best
                else:
                    again.append(qi)
            todo = again
            fetch = min(n_items, MAX_TOPK, fetch * 4)
        return results  # type: ignore[return-value]

    def stats(self) -> dict:
        state = self._state()
        per = {}
        for track, dim in self.dims.items():
            c = state.counts.get(track, {"files": 0, "items": 0})
            choice = self._index(track)
            per[track] = {"dim": dim, "files": int(c.get("files", 0)), "items": int(c.get("items", 0)),
                          "vectors": int(c.get("items", 0)), "index": choice.label,
                          "policy": self._spec["factory"].get(track, "auto"), "trained": True,
                          "search_defaults": choice.search, "memory_bytes": int(c.get("items", 0)) * dim * 4,
                          "gpu": False, "gpu_note": ""}
        return {"path": self.uri, "store": "milvus-lite" if self._db.t.lite else "milvus", "model_id": self.model_id,
                "model_spec": self.model_spec, "format_version": int(self._spec.get("format_version", 1)),
                "created_at": self._spec.get("created_at"), "generation": state.gen, "gpu_available": False,
                "modalities": per}


def _best_files(track: str, hits, k: int, compiled: Compiled, threshold: float | None):
    """The first k distinct files of one ranked hit list → (hits, done, dropped): done when k were found or the
    threshold was crossed; dropped when the post-filter removed any."""
    out, seen, dropped = [], set(), False
    for h in hits:
        item_id, score, e = unpack_hit(h)
        fid = int(e["file_id"])
        if fid in seen:
            continue
        if threshold is not None and score < threshold:
            return out, True, dropped
        if not compiled.keep(e):
            dropped = True
            continue
        seen.add(fid)
        out.append(hit_from_entity(track, item_id, score, e))
        if len(out) == k:
            return out, True, dropped
    return out, False, dropped


class MilvusStore(WordsReader, CommittedReads, Store):
    """A long-lived reader: each call reads the published generation (one small query) and sees only items up to
    it, so a commit in progress is invisible and a finished one shows on the next call."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._db = Db(conn)
        self.uri = conn.target.uri
        self._lock = threading.RLock()
        self._closed = False
        self._cached_state: tuple[float, State] | None = None
        self._spec = self._read_spec()
        self._creation = self._spec.get("creation", "")
        self._db.load_all()

    def _read_spec(self) -> dict:
        spec = self._db.meta_get("spec") if self._db.exists() else None
        if spec is None:
            raise CollectionError(f"no collection at {self.uri}", code="collection.missing", collection=self.uri)
        return spec

    def _recent_state(self) -> State:
        """The state read less than STATE_REUSE_S ago, else a fresh read: what a search starts from (an
        Engine.search reads the file counts just before; each read is a round trip). A search that meets a
        generation newer than this reads it again (CommittedReads._search), so a commit is never half-seen by a
        search; every other call (counts, file_count, items) reads the state afresh."""
        cached = self._cached_state
        if cached is not None and time.monotonic() - cached[0] < STATE_REUSE_S:
            return cached[1]
        return self._fresh_state()

    def _state(self) -> State:
        return self._fresh_state()

    def _fresh_state(self) -> State:
        found = self._db.state_get()  # one query: a gone collection fails it with collection.missing
        raw = found[1] if found is not None else None
        if raw is None:
            raise CollectionError(f"no collection at {self.uri}", code="collection.missing", collection=self.uri)
        if raw.get("creation") != self._creation:  # deleted and created again (--rebuild): take the new spec
            with self._lock:
                self._spec = self._read_spec()
                self._creation = self._spec.get("creation", "")
        state = State(int(raw["gen"]), raw.get("counts", {}), raw.get("creation", ""))
        self._cached_state = (time.monotonic(), state)
        return state

    @property
    def generation(self) -> object:
        state = self._state()
        return state.creation, state.gen

    def file(self, path: str) -> FileRecord | None:
        rows = self._db.call("read", self._db.c.query, self._coll("files"), filter=f"path == {quote(path)}",
                             output_fields=FILE_FIELDS, limit=1)
        return file_record(rows[0]) if rows else None

    def file_by_id(self, file_id: int) -> FileRecord | None:
        rows = self._db.call("read", self._db.c.query, self._coll("files"), filter=f"id == {int(file_id)}",
                             output_fields=FILE_FIELDS, limit=1)
        return file_record(rows[0]) if rows else None

    def _file_tracks(self, file_id: int) -> tuple[dict[str, int], str | None]:
        rows = self._db.call("read", self._db.c.query, self._coll("files"), filter=f"id == {int(file_id)}",
                             output_fields=["tracks", "modality"], limit=1)
        return (json.loads(rows[0]["tracks"] or "{}"), rows[0]["modality"]) if rows else ({}, None)

    def files(self, *, under: str | None = None, modality: str | None = None) -> list[FileRecord]:
        terms, prefix = [], None
        if modality is not None:
            terms.append(f"modality == {quote(modality)}")
        if under is not None:
            prefix = str(under).rstrip("/") + "/"
            like = re.split(r"[%_\\\\]", prefix)[0] + "%"  # a prefix like (all Milvus 2.3 takes), checked below
            terms.append(f"(path like {quote(like)} or path == {quote(prefix[:-1] or '/')})")
        rows = [r for page in self._db.scan(self._coll("files"), " and ".join(terms), FILE_FIELDS) for r in page]
        out = [file_record(r) for r in rows]
        if prefix is not None:
            out = [f for f in out if f.path.startswith(prefix) or f.path == (prefix[:-1] or "/")]
        return sorted(out, key=lambda f: f.path)

    def files_by_hash(self, hash: str, size: int) -> list[FileRecord]:
        expr = f"hash == {quote(hash)} and size == {int(size)}"
        return [file_record(r) for page in self._db.scan(self._coll("files"), expr, FILE_FIELDS) for r in page]

    def item(self, item_id: int) -> Hit | None:
        found = self._committed_item(item_id, self._state().gen)
        return None if found is None else found[0]

    def tags_of(self, file_id: int) -> list[tuple[str, float]]:
        rows = self._db.call("read", self._db.c.query, self._coll("files"), filter=f"id == {int(file_id)}",
                             output_fields=["tag_scores"], limit=1)
        return sorted_tags(json.loads(rows[0]["tag_scores"] or "[]")) if rows else []

    def tag_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for page in self._db.scan(self._coll("files"), 'tag_scores != "[]"', ["tag_scores"]):
            for r in page:
                for tag in {t for t, _ in json.loads(r["tag_scores"] or "[]")}:
                    counts[tag] = counts.get(tag, 0) + 1
        return dict(sorted(counts.items(), key=lambda tn: (-tn[1], tn[0])))

    def file_sizes(self) -> set[int]:
        return {int(r["size"]) for page in self._db.scan(self._coll("files"), "", ["size"]) for r in page}

    def counts(self) -> dict[str, dict[str, int]]:
        return {m: dict(c) for m, c in self._state().counts.items()}


    def search_files(self, modality: str, queries: np.ndarray, k: int, *, filters: Filters | None = None,
                     exclude_paths: Sequence[str] = (), threshold: float | None = None,
                     params: dict | None = None) -> list[list[Hit]]:
        state = self._recent_state()
        if modality not in self.dims:
            return [[] for _ in range(len(np.atleast_2d(queries)))]
        q = np.asarray(queries, dtype=np.float32).reshape(-1, self.dims[modality])
        return self._search(modality, q, k, filters=filters, exclude_paths=exclude_paths, threshold=threshold,
                            params=params, state=state)

    def file_vectors(self, file_id: int, track: str | None = None) -> np.ndarray:
        state = self._state()
        tracks, modality = self._file_tracks(file_id)
        if not tracks:
            return np.zeros((0, 0), dtype=np.float32)
        if track is None:
            track = modality if tracks.get(modality) else next(t for t, n in sorted(tracks.items()) if n)
        return self._committed_vectors(file_id, track, state.gen)

    def iter_items(self, modality: str, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        yield from self._iter_committed(modality, batch, self._state().gen)

    def file_items(self, file_ids: Sequence[int]) -> dict[int, dict[str, TrackData]]:
        return self._committed_file_items(file_ids, self._state().gen)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.release()
