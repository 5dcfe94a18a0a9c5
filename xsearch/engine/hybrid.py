"""Keyword + vector (hybrid) search: the words channel beside the vector channel, fused by reciprocal rank.

Modes (``xsearch search --mode``, ``mode=`` on the API):

- ``vector``: the embedding search alone (what xsearch always did).
- ``keyword``: files whose words match the query's text — text passages, words read by OCR in pictures and video
  frames, file names (the store's keyword index; index/local/keywords.py) — ranked there.
- ``hybrid``: both, fused by reciprocal rank fusion (RRF, Σ 1 / (60 + rank), each list ``HYBRID_DEPTH`` deep).
  RRF needs no calibration between a cosine and a BM25 score, and a file missing from one list simply gets
  nothing from it: when no words match, the order is the vector order unchanged. One rule on top: when the query
  has two words or more, files whose words contain *all* of them (keyword score ≥ 1: the store scores the share of
  the query's words found, plus at most 0.1 for BM25) come first, by RRF among themselves. Without it a near miss
  ("INVOICE 2032 DUE" for "invoice 2031") that the vector channel happens to rank first ties with the right
  picture or beats it (ranks 1+2 against 2+1), and the vector channel of a model that cannot read decides.
  Two rules under it, for the keyword list's part in the RRF (text→text on a generated world, where the texts are
  captions: R@1 1.00 vector, 0.59 keyword, 0.86 hybrid without them, 1.00 with them; docs/ocr.md):

  - a keyword hit counts only when it is *confident*: it holds more than half of the query's words (keyword score
    ≥ ``CONFIDENT``). A long query shares its common words ("in", "the", "on a ... background") with most texts,
    and substrings count ("are" in "squares"): hits holding only those carry no signal, yet in an equal-weight
    RRF they pulled the vector channel's right answer down. No confident hit: the vector order unchanged.
  - the keyword list enters by *tiers*: hits within the BM25 bonus's reach (``TIER``, 0.1) of the tier's first
    hold about the same share of the words and share its rank — their order inside the tier is BM25 on line
    lengths, noise that a plain RRF turned into rank differences outweighing the vector channel.

The default (``mode=None``) is ``hybrid`` for a search by one text query when the collection keeps a keyword
index with lines in it, else ``vector``: several queries are combined by ``--fusion`` with their weights, which
the words cannot follow (``--mode hybrid`` adds the words of all the text queries to that). Only text queries
feed the keyword channel (an image query has no words); a hybrid search without a text query is a vector search.
A hit found by its words carries them (``Hit.words``: text, box, confidence); one that only the words found says
``matched="words"``. On a store without a keyword index (a Milvus server before 2.5) ``hybrid`` is ``vector``, and
``keyword`` its one coded error (store.keyword_unsupported).
"""

from __future__ import annotations

from dataclasses import replace

from xsearch.core.errors import UsageError
from xsearch.core.types import Hit
from xsearch.engine.fusion import HYBRID_DEPTH, RRF_K

MODES = ("hybrid", "vector", "keyword")


def check_mode(mode: str | None) -> str | None:
    if mode is not None and mode not in MODES:
        raise UsageError(f"unknown search mode {mode!r}; choose {', '.join(MODES)}", code="usage.bad_mode",
                         mode=str(mode), choices=", ".join(MODES))
    return mode


def resolve_mode(store, mode: str | None, text: str, n_queries: int = 1) -> str:
    """The mode a search runs in (see the module docstring); ``text`` is the text queries' words ("" when none)."""
    mode = check_mode(mode)
    if mode is None:
        if not text or n_queries != 1:
            return "vector"
        counts = store.keyword_counts() if getattr(store, "supports_keywords", False) else {}
        return "hybrid" if any(c.get("lines") for c in counts.values()) else "vector"
    if mode == "keyword" and not text:
        raise UsageError("keyword search needs a text query", code="usage.keyword_needs_text")
    if mode == "hybrid" and (not text or not getattr(store, "supports_keywords", False)):
        return "vector"  # no words to add (a store without a keyword index: ``keyword`` says so, hybrid is vectors)
    return mode


def depth(k: int) -> int:
    """How deep each channel is read for a hybrid search of ``k`` results."""
    return max(k, HYBRID_DEPTH)


def n_words(text: str) -> int:
    """How many words of ``text`` the keyword channel looks up."""
    import re

    return len(re.findall(r"\w+", text))


def keyword_hits(store, target: str, text: str, k: int, req) -> list[Hit]:
    return store.keyword_search(target, text, k, filters=req.filters, exclude_paths=req.exclude_paths)


#: A keyword hit scoring at least this holds every word of the query (index/store.py: keyword_search).
ALL_WORDS = 1.0
#: A keyword hit scoring at least this holds more than half of the query's words (the score is the share held plus
#: under 0.1 of BM25: exactly so for queries of up to ten words); below it, no evidence: left out of the fusion
#: (module docstring). Substrings count as held ("are" in "squares", "in" in "plain"), so half is too easy.
CONFIDENT = 0.6


#: How far below a tier's first keyword hit another still belongs to its tier: the BM25 bonus's reach.
TIER = 0.1


def _tiers(word_hits: list[Hit]) -> list[tuple[str, int]]:
    """(path, rank) of keyword hits (best first), a tier sharing the rank of its first hit (module docstring)."""
    out, lead, lead_rank = [], None, 0
    for rank, h in enumerate(word_hits, 1):
        if lead is None or h.score < lead - TIER:
            lead, lead_rank = h.score, rank
        out.append((h.path, lead_rank))
    return out


def _rrf(*ranked: list[tuple[str, int]]) -> list[tuple[str, float]]:
    """Reciprocal rank fusion (Σ 1 / (RRF_K + rank)) of lists of (path, rank); ties by best rank, then by the
    first list's order (the vector channel's)."""
    fused: dict[str, float] = {}
    best: dict[str, int] = {}
    for items in ranked:
        for path, rank in items:
            fused[path] = fused.get(path, 0.0) + 1.0 / (RRF_K + rank)
            best[path] = min(best.get(path, rank), rank)
    order = sorted(fused, key=lambda p: (-round(fused[p], 12), best[p]))
    return [(p, fused[p]) for p in order]


def fuse(vector_hits: list[Hit], word_hits: list[Hit], k: int, n_words: int = 1) -> list[Hit]:
    """RRF of the vector list and the keyword list's confident hits (weight 1 each), at most ``k`` files;
    ``score`` the fused one. No confident keyword hit: the vector list as it is (its scores kept)."""
    word_hits = [h for h in word_hits if h.score >= CONFIDENT]
    if not word_hits:
        return vector_hits[:k]
    by_path: dict[str, Hit] = {}
    for h in vector_hits:
        by_path.setdefault(h.path, h)
    words = {h.path: h for h in word_hits}
    for path, h in words.items():
        if path not in by_path:
            by_path[path] = replace(h, matched="words")
    merged = _rrf([(h.path, rank) for rank, h in enumerate(vector_hits, 1)], _tiers(word_hits))
    if n_words >= 2:  # files holding every word of the query first (stable: RRF order within each tier)
        complete = {h.path for h in word_hits if h.score >= ALL_WORDS}
        merged.sort(key=lambda item: item[0] not in complete)
    out = []
    for rank, (path, score) in enumerate(merged[:k], 1):
        hit = replace(by_path[path], rank=rank, score=float(score))
        if path in words:
            hit.words = words[path].words
        out.append(hit)
    return out
