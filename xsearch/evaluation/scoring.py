"""What every aligner's evaluation shares (the model runner and the CCA / PLS baselines alike): the modalities a
paired-data manifest (JSONL) record pairs and the directions between them, the split to evaluate, relevance
labels, the report types, and retrieval through the real FAISS layer scored by ``xsearch.evaluation.metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from xsearch.core.errors import UsageError
from xsearch.evaluation.metrics import DEFAULT_KS, chance_metrics, metrics_from_positions
from xsearch.pairs import Manifest, PairRecord

#: What a manifest record pairs (not every registered modality: videos are evaluated by xsearch.evaluation.video).
MODALITIES = ("image", "audio", "text")
ALL_DIRECTIONS = [(q, g) for q in MODALITIES for g in MODALITIES if q != g]


def parse_directions(text: str | None) -> list[tuple[str, str]]:
    """``"text:image,image:audio"`` → pairs; None → every cross-modal direction."""
    if not text:
        return list(ALL_DIRECTIONS)
    out = []
    for part in text.split(","):
        q, sep, g = part.strip().partition(":")
        if not sep or q not in MODALITIES or g not in MODALITIES:
            raise UsageError(f"bad direction {part!r}; use QUERY:GALLERY with image, audio or text, e.g. text:image.")
        out.append((q, g))
    return out


def pick_split(manifest: Manifest, split: str | None) -> list[PairRecord]:
    """Records of ``split``; default: 'test' when the manifest has one, else every record."""
    if split is None:
        split = "test" if any(r.split == "test" for r in manifest.records) else None
    records = manifest.split(split)
    if not records:
        raise UsageError(f"manifest {manifest.path} has no records in split {split!r}.")
    return records


@dataclass
class DirectionResult:
    query: str
    gallery: str
    metrics: dict
    chance: dict

    @property
    def name(self) -> str:
        return f"{self.query}→{self.gallery}"


@dataclass
class EvalReport:
    model: str
    manifest: str
    split: str | None
    gallery_size: dict
    relevance: str
    results: list[DirectionResult] = field(default_factory=list)
    aligner: str = "model"
    skipped: list[str] = field(default_factory=list)  # "FILE: REASON" for each file that could not be decoded

    def to_dict(self) -> dict:
        return {
            "model": self.model, "aligner": self.aligner, "manifest": self.manifest, "split": self.split,
            "relevance": self.relevance, "gallery_size": self.gallery_size,
            "directions": {r.name: {"metrics": r.metrics, "chance": r.chance} for r in self.results},
            "skipped": self.skipped,
        }


def labels_for(records: Sequence[PairRecord], relevance: str) -> list[str]:
    if relevance == "group":
        return [r.group for r in records]
    return [r.label for r in records]


def retrieve_and_score(query_vecs: np.ndarray, query_labels: Sequence[str], gallery_vecs: np.ndarray,
                       gallery_labels: Sequence[str], *, factory: str = "Flat",
                       ks: Sequence[int] = DEFAULT_KS) -> tuple[dict, dict]:
    """Index the gallery with our FAISS layer, rank it fully for each query, return (metrics, chance)."""
    from xsearch.index.local import VectorIndex

    index = VectorIndex.create(gallery_vecs.shape[1], factory)
    index.add(np.arange(len(gallery_vecs), dtype=np.int64), gallery_vecs)
    _, ids = index.search(query_vecs, len(gallery_vecs))
    glabels = np.asarray(gallery_labels)
    positions, n_rel = [], []
    for row, label in zip(ids, query_labels):
        rel = glabels == label
        n_rel.append(int(rel.sum()))
        valid = row[row >= 0]
        positions.append(np.flatnonzero(rel[valid]) + 1)
    return metrics_from_positions(positions, n_rel, ks), chance_metrics(len(gallery_vecs), n_rel, ks)


def resolve_relevance(records: Sequence[PairRecord], relevance: str) -> str:
    if relevance not in ("auto", "group", "attributes"):
        raise UsageError(f"--relevance {relevance!r}: choose auto, group or attributes.")
    if relevance == "auto":
        return "attributes" if all(r.attributes for r in records) else "group"
    if relevance == "attributes" and not all(r.attributes for r in records):
        raise UsageError("--relevance attributes needs an 'attributes' object on every record.")
    return relevance
