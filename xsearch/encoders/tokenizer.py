"""CLIP's byte-level BPE without importing open_clip (or torch): the same token ids, as a numpy array.

open_clip's ``SimpleTokenizer`` (from OpenAI CLIP, MIT licence) is what the builtin model was trained with, but
``import open_clip.tokenizer`` runs ``open_clip/__init__`` — the whole package, torchvision and transformers
included, several seconds per CLI query. This module reads the same vocabulary file (``bpe_simple_vocab_16e6.txt.gz``
from the installed open_clip package, found without importing it) and repeats the same steps: ftfy + double HTML
unescape, whitespace collapse, lower case, the same pre-tokenising regex, the same merges, ``<start_of_text>`` …
``<end_of_text>``, truncation keeping the end token. ``tests/unit/test_tokenizer.py`` checks id-for-id identity.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"
_SPECIAL = ("<start_of_text>", "<end_of_text>")


def vocab_path() -> Path:
    """open_clip's BPE vocabulary file, located through the package's import spec (nothing is imported)."""
    from xsearch.core.errors import ModelError

    spec = importlib.util.find_spec("open_clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / VOCAB_FILE
        if path.is_file():
            return path
    raise ModelError(f"the text tokenizer needs {VOCAB_FILE} from open_clip_torch, which is not installed.",
                     code="model.no_vocab")


@lru_cache()
def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


# ftfy leaves printable ASCII without '&' unchanged (tests/unit/test_tokenizer.py checks it), so such queries skip
# importing it: 75 ms of a one-shot CLI query.
_FTFY_NO_OP = re.compile(r"[ -%'-~]*")


def _clean(text: str) -> str:
    """open_clip's 'lower' cleaning: ftfy, HTML unescaped twice, whitespace collapsed, lower case."""
    if not _FTFY_NO_OP.fullmatch(text):
        import ftfy

        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return " ".join(text.split()).strip().lower()


class ClipTokenizer:
    """``tokenizer(texts) -> int64 array [n, context_length]``, id-for-id what open_clip's SimpleTokenizer gives."""

    def __init__(self, context_length: int = 77, bpe_path: str | Path | None = None):
        import regex

        merges = gzip.open(bpe_path or vocab_path()).read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in merges[1:49152 - 256 - 2 + 1]]
        self.byte_encoder = _bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + list(_SPECIAL)
        self.encoder = {tok: i for i, tok in enumerate(vocab)}
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {t: t for t in _SPECIAL}
        self.pat = regex.compile("|".join(_SPECIAL) + r"""|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                                 regex.IGNORECASE)
        self.sot_token_id, self.eot_token_id = (self.encoder[t] for t in _SPECIAL)
        self.vocab_size = len(self.encoder)
        self.context_length = context_length

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        pairs = set(zip(word, word[1:]))
        if not pairs:
            return token + "</w>"
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            merged: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    merged.extend(word[i:])
                    break
                merged.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = tuple(merged)
            if len(word) == 1:
                break
            pairs = set(zip(word, word[1:]))
        out = " ".join(word)
        self.cache[token] = out
        return out

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for token in self.pat.findall(_clean(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        n = context_length or self.context_length
        out = np.zeros((len(texts), n), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_token_id] + self.encode(text) + [self.eot_token_id]
            if len(ids) > n:
                ids = ids[:n]
                ids[-1] = self.eot_token_id
            out[row, : len(ids)] = ids
        return out
