"""The Milvus store's keyword index: words of text tracks (passages, OCR lines) and file names in ``NAME__words``,
searched by Milvus's own BM25 full-text search where the Milvus has it (features.py: milvus-lite 3.x, Milvus 2.5+).

One row per line: its file, track (``passage``, ``ocr``, ``name``), offset, text, box (JSON, "" for none),
confidence (-1 for none), the file's metadata (as on item rows, so :mod:`.filters` compile to one expression) and
``grams``: the line's folded character n-grams as tokens (index/words.py), which a BM25 ``Function`` turns into the
sparse vector ``sparse``. Milvus's analyzers split on words, so OCR's joined words (``INVOICE2031PAID``) and Chinese
would not match whole-word tokens; n-gram tokens match inside words, as the local store's FTS5 trigrams do. BM25 picks
the candidate lines; the ranking (share of the query's words held, then BM25) is index/words.py's, as in the local
store, on the candidates' lines.

Words follow the journaled commit (commit.py) like items: every row has the generation that wrote it, a commit
re-writes all the words of each file it touches (new lines, or the committed ones carried over with the file's new
metadata: a rename changes its ``name`` line), readers see rows up to the published generation (and, between publish
and clean-up, only the newest generation of each file), and step 4 deletes the replaced rows. The ``name`` row of a
file also says which text tracks have read it (``reads``). Line counts per track and the collection's text settings
(``--ocr``) are in the state row, published with the generation.

Collections made before keyword search (no ``words`` in their spec) still open and search by vectors; their first
writer on a Milvus with full-text search adds ``NAME__words`` with every file's name, and the next ``xsearch index``
reads the text tracks (text passages; OCR with ``--ocr``) of the files they have not read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from xsearch.core.types import Filters, Hit

from ..store import keyword_unsupported
from ..words import coverage, fold, grams, holds, query_grams, query_words, score, scoring_words
from .db import ID_CHUNK, MAX_TOPK, Db
from .filters import compile_filters, quote
from .rows import MAX_TAGS, TAG_CHARS, VARCHAR_MAX

PART = "words"
NAME_TRACK = "name"
LINES_PER_FILE, MIN_LINES = 8, 200  # BM25 candidates per query: lines per file asked for, at least the minimum
LINE_FIELDS = ["file_id", "gen", "track", "at", "text", "box", "confidence", "reads"]
HIT_FIELDS = ["path", "name", "width", "height", "duration", "size", "lines", *LINE_FIELDS]
SPEC_RECHECK_S = 5.0  # how often a reader without a words collection asks whether one was added


def words_schema(client):
    """``NAME__words``: one row per line, its BM25 function (grams → sparse)."""
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    varchar = DataType.VARCHAR
    for name, dtype, kw in [
            ("id", DataType.INT64, {"is_primary": True}), ("file_id", DataType.INT64, {}),
            ("gen", DataType.INT64, {}), ("track", varchar, {"max_length": 64}), ("at", DataType.DOUBLE, {}),
            ("text", varchar, {"max_length": VARCHAR_MAX}), ("box", varchar, {"max_length": 1024}),
            ("confidence", DataType.DOUBLE, {}), ("reads", varchar, {"max_length": 1024}),
            ("lines", DataType.INT64, {}),
            ("modality", varchar, {"max_length": 64}), ("path", varchar, {"max_length": VARCHAR_MAX}),
            ("name", varchar, {"max_length": VARCHAR_MAX}), ("size", DataType.INT64, {}),
            ("mtime_ns", DataType.INT64, {}), ("width", DataType.INT64, {}), ("height", DataType.INT64, {}),
            ("duration", DataType.DOUBLE, {}),
            ("tags", DataType.ARRAY, {"element_type": varchar, "max_capacity": MAX_TAGS, "max_length": TAG_CHARS}),
            ("grams", varchar, {"max_length": VARCHAR_MAX, "enable_analyzer": True,
                                "analyzer_params": {"tokenizer": "standard"}}),
            ("sparse", DataType.SPARSE_FLOAT_VECTOR, {})]:
        s.add_field(name, dtype, **kw)
    s.add_function(Function(name="grams_bm25", function_type=FunctionType.BM25, input_field_names=["grams"],
                            output_field_names=["sparse"]))
    return s


def create_words(db: Db) -> None:
    """Create (or re-create) ``NAME__words``, indexed and loaded."""
    name = db.t.coll(PART)
    if db.call("inspect", db.c.has_collection, name):
        db.call("delete", db.c.drop_collection, name)
    db.call("create", db.c.create_collection, name, schema=words_schema(db.c), consistency_level="Session")
    params = db.c.prepare_index_params()
    params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", index_name="sparse", metric_type="BM25")
    db.call("index", db.c.create_index, name, params, sync=False, timeout=60)  # as Db._create (sync polls: +0.5 s)
    db.call("load", db.c.load_collection, name)


def _clip(text: str, limit: int = VARCHAR_MAX) -> str:
    data = str(text).encode("utf-8", "surrogatepass")[:limit]
    return data.decode("utf-8", "ignore")


def word_row(row_id: int, file_id: int, gen: int, line: Mapping, modality: str, meta: Mapping,
             reads: Sequence[str] = (), lines: int = 1) -> dict:
    """A words row; ``lines``: how many rows its file has (a search that found them all reads no more)."""
    box = line.get("box")
    conf = line.get("confidence")
    text = _clip(line["text"])
    return {"id": int(row_id), "file_id": int(file_id), "gen": int(gen), "track": str(line["track"]),
            "at": float(line.get("offset", 0.0)), "text": text,
            "box": "" if box is None else _clip(json.dumps(box, separators=(",", ":")), 1024),
            "confidence": -1.0 if conf is None else float(conf),
            "reads": json.dumps(sorted(reads), separators=(",", ":")) if reads else "", "lines": int(lines),
            "modality": modality,
            **meta, "grams": grams(text)}


def line_of(r: Mapping) -> dict:
    """A words row as a line ({track, text, offset, box, confidence}: what Hit.words holds)."""
    out = {"track": r["track"], "text": r["text"], "offset": float(r["at"])}
    if r.get("box"):
        out["box"] = json.loads(r["box"])
    if float(r.get("confidence", -1.0)) >= 0:
        out["confidence"] = float(r["confidence"])
    return out


def newest(rows: list[dict]) -> dict[int, list[dict]]:
    """Rows per file, only those of the file's newest generation (between a commit's publish and its clean-up a
    replaced file's old rows are still there)."""
    by_file: dict[int, list[dict]] = {}
    for r in rows:
        by_file.setdefault(int(r["file_id"]), []).append(r)
    for fid, rs in by_file.items():
        top = max(int(r["gen"]) for r in rs)
        by_file[fid] = [r for r in rs if int(r["gen"]) == top]
    return by_file


class WordsReads:
    """Keyword search over the published generation (``self._db``, ``self._spec``, ``self._state()``, ``self.dims``,
    ``self._coll``, ``self.uri``): shared by the reader and the writer (which searches what it has committed)."""

    _db: Db
    _spec: dict
    uri: str

    @property
    def supports_keywords(self) -> bool:
        return bool(self._spec.get(PART)) and self._db.features.full_text

    def _unsupported(self):
        features = self._db.features
        if not features.full_text:
            why = features.no_full_text(self._db.t.path or self._db.t.address)
        else:
            why = ("it was created before the Milvus store had keyword search; the next `xsearch index` into it "
                   "adds one (file names at once, text and OCR as the files are read)")
            return keyword_unsupported(self.uri, why, code="store.keyword_index_missing")
        return keyword_unsupported(self.uri, why)

    def _lines_of(self, file_ids: Sequence[int], gen: int, fields: Sequence[str] = LINE_FIELDS) -> list[dict]:
        rows: list[dict] = []
        ids = sorted({int(i) for i in file_ids})
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ", ".join(map(str, ids[start:start + ID_CHUNK]))
            for page in self._db.scan(self._coll(PART), f"gen <= {int(gen)} and file_id in [{chunk}]", list(fields)):
                rows += page
        return rows

    def file_words(self, file_ids: Sequence[int]) -> dict[int, tuple[list[dict], list[str]]]:
        if not self.supports_keywords:
            return {}
        out = {}
        for fid, rows in newest(self._lines_of(file_ids, self._state().gen)).items():
            reads = next((json.loads(r["reads"]) for r in rows if r["track"] == NAME_TRACK and r["reads"]), [])
            out[fid] = ([line_of(r) for r in rows if r["track"] != NAME_TRACK], list(reads))
        return out

    def keyword_search(self, modality: str, text: str, k: int, *, filters: Filters | None = None,
                       exclude_paths: Sequence[str] = ()) -> list[Hit]:
        if not self.supports_keywords:
            raise self._unsupported()
        words = query_words(text)
        if not words or k <= 0:
            return []
        gen = self._state().gen
        db = self._db
        compiled = compile_filters(filters, exclude_paths=exclude_paths, gen=gen,
                                   extra=[f"modality == {quote(modality)}"], like_full=db.features.like_full)
        active = filters.active() if filters else {}
        limit = min(MAX_TOPK, max(MIN_LINES, LINES_PER_FILE * k) * (8 if active else 1))
        raw = db.call("search", db.c.search, self._coll(PART), data=[query_grams(words)], anns_field="sparse",
                      limit=limit, filter=compiled.expr, output_fields=HIT_FIELDS,
                      search_params={"metric_type": "BM25"})
        bm25: dict[int, float] = {}
        found: list[dict] = []
        for h in raw[0] if raw else []:
            e = h["entity"]
            if compiled.keep(e):
                bm25[int(h["id"])] = abs(float(h["distance"]))  # milvus-lite gives -score, a server +score
                found.append({**e, "id": int(h["id"])})
        by_file = newest(found)
        meta = {fid: rows[0] for fid, rows in by_file.items()}
        scoring = scoring_words(text)
        partial = [fid for fid, rows in by_file.items() if len(rows) < int(rows[0]["lines"])
                   and coverage((fold(r["text"]) for r in rows), scoring) < 1.0]
        if partial:  # lines BM25 did not return may hold more of the query's words: the share needs them all
            by_file.update(newest(self._lines_of(partial, gen, ["id", *LINE_FIELDS])))
        scored = []
        for fid, rows in by_file.items():
            folded = [fold(r["text"]) for r in rows]
            matched = [(r, f) for r, f in zip(rows, folded) if holds(f, words)]
            if not matched:
                continue
            best = max(bm25.get(int(r["id"]), 0.0) for r, _ in matched)
            matched.sort(key=lambda rf: (-sum(w in rf[1] for w in scoring), -bm25.get(int(rf[0]["id"]), 0.0),
                                         float(rf[0]["at"])))
            scored.append((fid, score(coverage(folded, scoring), best), [line_of(r) for r, _ in matched]))
        scored.sort(key=lambda s: (-s[1], s[0]))
        scored = scored[:k]
        items = self._nearest_items(modality, scored, gen)
        hits = []
        for fid, sc, lines in scored:
            e = meta[fid]
            item = items.get(fid)
            hits.append(Hit(len(hits) + 1, float(sc), e["path"], modality, item[1] if item else 0.0,
                            item[0] if item else -1, item[2] if item else None,
                            _pos(e["width"]), _pos(e["height"]), _pos(e["duration"]), int(e["size"]), words=lines))
        return hits

    def _nearest_items(self, modality: str, scored: list, gen: int) -> dict[int, tuple]:
        """Per file: (item id, offset, snippet) of its own item nearest its best line (a passage, a video window)."""
        if modality not in self.dims or not scored:
            return {}
        want = {fid: lines[0]["offset"] for fid, _, lines in scored}
        ids = ", ".join(map(str, sorted(want)))
        rows = [r for page in self._db.scan(self._coll(modality), f"gen <= {int(gen)} and file_id in [{ids}]",
                                            ["file_id", "gen", "at", "snippet"]) for r in page]
        out = {}
        for fid, rs in newest(rows).items():
            r = min(rs, key=lambda r: (abs(float(r["at"]) - want[fid]), int(r["id"])))
            out[fid] = (int(r["id"]), float(r["at"]), r.get("snippet") or None)
        return out


def _pos(v):
    return None if v is None or v < 0 else v


def counts_of(per_file: Mapping[int, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """Per track: {"lines": n, "files": files with at least one line}."""
    out: dict[str, dict[str, int]] = {}
    for tracks in per_file.values():
        for track, n in tracks.items():
            if n:
                c = out.setdefault(track, {"lines": 0, "files": 0})
                c["lines"] += int(n)
                c["files"] += 1
    return dict(sorted(out.items()))


class WordsReader(WordsReads):
    """The reader's keyword calls: counts and settings come with the published state row."""

    _words_checked = 0.0

    @property
    def supports_keywords(self) -> bool:
        """As :class:`WordsReads`; a long-lived reader of a collection made before keyword search looks again (at
        most every SPEC_RECHECK_S) whether a writer has since added its words collection."""
        if not self._spec.get(PART) and self._db.features.full_text:
            now = time.monotonic()
            if now - self._words_checked > SPEC_RECHECK_S:
                self._words_checked = now
                spec = self._db.meta_get("spec")
                if spec is not None and spec.get(PART) and spec.get("creation") == self._spec.get("creation"):
                    self._spec = spec
        return WordsReads.supports_keywords.fget(self)

    def _published(self) -> dict:
        found = self._db.state_get()
        return found[1] if found is not None else {}

    def keyword_counts(self) -> dict[str, dict[str, int]]:
        if not self.supports_keywords:
            return {}
        return {t: dict(c) for t, c in self._published().get(PART, {}).items()}

    def text_settings(self) -> dict:
        return dict(self._published().get("text_settings", {})) if self.supports_keywords else {}
