"""The writer's commit, journaled, and the repair of a commit a crash interrupted.

Milvus has no multi-statement transactions, so a writer buffers its changes in memory and applies them in
:meth:`JournaledCommit.commit`:

1. ``state.pending = G+1`` and ``journal:<n>`` rows naming every file the commit touches;
2. upsert the file rows, insert the new item rows with ``gen = G+1`` (new item ids; a renamed or touched file's
   items are re-written with its new metadata) and the word rows of every file touched (words_writer.py);
3. publish: ``state.gen = G+1`` (a new state row: db.Db.state_get). Readers ignore items above the published
   generation (a search runs unfiltered and, only when a hit came from an unpublished commit, again with
   ``gen <= G``), so none of the new items is visible before this point and all are after it;
4. delete the replaced items (``gen <= G``) and removed files' rows, clear the journal and ``pending``.

Between 3 and 4 a reader may briefly see a replaced file's old items beside its new ones (grouped by file id,
so still one hit per file) and a removed file. A crash before 3 leaves items no reader sees and file rows
that may already describe the new content: the next writer deletes the journaled files entirely (rows and
items of every generation), so the next ``xsearch index`` embeds them again. A crash after 3 is completed by
the next writer (step 4). It also deletes items whose file row is missing. On milvus-lite every commit ends
with a flush.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xsearch.core.errors import CollectionLockedError

from .db import ID_CHUNK
from .rows import clip_snippet, file_row, item_meta
from .writer_reads import WriterReads

INSERT_BYTES = 16 << 20  # bytes of vectors per insert call
EXTRA_ROWS = 500  # word rows per insert call (each up to ~130 kB of text and grams)


@dataclass
class MilvusRepair:
    """What opening a writer repaired (shown in the index report)."""

    rolled_back_files: int = 0
    completed_commit: bool = False
    orphan_items: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.rolled_back_files or self.completed_commit or self.orphan_items)

    def __str__(self) -> str:
        parts = []
        if self.rolled_back_files:
            parts.append(f"an interrupted commit was undone: {self.rolled_back_files} file(s) will be embedded again")
        if self.completed_commit:
            parts.append("an interrupted commit was completed")
        if self.orphan_items:
            parts.append(f"{self.orphan_items} item(s) whose file was missing were deleted")
        return "; ".join(parts) or "nothing to repair"


class JournaledCommit(WriterReads):
    """Applying a writer's buffered changes to Milvus (the module docstring), and repairing after a crash."""

    _state_seq: int  # the sequence number of the newest state row (Db.state_get)
    _wlock: object  # the writer lock (writer_lock.py); a server's lease says when it was ``lost``

    def _parts(self) -> list[str]:
        """The Milvus collections holding rows per file and generation: one per track, and the words."""
        return [*self.dims, *self._extra_parts()]

    # what the keyword index adds (words_writer.py overrides them)
    def _extra_parts(self) -> list[str]:
        return []

    def _extra_rows(self, dirty: Sequence[int], gen: int, new_gen: int) -> dict[str, list[dict]]:
        return {}

    def _extra_state(self) -> dict:
        return {}

    def _put_state(self, state: dict) -> None:
        """A new state row (db.Db.state_get says why not an upsert of one)."""
        self._state_seq = max(0, self._state_seq) + 1
        self._db.state_put(self._state_seq, state)

    def commit(self) -> None:
        """Apply the changes since the last commit (steps 1–4 of the module docstring): readers see all or none."""
        self._require_open()
        if not self._undo:
            return
        if getattr(self._wlock, "lost", False):
            raise CollectionLockedError(f"this writer lost its lease on {self.uri} (another writer took over after "
                                        "it stalled); its changes were not saved", collection=self.uri)
        db, gen = self._db, int(self._raw_state["gen"])
        new_gen = gen + 1
        dirty = sorted(self._undo)
        removed = [fid for fid in dirty if fid not in self._files]
        # rows first (reads of the committed state happen before anything is written)
        per_track, next_item = self._item_rows(dirty, gen, new_gen)
        per_track.update(self._extra_rows(dirty, gen, new_gen))  # a file's words (words_writer.py)
        state = {**self._raw_state, "pending": new_gen, "next_file_id": self._next_file_id, "next_item_id": next_item,
                 **self._extra_state()}
        # 1. journal
        self._put_state(state)
        db.meta_put_many(_journal_rows(dirty, removed))
        # 2. file rows, new item rows (invisible: gen > published)
        self._write_rows(dirty, per_track)
        # 3. publish
        state = {**state, "gen": new_gen, "counts": self.counts()}
        self._put_state(state)
        self._raw_state = state
        # 4. old items of replaced / re-written / removed files, removed file rows, journal
        self._finish([fid for fid in dirty if self._undo[fid][0] is not None], removed, new_gen)
        self._next_item_id = next_item
        self._begin()

    def _item_rows(self, dirty: Sequence[int], gen: int, new_gen: int) -> tuple[dict[str, list[dict]], int]:
        """The item rows the commit inserts, per track, and the next free item id: the new items, and the committed
        items of files whose metadata changed (renamed, touched, tagged), re-written with it."""
        rewrite = sorted(fid for fid in self._meta_dirty if fid in self._files and fid not in self._new_items
                         and self._undo[fid][0] is not None)
        carried = self._committed_file_items(rewrite, gen) if rewrite else {}
        per_track: dict[str, list[dict]] = {}
        next_item = self._next_item_id
        for fid in dirty:
            row = self._files.get(fid)
            if row is None:
                continue
            data = self._new_items.get(fid) if fid in self._new_items else carried.get(fid, {})
            meta = item_meta(row, self._tags.get(fid, ()))
            for track, (offsets, vecs, snippets) in data.items():
                for j, offset in enumerate(offsets):
                    per_track.setdefault(track, []).append(
                        {"id": next_item, "file_id": fid, "gen": new_gen, "at": float(offset),
                         "snippet": clip_snippet(snippets[j] if snippets else None), **meta, "vector": vecs[j]})
                    next_item += 1
        return per_track, next_item

    def _write_rows(self, dirty: Sequence[int], per_track: dict[str, list[dict]]) -> None:
        """Upsert the rows of the changed files still here, insert the new item rows (INSERT_BYTES per call)."""
        db = self._db
        file_rows = [file_row(self._files[fid], self._tracks.get(fid, {}), self._tags.get(fid, ()))
                     for fid in dirty if fid in self._files]
        for start in range(0, len(file_rows), 2000):
            db.call("write", db.c.upsert, self._coll("files"), file_rows[start:start + 2000])
        for track, rows in per_track.items():
            step = max(1, INSERT_BYTES // (4 * self.dims[track] + 256)) if track in self.dims else EXTRA_ROWS
            for start in range(0, len(rows), step):
                db.call("write", db.c.insert, self._coll(track), rows[start:start + step])

    def _finish(self, dirty: Sequence[int], removed: Sequence[int], gen: int) -> None:
        """Step 4: delete the items of ``dirty`` files older than ``gen`` and everything of ``removed`` files, clear
        the journal and ``pending`` (and flush, on milvus-lite)."""
        db = self._db
        for start in range(0, len(dirty), ID_CHUNK):
            ids = ", ".join(map(str, dirty[start:start + ID_CHUNK]))
            for track in self._parts():
                db.call("write", db.c.delete, self._coll(track), filter=f"file_id in [{ids}] and gen < {gen}")
        for start in range(0, len(removed), ID_CHUNK):
            ids = ", ".join(map(str, removed[start:start + ID_CHUNK]))
            db.call("write", db.c.delete, self._coll("files"), filter=f"id in [{ids}]")
            for track in self._parts():
                db.call("write", db.c.delete, self._coll(track), filter=f"file_id in [{ids}]")
        db.meta_delete('key like "journal:%"')
        state = {**self._raw_state, "pending": None}
        self._put_state(state)
        self._raw_state = state
        if db.t.lite:
            for part in ("files", *self._parts(), "meta"):
                db.call("flush", db.c.flush, self._coll(part))

    def _repair(self) -> MilvusRepair:
        """Finish or undo the commit a crash interrupted (the module docstring), then drop orphan items."""
        db = self._db
        report = MilvusRepair()
        state = self._raw_state
        gen, pending = int(state["gen"]), int(state["pending"])
        journal: dict[int, dict] = {}
        for chunk in db.meta_scan("journal:").values():
            removed_ids = set(chunk.get("removed", []))
            journal.update((int(fid), {"removed": fid in removed_ids}) for fid in chunk.get("ids", []))
        if gen < pending:  # not published: the batch's files go entirely; the next index run embeds them again
            ids = sorted(journal)
            for start in range(0, len(ids), ID_CHUNK):
                chunk = ", ".join(map(str, ids[start:start + ID_CHUNK]))
                db.call("write", db.c.delete, self._coll("files"), filter=f"id in [{chunk}]")
                for track in self._parts():
                    db.call("write", db.c.delete, self._coll(track), filter=f"file_id in [{chunk}]")
            report.rolled_back_files = sum(1 for fid in ids if fid in self._files)
            for fid in ids:
                row = self._files.pop(fid, None)
                if row is not None:
                    self._by_path.pop(row.path, None)
                self._tracks.pop(fid, None)
                self._tags.pop(fid, None)
            for track in self._parts():  # anything else the unpublished commit wrote
                db.call("write", db.c.delete, self._coll(track), filter=f"gen > {gen}")
            new_gen = gen + 1
        else:  # published: complete step 4
            new_gen = gen
            report.completed_commit = True
        self._raw_state = {**state, "gen": new_gen, "pending": new_gen}
        self._put_state(self._raw_state)
        orphans = set()
        for track in self._parts():
            for page in db.scan(self._coll(track), "", ["file_id"]):
                orphans.update(int(r["file_id"]) for r in page if int(r["file_id"]) not in self._files)
            if orphans:
                report.orphan_items += db.count(self._coll(track),
                                                f"file_id in [{', '.join(map(str, sorted(orphans)))}]")
        removed = sorted({fid for fid, v in journal.items() if v.get("removed")} | orphans)
        self._counts = self._counts_from_table()
        self._raw_state = {**self._raw_state, "counts": self._counts}
        self._finish(sorted(set(journal) - set(removed)) if gen == pending else [], removed, new_gen)
        return report


def _journal_rows(dirty: Sequence[int], removed: Sequence[int], per_row: int = 4000) -> dict[str, dict]:
    """The files of a commit in flight as meta rows ``journal:<n>`` of up to ``per_row`` ids each."""
    gone = set(removed)
    rows = {}
    for n, start in enumerate(range(0, len(dirty), per_row)):
        ids = [int(i) for i in dirty[start:start + per_row]]
        rows[f"journal:{n:06d}"] = {"ids": ids, "removed": [i for i in ids if i in gone]}
    return rows
