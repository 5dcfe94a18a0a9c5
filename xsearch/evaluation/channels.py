"""The search channels side by side (`xsearch eval --channels`): vector, keyword and hybrid, for each direction
whose query is text, measured through the real engine.

The split's gallery is indexed into a temporary collection as a user's folder would be (``Engine.index_folder``,
the model given; each file under its own name — names are words the keyword channel reads; a text item is a
text file holding the record's canonical caption, the first of its texts), and each query is searched with
``Engine.search(..., mode=CHANNEL)``:

- ``text→image``, ``text→audio``: the query is the record's canonical caption (as in the main table);
- ``text→text``: the query is the record's second text (a paraphrase), the gallery the canonical captions —
  only when the records have two texts or more (the main table has no text→text: a caption against itself).

Relevance is the main table's (same attributes, or same group). Each list is K deep (the largest K asked, at
most the gallery); a relevant file beyond it counts as not found, so the channels report Recall@K only. OCR is
not read (the world's pictures carry no words): the keyword channel sees file names and the text files' words,
as ``xsearch index`` without ``--ocr`` would. ``hybrid`` is what ``xsearch search`` does by default on such a
collection (engine/hybrid.py).

Research code: it imports the engine; the engine never imports it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xsearch.core.errors import UsageError
from xsearch.evaluation.metrics import DEFAULT_KS, metrics_from_positions
from xsearch.evaluation.scoring import labels_for, pick_split, resolve_relevance
from xsearch.pairs import PairRecord, load_manifest

CHANNELS = ("vector", "keyword", "hybrid")
GALLERIES = ("image", "audio", "text")


@dataclass
class ChannelResult:
    query: str
    gallery: str
    metrics: dict[str, dict]  # channel -> {"R@1": ..., "R@5": ..., "queries": n}

    @property
    def name(self) -> str:
        return f"{self.query}→{self.gallery}"


@dataclass
class ChannelReport:
    model: str
    split: str | None
    depth: int
    gallery_size: dict[str, int]
    results: list[ChannelResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"model": self.model, "split": self.split, "depth": self.depth, "gallery_size": self.gallery_size,
                "directions": {r.name: r.metrics for r in self.results}}


def channel_directions(directions: Sequence[tuple[str, str]] | None, records: Sequence[PairRecord]):
    """The text-query directions among ``directions`` (None: all), and ``text→text`` when every record has two
    texts or more."""
    named = list(directions) if directions is not None else [("text", g) for g in GALLERIES if g != "text"]
    out = [(q, g) for q, g in named if q == "text" and g in GALLERIES]
    if directions is None and records and all(len(r.texts) >= 2 for r in records):
        out.append(("text", "text"))
    return list(dict.fromkeys(out))


def run_channel_evaluation(manifest: str | os.PathLike, *, model: str = "builtin", device: str | None = None,
                           split: str | None = None, directions: Sequence[tuple[str, str]] | None = None,
                           relevance: str = "auto", ks: Sequence[int] = DEFAULT_KS,
                           on_item: Callable[[], None] | None = None) -> ChannelReport:
    """Recall@K of the vector, keyword and hybrid channels per text-query direction (module docstring)."""
    from xsearch.engine import Engine

    loaded = load_manifest(manifest)
    records = pick_split(loaded, split)
    labels = labels_for(records, resolve_relevance(records, relevance))
    dirs = channel_directions(directions, records)
    if not dirs:
        raise UsageError("--channels needs a direction whose query is text (text:image, text:audio, ...).")
    with tempfile.TemporaryDirectory(prefix="xsearch-channels-") as tmp:
        gallery = _gallery(records, {g for _, g in dirs}, Path(tmp) / "gallery")
        with Engine(Path(tmp) / "collection", model=model or "builtin", device=device) as engine:
            engine.index_folder(Path(tmp) / "gallery", workers=0)
            store = engine.store()
            sizes = {g: int(store.file_count(g)) if g in store.modalities else 0 for g in gallery}  # as indexed
            depth = max(ks)
            report = ChannelReport(model or "builtin", split or ("test" if records[0].split == "test" else None),
                                   depth, sizes)
            for q, g in dirs:
                queries = [(i, r.texts[1] if g == "text" else r.texts[0]) for i, r in enumerate(records)
                           if len(r.texts) > (1 if g == "text" else 0)]
                if not queries or not sizes.get(g):
                    continue
                k = min(depth, sizes[g])
                metrics = {c: _channel(engine, queries, g, gallery[g], labels, c, k, ks, on_item) for c in CHANNELS}
                report.results.append(ChannelResult(q, g, metrics))
    if not report.results:
        raise UsageError("--channels: no direction could be measured (the split has no captions to query with, or "
                         "the model indexed none of the gallery).")
    return report


def _channel(engine, queries, target: str, rows_by_path: dict[str, int], labels: Sequence[str], channel: str,
             k: int, ks: Sequence[int], on_item) -> dict:
    from xsearch.core.types import Query

    gallery_labels = [labels[row] for row in rows_by_path.values()]
    positions, n_relevant = [], []
    for row, text in queries:
        hits = engine.search([Query("text", text)], to=target, k=k, mode=channel)[target]
        found = [rows_by_path.get(str(Path(h.path).resolve())) for h in hits]
        positions.append(np.asarray([i + 1 for i, r in enumerate(found) if r is not None and labels[r] == labels[row]],
                                    dtype=np.int64))
        n_relevant.append(sum(label == labels[row] for label in gallery_labels))
        if on_item:
            on_item()
    m = metrics_from_positions(positions, n_relevant, [x for x in ks if x <= k])
    return {key: v for key, v in m.items() if key.startswith("R@") or key == "queries"}


def _gallery(records: Sequence[PairRecord], modalities: set[str], root: Path) -> dict[str, dict[str, int]]:
    """Each record's file of each gallery modality under ``root/MODALITY/ROW/NAME`` (its own name; a text item is
    ``GROUP.txt`` holding its canonical caption, as a generated world's text files are); ``{modality: {resolved
    path: record row}}``."""
    out: dict[str, dict[str, int]] = {m: {} for m in modalities}
    for i, r in enumerate(records):
        for m in modalities:
            src = r.image if m == "image" else r.audio if m == "audio" else None
            if (m == "text" and not r.texts) or (m != "text" and not src):
                continue
            folder = root / m / f"{i:06d}"
            folder.mkdir(parents=True)
            dst = folder / (f"{r.group}.txt" if m == "text" else Path(src).name)
            if m == "text":
                dst.write_text(r.texts[0] + "\n", encoding="utf-8")
            else:
                _link_or_copy(Path(src), dst)
            out[m][str(dst.resolve())] = i
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
