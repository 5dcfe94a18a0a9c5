"""What every store's keyword index agrees on: how text is folded, which words of a query are looked up, how a file's
words are scored — and, for a store whose full-text engine splits on words (Milvus's BM25 analyzers), the character
n-grams that make it match *inside* words as the local store's SQLite FTS5 ``trigram`` tokenizer does.

OCR drops spaces (``INVOICE2031PAID``) and Chinese has none, so a query word matches where it appears as a run of
characters inside a line's folded text (lower case, ``o`` read as ``0``). A word of three characters or more is
inside a run of word characters exactly when every one of its character trigrams is; a shorter word beyond ASCII
(``门票``) is one uni- or bigram. :func:`grams` writes a line as those n-grams, each as one hex token (the UTF-8 bytes
of the n-gram: any word-splitting analyzer — milvus-lite's ``\\w+``, Milvus's ``standard`` that splits Chinese into
characters — keeps it whole), so BM25 over the tokens finds the candidate lines; the exact substring test and the
ranking (:func:`coverage`) are then done on the lines' text, the same on every store.

Both stores (index/local/keywords.py, index/milvus/words.py) import their rules from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"\w+", re.UNICODE)
_ASCII = re.compile(r"[\x00-\x7f]+")
#: Longest token string a line is written as (Milvus VARCHAR bytes); a longer line keeps its first distinct n-grams.
MAX_GRAM_BYTES = 65_535


def fold(text: str) -> str:
    """What is indexed and searched: lower case, ``o`` folded into ``0`` (OCR swaps them)."""
    return text.lower().replace("o", "0")


def query_words(text: str) -> list[str]:
    """The folded words of a query worth looking up: 3+ characters, or shorter ones with a character beyond ASCII
    (a Chinese word is often two characters; "of", "a", "12" would match almost anything); duplicates once."""
    words = [fold(w) for w in _WORD.findall(text)]
    return list(dict.fromkeys(w for w in words if len(w) >= 3 or not _ASCII.fullmatch(w)))


def scoring_words(text: str) -> list[str]:
    """The folded words a file's coverage counts: those looked up, and the short ASCII ones of two characters ("50"
    in "sale 50%", "b1"): too common to look up alone, but they tell near misses apart among the lines found."""
    words = [fold(w) for w in _WORD.findall(text)]
    return list(dict.fromkeys(w for w in words if len(w) >= 2 or not _ASCII.fullmatch(w)))


def _token(gram: str) -> str:
    return gram.encode("utf-8", "surrogatepass").hex()


def grams(text: str) -> str:
    """A line as whitespace-separated tokens: the character trigrams of each run of word characters of its folded
    text, plus the uni- and bigrams of runs holding a character beyond ASCII (each distinct n-gram once; at most
    MAX_GRAM_BYTES)."""
    out: dict[str, None] = {}
    for run in _WORD.findall(fold(text)):
        sizes = (3,) if _ASCII.fullmatch(run) else (1, 2, 3)
        for n in sizes:
            for i in range(len(run) - n + 1):
                out.setdefault(_token(run[i:i + n]))
    tokens, size = [], 0
    for token in out:
        size += len(token) + 1
        if size > MAX_GRAM_BYTES:
            break
        tokens.append(token)
    return " ".join(tokens)


def query_grams(words: Iterable[str]) -> str:
    """The tokens a query's looked-up words (:func:`query_words`) are searched by."""
    out: dict[str, None] = {}
    for w in words:
        if len(w) < 3:
            out.setdefault(_token(w))
        else:
            for i in range(len(w) - 2):
                out.setdefault(_token(w[i:i + 3]))
    return " ".join(out)


def holds(folded: str, words: Sequence[str]) -> bool:
    """Whether folded text holds any of ``words`` (the local store's FTS / LIKE match, as a substring test)."""
    return any(w in folded for w in words)


def coverage(folded_lines: Iterable[str], scoring: Sequence[str]) -> float:
    """The share of ``scoring`` words held by a file's folded lines (1.0: all of them)."""
    joined = " ".join(folded_lines)
    return sum(w in joined for w in scoring) / len(scoring) if scoring else 0.0


def score(cover: float, best_bm25: float) -> float:
    """A file's keyword score: its coverage plus at most 0.1 from its best line's BM25 (``best_bm25 >= 0``)."""
    return cover + 0.1 * (best_bm25 / (1.0 + best_bm25) if best_bm25 > 0 else 0.0)
