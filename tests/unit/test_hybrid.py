"""Hybrid (keyword + vector) ranking in the engine (xsearch/engine/hybrid.py) and its modes."""

from __future__ import annotations

import pytest

from xsearch.core.errors import UsageError
from xsearch.core.types import Hit, Query
from xsearch.engine.hybrid import fuse, resolve_mode


def hit(path: str, score: float, words=None) -> Hit:
    return Hit(0, score, path, "image", 0.0, 1, words=words)


def test_no_words_leaves_the_vector_list_as_it_is():
    vec = [hit("a", 0.9), hit("b", 0.5), hit("c", 0.1)]
    assert fuse(vec, [], 2) == vec[:2]


def test_rrf_and_files_holding_every_word_first():
    vec = [hit("near-miss", 0.9), hit("x", 0.8), hit("y", 0.7), hit("receipt", 0.1)]
    words = [hit("receipt", 1.09, [{"text": "INVOICE2031PAID"}]), hit("near-miss", 0.7, [{"text": "INVOICE2032"}]),
             hit("only-words", 0.65, [{"text": "2031"}])]
    out = fuse(vec, words, 5, n_words=2)
    assert [h.path for h in out][:2] == ["receipt", "near-miss"]  # every word first, then RRF
    assert out[0].words == [{"text": "INVOICE2031PAID"}] and [h.rank for h in out] == [1, 2, 3, 4, 5]
    assert out[1].score > out[2].score  # RRF within the tier: in both lists beats one list
    only = next(h for h in out if h.path == "only-words")
    assert only.matched == "words"
    one_word = fuse(vec, words, 5, n_words=1)  # one word: plain RRF (both lists: near-miss 1+2 beats 4+1)
    assert [h.path for h in one_word][0] == "near-miss"


def test_keyword_hits_holding_half_the_words_or_less_leave_the_vector_order():
    """A long query's common words ("in", "the", "on a ... background") are in most texts: hits holding only those
    are no evidence (text→text on a generated world lost R@1 1.00 → 0.86 to them; docs/ocr.md)."""
    vec = [hit("right", 0.99), hit("a", 0.7), hit("b", 0.6)]
    noise = [hit("b", 0.59), hit("c", 0.55), hit("a", 0.5)]
    assert [h.path for h in fuse(vec, noise, 3, n_words=12)] == ["right", "a", "b"]
    assert fuse(vec, noise, 3, n_words=12) == vec  # the vector list as it is, scores kept


def test_keyword_hits_within_the_bm25_bonus_share_their_rank():
    """Hits holding the same share of the words differ only by BM25 on line lengths: that order is no reason to
    put the vector channel's second before its first."""
    vec = [hit("right", 0.99), hit("wrong", 0.8), hit("x", 0.7)]
    words = [hit("wrong", 0.95), hit("other", 0.94), hit("right", 0.93)]  # 2 of 3 words each, BM25 apart
    assert [h.path for h in fuse(vec, words, 3, n_words=3)][:2] == ["right", "wrong"]
    words = [hit("wrong", 1.05), hit("other", 0.7), hit("right", 0.68)]  # every word beats two of three
    assert [h.path for h in fuse(vec, words, 3, n_words=3)][0] == "wrong"


class _Store:
    supports_keywords = True

    def __init__(self, lines: int):
        self.lines = lines

    def keyword_counts(self):
        return {"ocr": {"lines": self.lines, "files": 1}} if self.lines else {}


def test_mode_defaults_and_errors():
    assert resolve_mode(_Store(3), None, "invoice") == "hybrid"
    assert resolve_mode(_Store(0), None, "invoice") == "vector"  # no words indexed
    assert resolve_mode(_Store(3), None, "invoice", n_queries=2) == "vector"  # weights are a vector concept
    assert resolve_mode(_Store(3), None, "") == "vector"  # an image query has no words
    assert resolve_mode(_Store(3), "hybrid", "") == "vector"
    no_index = _Store(0)
    no_index.supports_keywords = False  # a Milvus server before 2.5: hybrid is its vectors, keyword its error
    assert resolve_mode(no_index, "hybrid", "invoice") == "vector" and resolve_mode(no_index, None, "x") == "vector"
    assert resolve_mode(no_index, "keyword", "invoice") == "keyword"
    with pytest.raises(UsageError) as e:
        resolve_mode(_Store(3), "keyword", "")
    assert e.value.code == "usage.keyword_needs_text"
    with pytest.raises(UsageError) as e:
        resolve_mode(_Store(3), "words", "x")
    assert e.value.code == "usage.bad_mode"


def test_engine_finds_files_by_name_and_passage(indexed):
    from xsearch.engine import Engine

    engine = Engine(indexed)
    by_name = engine.search([Query("text", "g000003")], to="image", mode="keyword")["image"]
    assert [h.path.rsplit("/", 1)[-1] for h in by_name] == ["g000003.png"]
    assert by_name[0].words[0]["track"] == "name"
    stats = engine.stats()
    assert stats["words"]["passage"]["files"] > 0 and stats["text_tracks"] == []
    vec = engine.search([Query("text", "zzzz qqqq")], to="image", k=3, mode="vector")["image"]
    default = engine.search([Query("text", "zzzz qqqq")], to="image", k=3)["image"]  # hybrid, no word matches
    assert [(h.path, h.score) for h in default] == [(h.path, h.score) for h in vec]
