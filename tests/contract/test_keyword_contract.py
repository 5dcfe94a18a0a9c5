"""Keyword search in the storage protocol (index/store.py: keyword_search, replace_text, ...), on every store.

A store with a keyword index (local: SQLite FTS5 trigram; Milvus with full-text search — milvus-lite 3.x, Milvus
2.5+ —: BM25 over character n-grams) must find files by their words with the same filters as vector search, and the
same files in the same order on every store; a store without one (a Milvus server before 2.5: docs/ocr.md) must say
so with one coded error, never return an empty list as if nothing matched.
"""

from __future__ import annotations

import pytest

from xsearch.core.errors import UsageError
from xsearch.core.types import Filters
from xsearch.index import open_store, open_writer

from .test_store_contract import DAY, SPEC, add_file, unit

BOX = [[10.0, 20.0], [200.0, 20.0], [200.0, 50.0], [10.0, 50.0]]


def ocr(text: str, box=BOX, confidence: float = 0.99) -> dict:
    return {"track": "ocr", "text": text, "box": box, "confidence": confidence, "offset": 0.0}


def expects_keywords(store) -> bool:
    """Local and milvus-lite stores keep a keyword index; a Milvus server does from 2.5 (features.py)."""
    if not store.uri.startswith("milvus://"):
        return True
    return store._db.features.full_text


def make_worded(store_uri: str) -> str:
    """Three photos with OCR lines (a receipt, its near miss, a Chinese sign), one without words, one text file."""
    with open_writer(store_uri, create=SPEC) as w:
        assert w.supports_keywords == expects_keywords(w)
        if not w.supports_keywords:
            return store_uri
        ids = {}
        for i, name in enumerate(["receipt.jpg", "other.jpg", "sign.jpg", "beach.jpg"]):
            ids[name] = add_file(w, f"/p/{name}", "image", unit(i), mtime_ns=(i + 1) * DAY, size=100 + i)
        w.replace_text(ids["receipt.jpg"], [ocr("INVOICE2031PAID")], ["ocr"])
        w.replace_text(ids["other.jpg"], [ocr("INVOICE 2032 DUE"), ocr("total 35", confidence=0.8)], ["ocr"])
        w.replace_text(ids["sign.jpg"], [ocr("春天的花园门票35元")], ["ocr"])
        w.replace_text(ids["beach.jpg"], [], ["ocr"])
        t = add_file(w, "/d/notes.txt", "text", unit(9, 2), snippets=["p0", "p1"])
        w.replace_text(t, [{"track": "passage", "text": "nothing here", "offset": 0.0},
                           {"track": "passage", "text": "the invoice was sent twice", "offset": 1.0}], ["passage"])
    return store_uri


@pytest.fixture
def worded(store_uri):
    return make_worded(store_uri)


def _paths(hits):
    return [h.path.rsplit("/", 1)[-1] for h in hits]


def test_words_found_despite_missing_spaces_and_o_for_0(worded):
    with open_store(worded) as s:
        if not expects_keywords(s):
            pytest.skip("checked by test_store_without_keywords_says_so")
        hits = s.keyword_search("image", "invoice 2031", 5)
        assert _paths(hits)[:2] == ["receipt.jpg", "other.jpg"]  # both words beat one word
        assert hits[0].score > hits[1].score and [h.rank for h in hits] == [1, 2]
        assert hits[0].words[0]["text"] == "INVOICE2031PAID" and hits[0].words[0]["box"] == BOX
        assert hits[0].words[0]["confidence"] == pytest.approx(0.99)
        assert _paths(s.keyword_search("image", "INV0ICE 2O32", 5))[0] == "other.jpg"  # O and 0 swapped
        assert _paths(s.keyword_search("image", "春天的花园", 5)) == ["sign.jpg"]
        assert _paths(s.keyword_search("image", "门票", 5)) == ["sign.jpg"]  # two characters: below a trigram
        assert s.keyword_search("image", "zebra crossing", 5) == []
        assert _paths(s.keyword_search("image", "total 35", 5)) == ["other.jpg"]  # "35": too short to look up alone
        assert s.keyword_search("image", "invoice 35", 5)[0].path.endswith("other.jpg")  # ...but it tells them apart
        assert _paths(s.keyword_search("image", "beach", 5)) == ["beach.jpg"]  # by its name
        text = s.keyword_search("text", "invoice", 5)
        assert _paths(text) == ["notes.txt"] and text[0].offset == 1.0  # the passage that matched


def test_keyword_search_takes_the_same_filters(worded):
    with open_store(worded) as s:
        if not expects_keywords(s):
            pytest.skip("checked by test_store_without_keywords_says_so")
        assert _paths(s.keyword_search("image", "invoice", 5, filters=Filters(path_glob="other*"))) == ["other.jpg"]
        assert _paths(s.keyword_search("image", "invoice", 5, filters=Filters(since=2 * DAY / 1e9))) == ["other.jpg"]
        assert _paths(s.keyword_search("image", "invoice", 5, exclude_paths=["/p/receipt.jpg"])) == ["other.jpg"]
        assert len(s.keyword_search("image", "invoice", 1)) == 1
        assert _paths(s.keyword_search("image", "invoice", 5, filters=Filters(min_size=101))) == ["other.jpg"]
    with open_writer(worded) as w:  # a tag set after the words were written: their rows follow it
        w.set_tags(w.file("/p/receipt.jpg").id, [("paper", 0.9)])
    with open_store(worded) as s:
        assert _paths(s.keyword_search("image", "invoice", 5, filters=Filters(tag="paper"))) == ["receipt.jpg"]
        assert _paths(s.keyword_search("image", "invoice 2031", 5))[0] == "receipt.jpg"  # its words kept


def test_words_follow_renames_removals_and_drops(worded):
    with open_store(worded) as s:
        if not expects_keywords(s):
            pytest.skip("checked by test_store_without_keywords_says_so")
    with open_writer(worded) as w:
        receipt = w.file("/p/receipt.jpg")
        w.rename_file(receipt.id, "/p/moved-receipt.jpg", receipt.mtime_ns)
        w.remove_files([w.file("/p/sign.jpg").id])
        assert w.unread_files("ocr", ["image"]) == set()
    with open_store(worded) as s:
        assert _paths(s.keyword_search("image", "moved", 5)) == ["moved-receipt.jpg"]
        assert _paths(s.keyword_search("image", "2031", 5)) == ["moved-receipt.jpg"]
        assert s.keyword_search("image", "春天的花园", 5) == []
        assert s.keyword_counts()["ocr"] == {"lines": 3, "files": 2}
    with open_writer(worded) as w:
        assert w.drop_text_track("ocr") == 3
        assert len(w.unread_files("ocr", ["image"])) == 3
        w.set_text_setting("text_tracks", [])
    with open_store(worded) as s:
        assert s.keyword_search("image", "invoice", 5) == [] and "ocr" not in s.keyword_counts()
        assert s.text_settings() == {"text_tracks": []}


def test_store_without_keywords_says_so(worded):
    with open_store(worded) as s:
        if expects_keywords(s):
            assert s.supports_keywords and s.keyword_counts()  # it has some
            return
        assert s.keyword_counts() == {}
        with pytest.raises(UsageError) as e:
            s.keyword_search("image", "invoice", 5)
        assert e.value.code == "store.keyword_unsupported"
        assert "needs Milvus 2.5 or later" in str(e.value) and s._db.features.version in str(e.value)
    with open_writer(worded) as w, pytest.raises(UsageError) as e:
        w.set_text_setting("text_tracks", ["ocr"])
    assert e.value.code == "store.keyword_unsupported"


def test_uncommitted_words_are_invisible_and_new_words_replace_old(worded):
    with open_store(worded) as s:
        if not expects_keywords(s):
            pytest.skip("checked by test_store_without_keywords_says_so")
        w = open_writer(worded)
        try:
            receipt = w.file("/p/receipt.jpg").id
            w.replace_text(receipt, [ocr("REFUND 7788")], ["ocr"])  # the file read again: its words replaced
            assert s.keyword_search("image", "refund", 5) == []  # not committed: not seen
            assert _paths(s.keyword_search("image", "invoice 2031", 5))[0] == "receipt.jpg"
            w.commit()
            assert _paths(s.keyword_search("image", "refund 7788", 5)) == ["receipt.jpg"]
            assert _paths(s.keyword_search("image", "invoice 2031", 5)) == ["other.jpg"]  # the old words went
            w.replace_text(receipt, [ocr("SECOND READ")], ["ocr"])
            w.rollback()
            assert _paths(s.keyword_search("image", "refund", 5)) == ["receipt.jpg"]
            assert w.keyword_counts()["ocr"] == {"lines": 4, "files": 3}
        finally:
            w.close()
        assert s.keyword_search("image", "second", 5) == []
        assert s.keyword_counts()["ocr"] == {"lines": 4, "files": 3}


#: the contract's queries, asked of every store with a keyword index (modality, text, filters)
QUERIES = [("image", "invoice 2031", None), ("image", "INV0ICE 2O32", None), ("image", "春天的花园", None),
           ("image", "门票", None), ("image", "total 35", None), ("image", "invoice 35", None),
           ("image", "beach", None), ("image", "invoice", Filters(path_glob="other*")),
           ("image", "invoice", Filters(since=2 * DAY / 1e9)), ("text", "invoice", None), ("image", "jpg", None),
           ("image", "zebra crossing", None)]


def test_milvus_lite_answers_as_the_local_store(tmp_path):
    """The same files in the same order, lines and offsets, for the contract's queries (scores differ: BM25)."""
    pytest.importorskip("milvus_lite")
    local, lite = make_worded(str(tmp_path / "local")), make_worded(f"milvus-lite:{tmp_path / 'm.db'}")
    with open_store(local) as a, open_store(lite) as b:
        for modality, text, filters in QUERIES:
            want = a.keyword_search(modality, text, 5, filters=filters)
            got = b.keyword_search(modality, text, 5, filters=filters)
            assert _paths(got) == _paths(want), text
            assert [h.offset for h in got] == [h.offset for h in want], text
            assert [[line["text"] for line in h.words] for h in got] == \
                [[line["text"] for line in h.words] for h in want], text
            assert [h.score >= 1.0 for h in got] == [h.score >= 1.0 for h in want], text  # every word held
        assert b.keyword_counts() == a.keyword_counts()
