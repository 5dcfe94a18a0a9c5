"""A calibrated relevance cue: does a result stand out from the rest of the collection, or is it only the best of
a bad lot?

A cosine score means little on its own: with the builtin model a nonsense query ("zzzz") scores ~0.67 against
every text, while a true match can score less. What tells them apart is how far a result sits above the query's
own *baseline*: its mean score over a sample of the collection's items of that modality (up to ``SAMPLE`` items,
re-read when the collection changes). ``relevance = score - baseline``; a result is *weak* when its relevance is
below the model's calibrated ``GAP``.

``GAP`` is measured per model on the generated world (60 groups, every caption against every item of each
modality, 2026-12; ``tests/e2e/test_relevance.py`` re-checks it): a held-out caption's own item sits 0.88–0.97
above the baseline (5th–50th percentile) in every modality, a random other item 0.43–0.60 at its 95th percentile,
and the best result of a nonsense query ("zzzz", "my tax return for 2023") 0.43–0.69. At 0.7 every caption's own
item clears and about 1 in 50 mismatched pairs does. Models without a measured gap get the relevance number but no
verdict (``weak`` stays None): the page and CLI then show no cue rather than a guess.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

#: Calibrated gap per model spec (see the module docstring for how it was measured).
GAP = {"builtin": 0.7}
SAMPLE = 2048
_CACHE: dict[tuple, np.ndarray] = {}
_CACHE_MAX = 16


def gap_for(model_spec: str | None) -> float | None:
    return GAP.get(model_spec or "")


def baseline_vectors(store, track: str) -> np.ndarray:
    """Up to SAMPLE of the collection's ``track`` vectors, spread over its items (cached per commit)."""
    key = (id(store), getattr(store, "uri", ""), repr(store.generation), track)
    got = _CACHE.get(key)
    if got is not None:
        return got
    chunks, n = [], 0
    for _ids, _files, vectors in store.iter_items(track):
        chunks.append(np.asarray(vectors, dtype=np.float32))
        n += len(vectors)
        if n >= 4 * SAMPLE:
            break
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)
    if len(vectors) > SAMPLE:
        vectors = vectors[np.linspace(0, len(vectors) - 1, SAMPLE).astype(int)]
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = vectors
    return vectors


def mark(store, track: str, query: np.ndarray, hits: list, gap: float | None) -> list:
    """``hits`` with ``relevance`` (score above the query's baseline in this collection) and ``weak`` set."""
    vectors = baseline_vectors(store, track)
    if not hits or len(vectors) == 0 or vectors.shape[1] != query.shape[-1]:
        return hits
    base = float(np.mean(vectors @ query.astype(np.float32)))
    out = []
    for h in hits:
        rel = round(float(h.score) - base, 4)
        out.append(replace(h, relevance=rel, weak=None if gap is None else bool(rel < gap)))
    return out
