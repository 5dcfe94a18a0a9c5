"""The keyword index's faster paths (index/local/keywords.py) answer exactly what the slower ones did.

- ``text_chars`` (one- and two-character words beyond ASCII through an index) finds what the LIKE scan finds;
- the FTS ranking without the join and the top-k read-out rank files as the code before them did (kept below as
  ``reference_search``, the search as it was before this change);
- a collection made before ``text_chars`` still answers, and gets it at the writer's next commit, losing nothing;
- the end of an index run merges the FTS segments.
"""

from __future__ import annotations

import random
import sqlite3

import pytest

from tests.contract.test_store_contract import SPEC, add_file, unit
from xsearch.index import open_store, open_writer
from xsearch.index.local import keywords


def reference_search(conn, text, modality, limit):
    """index/local/keywords.py's search before the faster paths (LIKE for short words, ranking joined)."""
    words = keywords.query_words(text)
    if not words or not keywords.exists(conn):
        return []
    scoring = keywords.scoring_words(text)
    found = {}
    candidates = max(keywords.MIN_LINES, keywords.LINES_PER_FILE * limit)
    columns = "l.id, l.file_id, l.track, l.offset, l.text, l.folded, l.box, l.confidence"
    long_words = [w for w in words if len(w) >= 3]
    if long_words:
        quoted = ['"' + w.replace('"', '""') + '"' for w in long_words]
        for match in dict.fromkeys([" AND ".join(quoted), " OR ".join(quoted)]):
            for r in conn.execute(
                    f"SELECT {columns}, bm25(text_fts) FROM text_fts JOIN text_lines l ON l.id = text_fts.rowid "
                    "JOIN files f ON f.id = l.file_id WHERE text_fts MATCH ? AND f.modality = ? "
                    "ORDER BY rank LIMIT ?", (match, modality, candidates)):
                found.setdefault(r[0], (float(r[-1]), r[:-1]))
            if len({row[1] for _, row in found.values()}) >= limit:
                break
    for w in (w for w in words if len(w) < 3):
        for r in conn.execute(f"SELECT {columns} FROM text_lines l JOIN files f ON f.id = l.file_id "
                              "WHERE l.folded LIKE ? AND f.modality = ? LIMIT ?", (f"%{w}%", modality, candidates)):
            found.setdefault(r[0], (0.0, r))
    by_file = {}
    for bm25, row in found.values():
        by_file.setdefault(row[1], []).append((bm25, row))
    scored = []
    for file_id, lines in by_file.items():
        folded = " ".join(r[0] for r in conn.execute("SELECT folded FROM text_lines WHERE file_id = ?", (file_id,)))
        coverage = sum(w in folded for w in scoring) / len(scoring)
        best = min(b for b, _ in lines)
        scored.append((file_id, coverage + 0.1 * (-best / (1.0 - best) if best < 0 else 0.0)))
    scored.sort(key=lambda s: (-s[1], s[0]))
    return scored[:limit]


@pytest.fixture(scope="module")
def corpus():
    """600 files of OCR-like lines (joined English words and numbers, Chinese, some both; a few files with two
    lines, a few of another modality), written as the store writes them."""
    rng = random.Random(3)
    vocab = ["invoice", "paid", "gate", "room", "exit", "north", "sale", "error", "found", "total"]
    hanzi = "门票春天的花园北京站出口禁止吸烟会议室"
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT, modality TEXT)")
    conn.execute("BEGIN")
    keywords.ensure(conn)
    for i in range(600):
        modality = "video" if i % 50 == 7 else "image"
        conn.execute("INSERT INTO files VALUES (?, ?, ?)", (i, f"/p/{i}.jpg", modality))
        lines = []
        for _ in range(1 + (i % 9 == 0)):
            english = "".join(rng.choices(vocab, k=rng.randint(1, 3))) + str(rng.randint(0, 500))
            chinese = "".join(rng.choices(hanzi, k=rng.randint(2, 6)))
            lines.append({"track": "ocr", "text": rng.choice([english, chinese, f"{english} {chinese}"])})
        keywords.replace_lines(conn, i, f"/p/{i}.jpg", lines, ["ocr"])
    conn.execute("COMMIT")
    queries = ["invoice", "invoice 12", "gate room", "paid north 300", "sale", "exit 4", "门票", "门", "票 gate",
               "春天", "北京站", "禁止 total", "室", "花园 paid"] + [f"{rng.choice(vocab)} {rng.randint(0, 99)}"
                                                             for _ in range(20)]
    return conn, queries


@pytest.mark.parametrize("limit", [1, 5, 30])
def test_faster_paths_rank_files_as_before(corpus, limit):
    conn, queries = corpus
    for q in queries:
        got = [(f, round(s, 9)) for f, s, _ in keywords.search(conn, q, "image", limit)]
        want = [(f, round(s, 9)) for f, s in reference_search(conn, q, "image", limit)]
        assert got == want, q


def test_short_words_beyond_ascii_use_the_companion_index_and_find_what_like_finds(corpus):
    conn, queries = corpus
    plan = " ".join(r[-1] for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT l.id FROM text_chars JOIN text_lines l ON l.id = text_chars.rowid "
        "WHERE text_chars MATCH ?", ('"u95e8 u7968"',)))
    assert "VIRTUAL TABLE" in plan and "SCAN l" not in plan
    assert keywords.chars("门票35元,é") == "u95e8 u7968 x u5143 x ue9"  # apart in the line, apart in the index
    for w in ["门票", "门", "票门", "吸烟", "室"]:
        through_index = {r[1] for r in keywords._short_word_lines(conn, w, "image", 10_000, True)}
        by_scan = {r[1] for r in keywords._short_word_lines(conn, w, "image", 10_000, False)}
        assert through_index == by_scan, w
        assert by_scan or w == "票门", w


def _old_catalog(uri: str) -> None:
    """Make a collection's catalog what the code before ``text_chars`` made (the same tables, without it)."""
    with sqlite3.connect(f"{uri}/catalog.sqlite") as conn:
        conn.execute("DROP TRIGGER text_lines_ad_chars")
        conn.execute("DROP TABLE text_chars")


def test_a_collection_made_before_the_companion_index_answers_and_gets_it_at_the_next_commit(tmp_path):
    uri = str(tmp_path / "c")
    with open_writer(uri, create=SPEC) as w:
        for i, text in enumerate(["春天的花园门票35元", "INVOICE2031PAID", "北京站 出口"]):
            f = add_file(w, f"/p/{i}.jpg", "image", unit(i))
            w.replace_text(f, [{"track": "ocr", "text": text, "box": [[0, 0], [1, 0], [1, 1], [0, 1]]}], ["ocr"])
    _old_catalog(uri)
    with open_store(uri) as s:  # read as it is: the LIKE scan
        assert [h.path for h in s.keyword_search("image", "门票", 5)] == ["/p/0.jpg"]
        before = s.keyword_counts()
    with open_writer(uri) as w:
        w.touch_file(w.file("/p/1.jpg").id, mtime_ns=5)  # any write
    with sqlite3.connect(f"{uri}/catalog.sqlite") as conn:
        assert keywords.has_chars(conn)
        assert conn.execute("SELECT COUNT(*) FROM text_chars").fetchone()[0] == 2  # the two lines with Chinese
    with open_store(uri) as s:
        assert s.keyword_counts() == before
        assert [h.path for h in s.keyword_search("image", "门票", 5)] == ["/p/0.jpg"]
        assert [h.path for h in s.keyword_search("image", "站", 5)] == ["/p/2.jpg"]
        assert s.keyword_search("image", "invoice 2031", 5)[0].words[0]["box"] == [[0, 0], [1, 0], [1, 1], [0, 1]]
    with open_writer(uri) as w:  # and keeps it in step from then on
        w.remove_files([w.file("/p/0.jpg").id])
    with open_store(uri) as s:
        assert s.keyword_search("image", "门票", 5) == []


def _segments(conn, table: str) -> int:
    """Segments in an FTS5 index (its structure record: a 4-byte cookie, then varints levels, segments)."""
    block = conn.execute(f"SELECT block FROM {table}_data WHERE id = 10").fetchone()[0]
    return block[5]


def test_the_end_of_an_index_run_merges_the_keyword_segments(tmp_path):
    uri = str(tmp_path / "c")
    for i in range(4):  # four runs, four commits: segments pile up
        with open_writer(uri, create=SPEC) as w:
            f = add_file(w, f"/p/{i}.jpg", "image", unit(i))
            w.replace_text(f, [{"track": "ocr", "text": f"gate b{i}2 门票"}], ["ocr"])
    with sqlite3.connect(f"{uri}/catalog.sqlite") as conn:
        assert _segments(conn, "text_fts") > 1 and _segments(conn, "text_chars") > 1
    with open_writer(uri) as w:
        f = add_file(w, "/p/9.jpg", "image", unit(9))
        w.replace_text(f, [{"track": "ocr", "text": "gate b92"}], ["ocr"])
        w.maybe_reindex()  # what the indexer calls at the end of a run
    with sqlite3.connect(f"{uri}/catalog.sqlite") as conn:
        assert _segments(conn, "text_fts") == 1 and _segments(conn, "text_chars") == 1
        assert keywords.counts(conn)["ocr"] == {"lines": 5, "files": 5}
    with open_store(uri) as s:
        assert len(s.keyword_search("image", "gate", 10)) == 5
