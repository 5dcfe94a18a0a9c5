"""The local store's keyword index: words of text tracks (text passages, OCR lines) and file names in SQLite FTS5.

Tables, beside the catalog's in the same database (so one commit publishes vectors, catalog and words together;
created by the first writer that needs them, so collections made before keyword search still open read-only):

- ``text_lines``: one row per line (file, track — ``passage``, ``ocr``, ``name`` —, offset, text, box as JSON,
  confidence); removed with their file (``ON DELETE CASCADE``).
- ``text_fts``: an FTS5 index over the lines' *folded* text (lower case, ``o`` read as ``0``) with the
  ``trigram`` tokenizer: OCR drops spaces ("INVOICE2031PAID") and Chinese has none, so words are matched as
  character trigrams inside a line, never as whole tokens. Kept in step by triggers.
- ``text_reads``: which text tracks were read for which file (an image with no words in it was still read).
- ``text_settings``: the opt-in text tracks the collection reads (``ocr``), remembered like its model.
- ``text_chars``: a companion FTS5 index of the lines' characters beyond ASCII, one token each (positions kept),
  so a one- or two-character word such as ``门票`` — below a trigram — is looked up as the phrase of its two
  characters instead of a LIKE scan of every line (and then checked with LIKE on the few lines found).
  Only lines with such characters get a row. Collections made before it (no ``text_chars`` table) still answer,
  by the LIKE scan; the writer builds it from ``text_lines`` at its next commit (:func:`upgrade`).

Ranking (:func:`search`): a query's words of three characters or more are looked up in the FTS index (BM25),
shorter ones beyond ASCII (``门票``) in ``text_chars`` (trigrams need three characters; short ASCII words
such as "of" or "12" are not looked up); a file's score is the share of the query's words (two-character ones
included) found in its lines (1.0: all), plus up to 0.1 from its best line's BM25 — so "invoice 2031" puts the
picture saying INVOICE 2031 before the one saying INVOICE 2032.
"""

from __future__ import annotations

import heapq
import json
import re
import sqlite3
from collections.abc import Iterable, Sequence

from ..words import coverage, fold, query_words, score, scoring_words

SCHEMA = ("""
CREATE TABLE IF NOT EXISTS text_lines (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    track TEXT NOT NULL,
    offset REAL NOT NULL DEFAULT 0,
    text TEXT NOT NULL,
    folded TEXT NOT NULL,
    box TEXT,
    confidence REAL
)""",
    "CREATE INDEX IF NOT EXISTS text_lines_by_file ON text_lines(file_id)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5(folded, content='text_lines', content_rowid='id',
                                                          tokenize='trigram')""",
    """CREATE TRIGGER IF NOT EXISTS text_lines_ai AFTER INSERT ON text_lines BEGIN
    INSERT INTO text_fts(rowid, folded) VALUES (new.id, new.folded);
END""",
    """CREATE TRIGGER IF NOT EXISTS text_lines_ad AFTER DELETE ON text_lines BEGIN
    INSERT INTO text_fts(text_fts, rowid, folded) VALUES ('delete', old.id, old.folded);
END""",
    """CREATE TABLE IF NOT EXISTS text_reads (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    track TEXT NOT NULL,
    PRIMARY KEY (file_id, track)
)""",
    "CREATE TABLE IF NOT EXISTS text_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
CHARS_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS text_chars USING fts5(chars, tokenize='ascii')",
    """CREATE TRIGGER IF NOT EXISTS text_lines_ad_chars AFTER DELETE ON text_lines BEGIN
    DELETE FROM text_chars WHERE rowid = old.id;
END""",
)

#: The track holding each file's name (always indexed, so a file can be found by its name).
NAME_TRACK = "name"
#: Lines read from the FTS index per query: this many per file asked for (the best by BM25), at least the minimum.
LINES_PER_FILE, MIN_LINES = 8, 200
def exists(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'text_lines'").fetchone() is not None


def has_chars(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'text_chars'").fetchone() is not None


def ensure(conn: sqlite3.Connection) -> None:
    """Create the tables (inside the writer's open transaction); an older keyword index gets ``text_chars``."""
    if not exists(conn):
        for statement in SCHEMA + CHARS_SCHEMA:
            conn.execute(statement)
    elif not has_chars(conn):
        _build_chars(conn)


def upgrade(sql) -> bool:
    """Give a keyword index made before ``text_chars`` its companion (``sql(write=True)`` opens the writer's
    transaction, so it commits with the writer's next commit); True when it built one."""
    conn = sql()
    if not exists(conn) or has_chars(conn):
        return False
    _build_chars(sql(write=True))
    return True


def _build_chars(conn: sqlite3.Connection) -> None:
    for statement in CHARS_SCHEMA:
        conn.execute(statement)
    rows = conn.execute("SELECT id, folded FROM text_lines")
    conn.executemany("INSERT INTO text_chars(rowid, chars) VALUES (?, ?)",
                     ((i, c) for i, c in ((i, chars(f)) for i, f in rows) if c))


def tidy(conn: sqlite3.Connection, written: int) -> str | None:
    """After a run that wrote ``written`` lines: merge the FTS indexes' segments (each batch of inserts leaves one,
    and a query reads every segment — at 100k lines a merged index answered in about two thirds of the time;
    bench/ocr.py). A run that wrote a twentieth of the lines or more merges them fully ('optimize': 0.5 s at 100k
    lines on 2 cores), a smaller one does a bounded step of FTS5's incremental 'merge'. Returns what it did."""
    if written <= 0 or not exists(conn):
        return None
    total = conn.execute("SELECT COALESCE(MAX(id), 0) FROM text_lines").fetchone()[0]
    full = written * 20 >= total
    for table in ("text_fts", "text_chars") if has_chars(conn) else ("text_fts",):
        if full:
            conn.execute(f"INSERT INTO {table}({table}) VALUES ('optimize')")
        else:
            conn.execute(f"INSERT INTO {table}({table}, rank) VALUES ('merge', 500)")
    return "optimize" if full else "merge"


def chars(folded: str) -> str:
    """What ``text_chars`` indexes of a line: each character beyond ASCII as its code point in hex (``门`` →
    ``u95e8``: plain ASCII tokens, so SQLite's own Unicode tables never decide what is a letter), and each run of
    ASCII one ``x`` (so characters apart in the line stay apart); "" when the line has none beyond ASCII."""
    out = []
    for c in folded:
        if ord(c) > 0x7F:
            out.append(f"u{ord(c):x}")
        elif out and out[-1] != "x":
            out.append("x")
    return " ".join(out).removesuffix(" x")


def _insert_chars(conn: sqlite3.Connection, rows: Sequence[tuple[int, str]]) -> None:
    """``text_chars`` rows for new lines ``[(line id, folded)]`` (deleted lines leave by a trigger)."""
    if has_chars(conn):
        conn.executemany("INSERT INTO text_chars(rowid, chars) VALUES (?, ?)",
                         ((i, c) for i, c in ((i, chars(f)) for i, f in rows) if c))


def replace_lines(conn: sqlite3.Connection, file_id: int, path: str, lines: Sequence[dict],
                  read: Iterable[str]) -> None:
    """Make ``lines`` the file's words for the tracks in ``read`` (other tracks' lines stay), and its name."""
    ensure(conn)
    read = set(read) | {NAME_TRACK}
    for track in read:
        conn.execute("DELETE FROM text_lines WHERE file_id = ? AND track = ?", (file_id, track))
        conn.execute("INSERT OR IGNORE INTO text_reads(file_id, track) VALUES (?, ?)", (file_id, track))
    name = path.rsplit("/", 1)[-1]
    rows = [(file_id, NAME_TRACK, 0.0, name, fold(name), None, None)]
    for line in lines:
        if line.get("track") not in read:
            continue
        text = str(line["text"])
        box = line.get("box")
        rows.append((file_id, line["track"], float(line.get("offset", 0.0)), text, fold(text),
                     json.dumps(box) if box is not None else None, line.get("confidence")))
    first = conn.execute("SELECT COALESCE(MAX(id), 0) FROM text_lines").fetchone()[0]
    conn.executemany("INSERT INTO text_lines(file_id, track, offset, text, folded, box, confidence) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    if any(not r[4].isascii() for r in rows):
        _insert_chars(conn, conn.execute("SELECT id, folded FROM text_lines WHERE file_id = ? AND id > ?",
                                         (file_id, first)).fetchall())


def rename(conn: sqlite3.Connection, file_id: int, new_path: str) -> None:
    """A moved file is found by its new name."""
    if exists(conn):
        conn.execute("DELETE FROM text_lines WHERE file_id = ? AND track = ?", (file_id, NAME_TRACK))
        name = new_path.rsplit("/", 1)[-1]
        cur = conn.execute("INSERT INTO text_lines(file_id, track, offset, text, folded) VALUES (?, ?, 0, ?, ?)",
                           (file_id, NAME_TRACK, name, fold(name)))
        _insert_chars(conn, [(cur.lastrowid, fold(name))])


def settings(conn: sqlite3.Connection) -> dict:
    if not exists(conn):
        return {}
    return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM text_settings")}


def set_setting(conn: sqlite3.Connection, key: str, value) -> None:
    ensure(conn)
    conn.execute("INSERT OR REPLACE INTO text_settings(key, value) VALUES (?, ?)", (key, json.dumps(value)))


def drop_track(conn: sqlite3.Connection, track: str) -> int:
    """Forget every line of ``track`` (and that it was read); returns how many lines went."""
    if not exists(conn):
        return 0
    n = conn.execute("DELETE FROM text_lines WHERE track = ?", (track,)).rowcount
    conn.execute("DELETE FROM text_reads WHERE track = ?", (track,))
    return int(n)


def unread(conn: sqlite3.Connection, track: str, modalities: Sequence[str]) -> set[int]:
    """Ids of files of ``modalities`` that ``track`` has not read yet."""
    marks = ",".join("?" * len(modalities))
    if not modalities:
        return set()
    if not exists(conn):
        return {r[0] for r in conn.execute(f"SELECT id FROM files WHERE modality IN ({marks})", list(modalities))}
    rows = conn.execute(f"SELECT id FROM files WHERE modality IN ({marks}) AND id NOT IN "
                        "(SELECT file_id FROM text_reads WHERE track = ?)", [*modalities, track])
    return {r[0] for r in rows}


def counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Per track: {"lines": n, "files": files with at least one line}."""
    if not exists(conn):
        return {}
    rows = conn.execute("SELECT track, COUNT(*), COUNT(DISTINCT file_id) FROM text_lines GROUP BY track")
    return {t: {"lines": int(n), "files": int(f)} for t, n, f in rows}


def search(conn: sqlite3.Connection, text: str, modality: str, limit: int, *,
           allowed_files: set[int] | None = None) -> list[tuple[int, float, list[dict]]]:
    """Files of ``modality`` whose words match ``text``: ``[(file id, score, matched lines)]``, best first (see
    the module docstring for the score); matched lines best first, each ``{track, text, offset, box,
    confidence}``."""
    words = query_words(text)
    if not words or not exists(conn):
        return []
    long_words = [w for w in words if len(w) >= 3]
    short_words = [w for w in words if len(w) < 3]
    found: dict[int, tuple[float, tuple]] = {}  # line id -> (bm25, row)
    candidates = max(MIN_LINES, LINES_PER_FILE * limit) * (1 if allowed_files is None else 8)
    seen_all = not long_words  # every line holding a looked-up word is in `found` (then coverage needs no more)
    if long_words:  # lines holding every word first (a small, fast intersection); any word only if too few
        quoted = ['"' + w.replace('"', '""') + '"' for w in long_words]
        matches = list(dict.fromkeys([" AND ".join(quoted), " OR ".join(quoted)]))
        for match in matches:
            rows = _ranked_lines(conn, match, modality, candidates, found)
            for r in rows:
                found.setdefault(r[0], (float(r[-1]), r[:-1]))
            seen_all = match == matches[-1] and len(rows) < candidates
            if len({row[1] for _, row in found.values()}) >= limit:
                break
    indexed = bool(short_words) and has_chars(conn)
    for w in short_words:
        rows = _short_word_lines(conn, w, modality, candidates, indexed).fetchall()
        for r in rows:
            found.setdefault(r[0], (0.0, r))
        seen_all = seen_all and len(rows) < candidates
    scoring = scoring_words(text)
    return _best_files(conn, found, scoring, limit, allowed_files, seen_all and set(scoring) <= set(words))


#: What is read of each line found (its text, box and confidence only for the lines returned: :func:`_details`).
_COLUMNS = "l.id, l.file_id, l.track, l.offset, l.folded"


def _ranked_lines(conn: sqlite3.Connection, match: str, modality: str, n: int,
                  known: dict[int, tuple[float, tuple]]) -> list[tuple]:
    """The ``n`` lines of ``modality``'s files best by BM25 for ``match``, each ``(*columns, bm25)``. The FTS
    index ranks its own top ``n`` alone (joining every match to its file first costs more than the ranking);
    only when some of those belong to another modality's files is the ranking redone over the joined lines.
    Lines in ``known`` (found by an earlier match) are not read again."""
    ranked = conn.execute("SELECT rowid, bm25(text_fts) FROM text_fts WHERE text_fts MATCH ? ORDER BY rank "
                          "LIMIT ?", (match, n)).fetchall()
    rows = _lines(conn, [i for i, _ in ranked if i not in known], modality)
    rows.update((i, known[i][1]) for i, _ in ranked if i in known)
    if len(rows) == len(ranked) or len(ranked) < n:
        return [(*rows[i], b) for i, b in ranked if i in rows]
    return conn.execute(
        f"SELECT {_COLUMNS}, bm25(text_fts) FROM text_fts JOIN text_lines l ON l.id = text_fts.rowid "
        "JOIN files f ON f.id = l.file_id WHERE text_fts MATCH ? AND f.modality = ? "
        "ORDER BY rank LIMIT ?", (match, modality, n)).fetchall()


def _lines(conn: sqlite3.Connection, line_ids: list[int], modality: str) -> dict[int, tuple]:
    """{line id: columns} of these lines that belong to files of ``modality``."""
    out: dict[int, tuple] = {}
    for start in range(0, len(line_ids), 900):
        chunk = line_ids[start:start + 900]
        rows = conn.execute(f"SELECT {_COLUMNS} FROM text_lines l JOIN files f ON f.id = l.file_id "
                            f"WHERE l.id IN ({','.join('?' * len(chunk))}) AND f.modality = ?", [*chunk, modality])
        out.update((r[0], r) for r in rows)
    return out


def _short_word_lines(conn: sqlite3.Connection, word: str, modality: str, n: int, indexed: bool):
    """Up to ``n`` lines of ``modality``'s files holding a one- or two-character ``word``: through ``text_chars``
    (the phrase of its characters beyond ASCII, then LIKE on the lines found) when the collection has it and the
    word has such characters; a LIKE scan of every line otherwise."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    runs = re.findall(r"[^\x00-\x7f]+", word)
    if indexed and runs:
        match = " AND ".join('"' + chars(run) + '"' for run in runs)
        return conn.execute(
            f"SELECT {_COLUMNS} FROM text_chars JOIN text_lines l ON l.id = text_chars.rowid "
            "JOIN files f ON f.id = l.file_id WHERE text_chars MATCH ? AND l.folded LIKE ? ESCAPE '\\' "
            "AND f.modality = ? LIMIT ?", (match, f"%{escaped}%", modality, n))
    return conn.execute(
        f"SELECT {_COLUMNS} FROM text_lines l JOIN files f ON f.id = l.file_id "
        "WHERE l.folded LIKE ? ESCAPE '\\' AND f.modality = ? LIMIT ?", (f"%{escaped}%", modality, n))


def _best_files(conn: sqlite3.Connection, found: dict[int, tuple[float, tuple]], scoring: list[str], limit: int,
                allowed_files: set[int] | None, seen_all: bool = False) -> list[tuple[int, float, list[dict]]]:
    """The ``limit`` best files of the lines found (score: the module docstring). A file whose found lines hold
    every word needs no other; the rest have their other lines read (a word may sit on another line) — unless
    ``seen_all``: every line holding any of the words is among those found, so the others hold none. Only the
    files returned have their lines sorted and read out."""
    by_file: dict[int, list[tuple[float, tuple]]] = {}
    for bm25, row in found.values():
        if allowed_files is None or row[1] in allowed_files:
            by_file.setdefault(row[1], []).append((bm25, row))
    if seen_all:
        all_words = {f: " ".join(r[4] for _, r in lines) for f, lines in by_file.items()}
    else:
        all_words = _file_words(conn, [f for f, lines in by_file.items()
                                       if not all(any(w in r[4] for _, r in lines) for w in scoring)])
    scored = []
    for file_id, lines in by_file.items():
        folded = all_words.get(file_id)
        cover = 1.0 if folded is None else coverage([folded], scoring)
        best = min(b for b, _ in lines)  # BM25 in SQLite: lower (more negative) is better
        scored.append((-score(cover, -best), file_id))
    best = heapq.nsmallest(limit, scored)
    details = _details(conn, [row[0] for _, file_id in best for _, row in by_file[file_id]])
    out = []
    for neg_score, file_id in best:
        lines = by_file[file_id]
        lines.sort(key=lambda item: (-sum(w in item[1][4] for w in scoring), item[0], item[1][3]))
        out.append((file_id, -neg_score, [_line(row, details[row[0]]) for _, row in lines]))
    return out


def _details(conn: sqlite3.Connection, line_ids: list[int]) -> dict[int, tuple]:
    """{line id: (text, box, confidence)}."""
    out: dict[int, tuple] = {}
    for start in range(0, len(line_ids), 900):
        chunk = line_ids[start:start + 900]
        out.update((r[0], r[1:]) for r in conn.execute(
            f"SELECT id, text, box, confidence FROM text_lines WHERE id IN ({','.join('?' * len(chunk))})", chunk))
    return out


def _file_words(conn: sqlite3.Connection, file_ids: list[int]) -> dict[int, str]:
    """Every folded line of these files, joined per file."""
    out: dict[int, str] = {}
    for start in range(0, len(file_ids), 900):
        chunk = file_ids[start:start + 900]
        rows = conn.execute(f"SELECT file_id, group_concat(folded, ' ') FROM text_lines WHERE file_id IN "
                            f"({','.join('?' * len(chunk))}) GROUP BY file_id", chunk)
        out.update({int(f): text for f, text in rows})
    return out


def _line(row: tuple, detail: tuple) -> dict:
    text, box, confidence = detail
    out = {"track": row[2], "text": text, "offset": float(row[3])}
    if box is not None:
        out["box"] = json.loads(box)
    if confidence is not None:
        out["confidence"] = float(confidence)
    return out


class KeywordReads:
    """The keyword half of the local store's reads (``self._collection()``, ``self._lock``)."""

    supports_keywords = True

    def keyword_counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return counts(self._collection().catalog.sql())

    def text_settings(self) -> dict:
        with self._lock:
            return settings(self._collection().catalog.sql())

    def keyword_search(self, modality: str, text: str, k: int, *, filters=None, exclude_paths=()) -> list:
        from xsearch.core.types import Hit

        with self._lock:
            catalog = self._collection().catalog
            allowed = _allowed_files(catalog, modality, filters)
            excluded = set(exclude_paths)
            found = search(catalog.sql(), text, modality, k + len(excluded), allowed_files=allowed)
            hits = []
            for file_id, file_score, lines in found:
                row = catalog.get_file_by_id(file_id)
                if row is None or row.path in excluded:
                    continue
                item = _nearest_item(catalog.sql(), file_id, lines[0]["offset"])
                hits.append(Hit(len(hits) + 1, float(file_score), row.path, row.modality, item[1] if item else 0.0,
                                item[0] if item else -1, item[2] if item else None, row.width, row.height,
                                row.duration, row.size, words=lines))
                if len(hits) == k:
                    break
            return hits


class KeywordWrites(KeywordReads):
    """The keyword half of the local writer (``self._col``)."""

    #: Lines this writer wrote, for :func:`tidy` at the end of its run.
    _lines_written = 0

    def replace_text(self, file_id: int, lines, read) -> None:
        row = self._col.catalog.get_file_by_id(file_id)
        replace_lines(self._col.catalog.sql(write=True), file_id, row.path, lines, read)
        self._lines_written += 1 + len(lines)

    def tidy_keywords(self) -> str | None:
        """Merge the keyword index's segments after a run that wrote lines (:func:`tidy`)."""
        done = tidy(self._col.catalog.sql(write=True), self._lines_written) if self._lines_written else None
        self._lines_written = 0
        return done

    def upgrade_keywords(self) -> bool:
        """Build ``text_chars`` for a keyword index made before it (:func:`upgrade`)."""
        return upgrade(self._col.catalog.sql)

    def set_text_setting(self, key: str, value) -> None:
        set_setting(self._col.catalog.sql(write=True), key, value)

    def drop_text_track(self, track: str) -> int:
        return drop_track(self._col.catalog.sql(write=True), track)

    def unread_files(self, track: str, modalities) -> set[int]:
        return unread(self._col.catalog.sql(), track, list(modalities))


def _allowed_files(catalog, modality: str, filters) -> set[int] | None:
    """Files of ``modality`` passing ``filters`` (None: no filter), through the catalog's own filter compiler."""
    active = filters.active() if filters else {}
    if not active:
        return None
    tracks = [r[0] for r in catalog.sql().execute(
        "SELECT DISTINCT i.modality FROM items i JOIN files f ON f.id = i.file_id WHERE f.modality = ?", (modality,))]
    allowed: set[int] = set()
    for track in tracks:
        allowed.update(catalog.file_ids_of_items(catalog.filter_ids(track, **active)).tolist())
    return allowed


def _nearest_item(conn: sqlite3.Connection, file_id: int, offset: float) -> tuple | None:
    """(item id, offset, snippet) of the file's own item nearest ``offset`` (a passage, a video's picture window)."""
    return conn.execute("SELECT i.id, i.offset, i.snippet FROM items i JOIN files f ON f.id = i.file_id "
                        "WHERE i.file_id = ? AND i.modality = f.modality "
                        "ORDER BY abs(i.offset - ?), i.id LIMIT 1", (file_id, float(offset))).fetchone()
