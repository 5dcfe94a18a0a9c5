"""Looking around a collection without a query: pages of its files (most recent first, or shuffled), example
queries drawn from its own contents, one item's details for a preview pane, a sound's waveform.

Every function takes an open store (xsearch.index); the server's routes call them with the session's store.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from xsearch.core.types import Hit
from xsearch.media import modalities

_FIRST_ITEMS: dict[tuple, dict[int, int]] = {}
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")


def first_items(store, modality: str) -> dict[int, int]:
    """{file id: its first item id} for one modality (a video's: its first picture window); cached per commit."""
    track = modalities.tracks_of(modality)[0]
    key = (id(store), repr(store.generation), track)
    got = _FIRST_ITEMS.get(key)
    if got is None:
        got = {}
        if track in store.modalities:
            for ids, files, _vectors in store.iter_items(track):
                for item, file in zip(ids.tolist(), files.tolist()):
                    if file not in got or item < got[file]:
                        got[file] = item
        if len(_FIRST_ITEMS) > 16:
            _FIRST_ITEMS.pop(next(iter(_FIRST_ITEMS)))
        _FIRST_ITEMS[key] = got
    return got


def browse(store, modality: str, *, order: str = "recent", offset: int = 0, limit: int = 24,
           seed: int = 0) -> tuple[int, list[Hit]]:
    """(files of ``modality``, one page of them as hits): newest first (modification time), or shuffled with
    ``seed`` (the same seed pages through the same order)."""
    files = store.files(modality=modality)
    if order == "random":
        files.sort(key=lambda f: f.path)
        random.Random(seed).shuffle(files)
    else:
        files.sort(key=lambda f: (-f.mtime_ns, f.path))
    items = first_items(store, modality)
    page = []
    for rank, f in enumerate(files[offset:offset + limit], offset + 1):
        item = items.get(f.id)
        if item is None:
            continue
        hit = store.item(item)
        if hit is not None:
            page.append(replace(hit, rank=rank, score=float("nan")))
    return len(files), page


def examples(store, n: int = 4, seed: int = 0) -> list[str]:
    """Queries that describe things in the collection: the first sentences of its texts, else its most frequent
    tags, else words from its file names."""
    rng = random.Random(seed)
    texts = store.files(modality="text") if "text" in store.modalities else []
    found: list[str] = []
    items = first_items(store, "text") if texts else {}
    for f in rng.sample(texts, min(len(texts), 4 * n)):
        hit = store.item(items[f.id]) if f.id in items else None
        line = (hit.snippet or "").strip().split("\n")[0] if hit is not None else ""
        line = re.split(r"(?<=[.!?])\s", line)[0].strip().rstrip(".")
        if 3 <= len(line) <= 70 and line not in found:
            found.append(line)
        if len(found) == n:
            return found
    for tag in store.tag_counts():
        if tag not in found:
            found.append(tag)
        if len(found) == n:
            return found
    words: dict[str, int] = {}
    for f in store.files():
        for w in _WORD.findall(Path(f.path).stem.replace("_", " ")):
            words[w.lower()] = words.get(w.lower(), 0) + 1
    found += [w for w, _ in sorted(words.items(), key=lambda x: (-x[1], x[0])) if w not in found][:n - len(found)]
    return found


def details(store, hit: Hit) -> dict:
    """What a preview pane shows beside the file: its folder, modification date and tags."""
    row = store.file(hit.path)
    out = {"folder": str(Path(hit.path).parent), "mtime": None, "tags": []}
    if row is not None:
        out["mtime"] = row.mtime_ns / 1e9
        out["tags"] = [{"label": label, "score": round(float(score), 3)} for label, score in store.tags_of(row.id)]
    return out


def waveform(path: str, points: int = 160) -> dict:
    """A sound's outline: ``points`` peak levels (0–1) over its first ten minutes, and its duration."""
    from xsearch.media.audio import load_audio

    wave, info = load_audio(path, sample_rate=8000)
    if wave.size == 0:
        return {"duration": float(info.get("duration", 0.0)), "peaks": []}
    chunks = np.array_split(np.abs(wave), min(points, wave.size))
    peaks = np.array([c.max() if c.size else 0.0 for c in chunks], dtype=np.float32)
    top = float(peaks.max()) or 1.0
    return {"duration": float(info.get("duration", wave.size / 8000)),
            "peaks": [round(float(p) / top, 3) for p in peaks]}
