"""The writer's side of the Milvus keyword index (words.py): each file's lines buffered in memory until the
journaled commit (commit.py) writes them with the new generation, which text tracks read each file, line counts,
and the collection's text settings (published in the state row)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from .rows import item_meta
from .words import NAME_TRACK, PART, WordsReads, counts_of, create_words, line_of, newest, word_row


class WordsWriter(WordsReads):
    """Mixed into the writer (writer.py), before the journaled commit: it supplies the commit's word rows
    (:meth:`_extra_rows`), state (:meth:`_extra_state`) and parts (:meth:`_extra_parts`)."""

    _files: dict
    _tags: dict
    _raw_state: dict
    _meta_dirty: set
    _undo: dict

    # opening --------------------------------------------------------------------------------------------------

    def _open_words(self) -> None:
        """Load which files have words and which tracks read them; add the words collection to a collection made
        before keyword search (with every file's name) where this Milvus has full-text search."""
        self._settings = dict(self._raw_state.get("text_settings", {}))
        self._next_word_id = int(self._raw_state.get("next_word_id", 1))
        self._wcounts: dict[int, dict[str, int]] = {}
        self._reads: dict[int, set[str]] = {}
        self._committed_words: set[int] = set()
        if self._db.features.full_text and not self._spec.get(PART):
            self._add_words()
        if not self.supports_keywords:
            return
        gen = int(self._raw_state["gen"])
        rows = [r for page in self._db.scan(self._coll(PART), f"gen <= {gen}", ["file_id", "gen", "track", "reads"])
                for r in page]
        for fid, rs in newest(rows).items():
            if fid not in self._files:
                continue
            counts: dict[str, int] = {}
            for r in rs:
                counts[r["track"]] = counts.get(r["track"], 0) + 1
                if r["reads"]:
                    self._reads[fid] = set(json.loads(r["reads"]))
            self._wcounts[fid] = counts
            self._committed_words.add(fid)

    def _add_words(self) -> None:
        """An older collection gets ``NAME__words`` holding every file's name (at the published generation), then
        ``words`` in its spec (a crash before that: created again by the next writer)."""
        db = self._db
        create_words(db)
        gen = int(self._raw_state["gen"])
        rows, nid = [], self._next_word_id
        for fid, row in sorted(self._files.items()):
            rows.append(word_row(nid, fid, gen, {"track": NAME_TRACK, "text": row.path.rsplit("/", 1)[-1]},
                                 row.modality, item_meta(row, self._tags.get(fid, ()))))
            nid += 1
        for start in range(0, len(rows), 500):
            db.call("write", db.c.insert, self._coll(PART), rows[start:start + 500])
        if db.t.lite:
            db.call("flush", db.c.flush, self._coll(PART))
        self._next_word_id = nid
        state = {**self._raw_state, "next_word_id": nid,
                 PART: counts_of({r["file_id"]: {NAME_TRACK: 1} for r in rows})}
        self._put_state(state)
        self._raw_state = state
        self._spec = {**self._spec, PART: True}
        db.meta_put("spec", self._spec)

    # the batch ------------------------------------------------------------------------------------------------

    def _begin(self) -> None:
        super()._begin()
        self._wlines: dict[int, list[dict]] = {}
        self._wundo: dict[int, tuple] = {}
        self._settings_dirty = False

    def _remember_words(self, fid: int) -> None:
        if fid not in self._wundo:
            self._wundo[fid] = (set(self._reads[fid]) if fid in self._reads else None,
                                dict(self._wcounts[fid]) if fid in self._wcounts else None)

    def _forget_words(self, fid: int) -> None:
        """A removed file's words go with it (writer.remove_files)."""
        if getattr(self, "_wcounts", None) is None:
            return
        self._remember_words(fid)
        self._wlines.pop(fid, None)
        self._wcounts.pop(fid, None)
        self._reads.pop(fid, None)

    def _rollback_words(self) -> None:
        for fid, (reads, counts) in self._wundo.items():
            for table, value in ((self._reads, reads), (self._wcounts, counts)):
                if value is None:
                    table.pop(fid, None)
                else:
                    table[fid] = value
        self._settings = dict(self._raw_state.get("text_settings", {}))

    def _committed_lines(self, file_ids: Sequence[int], gen: int | None = None) -> dict[int, list[dict]]:
        """The committed lines (not the name) of these files."""
        ids = [f for f in file_ids if f in self._committed_words]
        if not ids:
            return {}
        gen = int(self._raw_state["gen"]) if gen is None else gen
        return {fid: [line_of(r) for r in rs if r["track"] != NAME_TRACK]
                for fid, rs in newest(self._lines_of(ids, gen)).items()}

    def _set_lines(self, fid: int, lines: list[dict]) -> None:
        self._remember(fid)
        self._remember_words(fid)
        self._meta_dirty.add(fid)  # the commit carries its items over (commit._item_rows)
        self._wlines[fid] = lines
        counts = {NAME_TRACK: 1}
        for line in lines:
            counts[line["track"]] = counts.get(line["track"], 0) + 1
        self._wcounts[fid] = counts

    # the protocol ---------------------------------------------------------------------------------------------

    def replace_text(self, file_id: int, lines: Sequence[Mapping], read: Sequence[str]) -> None:
        self._require_open()
        if not self.supports_keywords:
            raise self._unsupported()
        fid = int(file_id)
        if fid not in self._files:
            raise KeyError(f"no file with id {file_id}")
        read_set = set(read) | {NAME_TRACK}
        if fid in self._wlines:
            base = self._wlines[fid]
        elif set(self._wcounts.get(fid, {})) <= read_set:  # every track it has is read again: nothing to keep
            base = []
        else:
            base = self._committed_lines([fid]).get(fid, [])
        new = [{"track": str(line["track"]), "text": str(line["text"]), "offset": float(line.get("offset", 0.0)),
                "box": line.get("box"), "confidence": line.get("confidence")}
               for line in lines if line.get("track") in read_set]
        self._set_lines(fid, [line for line in base if line["track"] not in read_set] + new)
        self._reads[fid] = self._reads.get(fid, set()) | read_set

    def set_text_setting(self, key: str, value) -> None:
        self._require_open()
        if not self.supports_keywords:
            raise self._unsupported()
        self._settings = {**self._settings, key: value}
        self._settings_dirty = True

    def drop_text_track(self, track: str) -> int:
        self._require_open()
        if not self.supports_keywords:
            raise self._unsupported()
        fids = sorted(f for f in self._files if self._wcounts.get(f, {}).get(track) or track in self._reads.get(f, ()))
        gone = sum(self._wcounts.get(f, {}).get(track, 0) for f in fids)
        committed = self._committed_lines([f for f in fids if f not in self._wlines])
        for fid in fids:
            base = self._wlines[fid] if fid in self._wlines else committed.get(fid, [])
            self._set_lines(fid, [line for line in base if line["track"] != track])
            self._reads[fid] = self._reads.get(fid, set()) - {track}
        return int(gone)

    def unread_files(self, track: str, modalities: Sequence[str]) -> set[int]:
        if not self.supports_keywords:
            raise self._unsupported()
        wanted = set(modalities)
        return {fid for fid, row in self._files.items() if row.modality in wanted
                and track not in self._reads.get(fid, ())}

    def keyword_counts(self) -> dict[str, dict[str, int]]:
        return counts_of(self._wcounts) if self.supports_keywords else {}

    def text_settings(self) -> dict:
        return dict(self._settings) if self.supports_keywords else {}

    def commit(self) -> None:
        self._require_open()
        if not self._undo and self._settings_dirty:  # only a setting changed: a new state row says it
            state = {**self._raw_state, **self._extra_state()}
            self._put_state(state)
            self._raw_state = state
            self._settings_dirty = False
            if self._db.t.lite:
                self._db.call("flush", self._db.c.flush, self._coll("meta"))
        super().commit()

    # what the journaled commit asks (commit.py) ---------------------------------------------------------------

    def _extra_parts(self) -> list[str]:
        return [PART] if self._spec.get(PART) else []

    def _extra_state(self) -> dict:
        if not self.supports_keywords:
            return {}
        return {PART: counts_of(self._wcounts), "text_settings": dict(self._settings),
                "next_word_id": self._next_word_id}

    def _extra_rows(self, dirty: Sequence[int], gen: int, new_gen: int) -> dict[str, list[dict]]:
        """The word rows of every changed file still here: its new lines, or its committed ones carried over with
        its new metadata, and its name (the generation protocol: words.py)."""
        if not self.supports_keywords:
            return {}
        carried = self._committed_lines([f for f in dirty if f in self._files and f not in self._wlines], gen)
        rows, nid = [], self._next_word_id
        for fid in dirty:
            row = self._files.get(fid)
            if row is None:
                self._committed_words.discard(fid)
                continue
            lines = self._wlines[fid] if fid in self._wlines else carried.get(fid, [])
            meta = item_meta(row, self._tags.get(fid, ()))
            name = {"track": NAME_TRACK, "text": row.path.rsplit("/", 1)[-1], "offset": 0.0}
            n = 1 + len(lines)
            rows.append(word_row(nid, fid, new_gen, name, row.modality, meta, self._reads.get(fid, ()), n))
            nid += 1
            for line in lines:
                rows.append(word_row(nid, fid, new_gen, line, row.modality, meta, lines=n))
                nid += 1
            counts = {NAME_TRACK: 1}
            for line in lines:
                counts[line["track"]] = counts.get(line["track"], 0) + 1
            self._wcounts[fid] = counts
            self._committed_words.add(fid)
        self._next_word_id = nid
        return {PART: rows}
