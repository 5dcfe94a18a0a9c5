"""The evaluation runner (`xsearch eval`): embed a paired-data manifest (JSONL)'s gallery, retrieve through the
real FAISS index, report metrics (``xsearch.evaluation.metrics``) per direction.

Each record of the chosen split is one gallery item per modality it has (image file, audio file, canonical
caption = its first text). For a direction q→g, every record with modality q is a query against the index of
every record with modality g; relevance is "same attributes" when records carry attributes (the generated
world), else "same group". Recall@K, mAP and median rank come with their chance level.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from xsearch.core.errors import UsageError
from xsearch.evaluation.cca import UnimodalFeatures, evaluate_cca
from xsearch.evaluation.metrics import DEFAULT_KS
from xsearch.evaluation.pls import evaluate_pls
from xsearch.evaluation.scoring import (
    ALL_DIRECTIONS,
    MODALITIES,
    DirectionResult,
    EvalReport,
    labels_for,
    parse_directions,
    pick_split,
    resolve_relevance,
    retrieve_and_score,
)
from xsearch.pairs import PairRecord, load_manifest

#: The shared pieces live in xsearch.evaluation.scoring (so the baselines need not import the runner); the runner
#: keeps them in its public names.
__all__ = ["ALIGNERS", "ALL_DIRECTIONS", "MODALITIES", "DirectionResult", "EvalReport", "evaluate", "labels_for",
           "parse_aligners", "parse_directions", "pick_split", "resolve_relevance", "retrieve_and_score",
           "run_evaluation", "run_evaluations"]


class _Embedder:
    """Embeds each record's items once per (modality, space), through engine.embed like indexing does. A file that
    cannot be decoded is noted in ``skipped`` (one line naming it and why) and left out of its modality: its
    record is then neither a query nor a gallery item of the directions that need that file."""

    def __init__(self, encoder, records: Sequence[PairRecord], on_item: Callable[[], None] | None = None):
        self.encoder, self.records, self.on_item = encoder, records, on_item
        self.cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self.failed: dict[str, set[int]] = {m: set() for m in MODALITIES}  # modality → rows whose file failed
        self.skipped: list[str] = []

    def rows(self, modality: str) -> np.ndarray:
        return np.asarray([i for i, r in enumerate(self.records)
                           if modality in r.modalities and i not in self.failed[modality]], dtype=np.int64)

    def get(self, modality: str, space: str) -> tuple[np.ndarray, np.ndarray]:
        key = (modality, space)
        if key not in self.cache:
            rows = self.rows(modality)
            vecs = self._embed(modality, space, rows)
            keep = np.asarray([i not in self.failed[modality] for i in rows], dtype=bool)
            self.cache[key] = (rows[keep], vecs)
        return self.cache[key]

    def _embed(self, modality: str, space: str, rows: np.ndarray) -> np.ndarray:
        from xsearch.engine.embed import embed_files, media_file

        enc = self.encoder
        if not len(rows):
            return np.zeros((0, enc.spaces[space]), np.float32)
        if modality == "text":  # the canonical caption (first text) of each record, embedded as a string
            texts = [self.records[i].texts[0] for i in rows]
            out = []
            for start in range(0, len(texts), 256):
                out.append(enc.embed("text", texts[start : start + 256], space=space))
                self._tick(len(texts[start : start + 256]))
            return np.concatenate(out)
        path = {"image": lambda r: r.image, "audio": lambda r: r.audio}[modality]

        files, kept = [], []
        for i in rows:
            try:
                files.append(media_file(path(self.records[i]), modality))
                kept.append(int(i))
            except OSError as e:  # gone or unreadable since the manifest was read
                self._fail(modality, int(i), f"{path(self.records[i])}: cannot read ({e.strerror or e})")
        if not files:
            return np.zeros((0, enc.spaces[space]), np.float32)
        return embed_files(enc, files, space, on_file=lambda: self._tick(1),
                           on_error=lambda pos, e: self._fail(modality, kept[pos], str(e)))

    def _fail(self, modality: str, row: int, why: str) -> None:
        if row not in self.failed[modality]:
            self.failed[modality].add(row)
            self.skipped.append(why)

    def _tick(self, n: int) -> None:
        if self.on_item:
            for _ in range(n):
                self.on_item()


def evaluate(encoder, manifest_path: str, *, split: str | None = None,
             directions: Sequence[tuple[str, str]] | None = None, relevance: str = "auto",
             factory: str = "Flat", ks: Sequence[int] = DEFAULT_KS,
             on_item: Callable[[], None] | None = None) -> EvalReport:
    """Evaluate ``encoder`` on a paired-data manifest (JSONL) split; directions the encoder lacks are left out.
    Files that cannot be decoded are left out of their modality (the record is then no query and no gallery item
    of a direction that needs that file) and listed in ``report.skipped`` as ``FILE: REASON``."""
    manifest = load_manifest(manifest_path)
    records = pick_split(manifest, split)
    directions = list(directions or ALL_DIRECTIONS)
    relevance = resolve_relevance(records, relevance)
    labels = np.asarray(labels_for(records, relevance))
    emb = _Embedder(encoder, records, on_item)
    report = EvalReport(encoder.spec, str(manifest.path), split or ("test" if records[0].split == "test" else None),
                        {}, relevance)
    for q, g in directions:
        if q not in encoder.modalities or g not in encoder.modalities:
            continue
        space = encoder.index_space(g)
        q_rows, q_vecs = emb.get(q, space)
        g_rows, g_vecs = emb.get(g, space)
        if not len(q_rows) or not len(g_rows):
            continue
        metrics, chance = retrieve_and_score(q_vecs, labels[q_rows], g_vecs, labels[g_rows], factory=factory, ks=ks)
        report.results.append(DirectionResult(q, g, metrics, chance))
    report.gallery_size = {m: int(len(emb.rows(m))) for m in MODALITIES}  # what is left once undecodable files went
    report.skipped = list(emb.skipped)
    if not report.results:
        raise UsageError("no direction could be evaluated: the manifest split and the model share no modality pair"
                         + (f" ({len(report.skipped)} file(s) could not be decoded)." if report.skipped else "."))
    return report


#: What ``--aligner`` accepts: the model itself, or a linear baseline on frozen unimodal features.
ALIGNERS = ("model", "cca", "pls")


def parse_aligners(text: str | Sequence[str] | None) -> list[str]:
    """``"model,cca,pls"`` (or a list) → aligner names in the order given, each once; UsageError for others."""
    parts = text.split(",") if isinstance(text, str) else list(text or ["model"])
    out: list[str] = []
    for part in (p.strip() for p in parts):
        if part not in ALIGNERS:
            raise UsageError(f"--aligner {part!r}: choose {', '.join(ALIGNERS)}, or a comma list such as "
                             "model,cca,pls.")
        if part not in out:
            out.append(part)
    if not out:
        raise UsageError(f"--aligner is empty: choose {', '.join(ALIGNERS)}, or a comma list such as model,cca,pls.")
    return out


def run_evaluation(manifest: str | os.PathLike, *, model: str = "builtin", device: str | None = None,
                   aligner: str = "model", split: str | None = None,
                   directions: Sequence[tuple[str, str]] | None = None, relevance: str = "auto",
                   factory: str = "Flat", ks: Sequence[int] | None = None,
                   on_item: Callable[[], None] | None = None, log: Callable[[str], None] | None = None,
                   features=None) -> EvalReport:
    """Retrieval metrics per direction on a paired-data manifest (JSONL) split: the model ``model`` (a registry
    spec, loaded on ``device``; ``aligner="model"``) or a linear baseline on frozen unimodal features fitted on the
    train split (``aligner="cca"`` or ``"pls"``; ``model`` and ``device`` are then unused, and ``features``, a
    ``cca.UnimodalFeatures``, may carry features already extracted). What ``xsearch eval`` and ``xsearch demo``
    call."""
    ks = tuple(ks or DEFAULT_KS)
    (aligner,) = parse_aligners([aligner])
    if aligner in ("cca", "pls"):
        fit_and_evaluate = evaluate_cca if aligner == "cca" else evaluate_pls
        return fit_and_evaluate(str(manifest), split=split, directions=directions, relevance=relevance,
                                factory=factory, ks=ks, features=features, log=log)
    from xsearch.encoders.registry import load_encoder

    encoder = load_encoder(model or "builtin", device)
    return evaluate(encoder, str(manifest), split=split, directions=directions, relevance=relevance,
                    factory=factory, ks=ks, on_item=on_item)


def run_evaluations(manifest: str | os.PathLike, aligners: str | Sequence[str], **kwargs) -> list[EvalReport]:
    """``run_evaluation`` for each aligner of a comma list or sequence (``"model,cca,pls"``), in that order, on the
    same split, directions and relevance; the linear baselines share one extraction of the frozen features."""
    names = parse_aligners(aligners)
    features = None
    if sum(a in ("cca", "pls") for a in names) > 1:
        train_records = load_manifest(manifest).split("train")
        features = UnimodalFeatures(str(manifest), "train", train_records) if train_records else None
    return [run_evaluation(manifest, aligner=a, features=features, **kwargs) for a in names]
