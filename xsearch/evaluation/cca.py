"""Classic subspace baselines between frozen unimodal features (Rasiwasia et al. 2010 style): CCA here, PLS in
``xsearch.evaluation.pls``; both go through ``evaluate_subspace``.

For each modality pair, a linear two-view model (scikit-learn) is fitted on the train split between hand-made
features that no training has aligned: images → an 8×8 RGB thumbnail and a hue histogram of the colourful
pixels; audio → per-band log-Mel mean and standard deviation plus a 20-step loudness envelope; text → a binary
bag of words (``UnimodalFeatures``, extracted once per record and shared by every aligner of one run). Both sides
are projected into the shared latent space and compared by cosine, retrieved through the same FAISS layer and
metrics as the contrastive model (``xsearch eval --aligner cca`` / ``pls``).
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, Sequence

import numpy as np

from xsearch.core.errors import MediaError, UsageError
from xsearch.evaluation.metrics import DEFAULT_KS
from xsearch.evaluation.scoring import (
    ALL_DIRECTIONS,
    MODALITIES,
    DirectionResult,
    EvalReport,
    labels_for,
    pick_split,
    resolve_relevance,
    retrieve_and_score,
)
from xsearch.pairs import PairRecord, load_manifest

SAMPLE_RATE = 16000
N_COMPONENTS = 32


def image_features(records: Sequence[PairRecord]) -> np.ndarray:
    from PIL import Image

    from xsearch.media.image import load_image

    rows = []
    for r in records:
        img = load_image(r.image, 64_000_000)
        thumb = np.asarray(img.resize((8, 8), Image.BILINEAR), dtype=np.float32).reshape(-1) / 255.0
        hsv = np.asarray(img.resize((32, 32), Image.BILINEAR).convert("HSV"), dtype=np.float32) / 255.0
        colourful = hsv[..., 1] > 0.25
        hist, _ = np.histogram(hsv[..., 0][colourful], bins=16, range=(0, 1))
        rows.append(np.concatenate([thumb, hist / max(1, colourful.sum()), [colourful.mean()]]))
    return np.stack(rows)


@functools.lru_cache(maxsize=1)
def _mel():
    from xsearch.media.melspec import LogMelSpectrogram

    return LogMelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=512, hop_length=320, n_mels=64, f_max=SAMPLE_RATE / 2)


def audio_features(records: Sequence[PairRecord]) -> np.ndarray:
    import torch

    from xsearch.media.audio import load_audio

    mel = _mel()
    rows = []
    for r in records:
        wave, _ = load_audio(r.audio, SAMPLE_RATE, 10.0)
        with torch.no_grad():
            spec = mel(torch.from_numpy(wave)[None])[0].numpy()  # [64, frames]
        energy = spec.mean(0)
        envelope = np.interp(np.linspace(0, len(energy) - 1, 20), np.arange(len(energy)), energy)
        rows.append(np.concatenate([spec.mean(1), spec.std(1), envelope]))
    return np.stack(rows)


class _TextFeatures:
    def __init__(self, train_texts: Sequence[str]):
        from sklearn.feature_extraction.text import CountVectorizer

        self.vectorizer = CountVectorizer(binary=True).fit(train_texts)

    def __call__(self, records: Sequence[PairRecord]) -> np.ndarray:
        return self.vectorizer.transform([r.texts[0] for r in records]).toarray().astype(np.float32)


def _has(r: PairRecord, m: str) -> bool:
    return bool({"image": r.image, "audio": r.audio, "text": r.texts}[m])


def _source(r: PairRecord, m: str) -> str:
    """What a record's features of modality ``m`` are computed from (its file, or its canonical caption)."""
    return str({"image": r.image, "audio": r.audio, "text": r.texts[0] if r.texts else ""}[m])


class UnimodalFeatures:
    """The frozen features of one manifest's train and evaluation records, each record's extracted at most once per
    modality (loading images and audio is what costs), and shared by every linear aligner of one ``xsearch eval``
    run. The text vocabulary comes from the train split's captions."""

    def __init__(self, manifest_path: str, train_split: str, train: Sequence[PairRecord]):
        self.key = (str(manifest_path), train_split)
        texts = [t for r in train for t in r.texts]
        extract_text = _TextFeatures(texts) if texts else None
        self.extract: dict[str, Callable | None] = {"image": image_features, "audio": audio_features,
                                                    "text": extract_text}
        self._rows: dict[tuple[str, str], np.ndarray | None] = {}  # (modality, file or caption) → row; None: bad
        self.skipped: list[str] = []  # "FILE: REASON" for each file that could not be decoded

    def available(self, modality: str) -> bool:
        return self.extract.get(modality) is not None

    def prepare(self, records: Sequence[PairRecord], modality: str) -> list[PairRecord]:
        """Extract the features of ``records`` not extracted yet (one batch) and return those whose features exist:
        a file that cannot be decoded is noted in ``skipped`` and leaves its record out of every direction that
        needs it."""
        records = [r for r in records if _has(r, modality)]
        missing = {(modality, _source(r, modality)): r for r in records}
        missing = {k: r for k, r in missing.items() if k not in self._rows}
        if missing:
            try:
                self._rows.update(zip(missing, self.extract[modality](list(missing.values()))))
            except (MediaError, OSError):  # one bad file in the batch: go through it file by file
                for k, r in missing.items():
                    self._rows[k] = self._one(r, modality)
        return [r for r in records if self._rows[(modality, _source(r, modality))] is not None]

    def _one(self, record: PairRecord, modality: str) -> np.ndarray | None:
        source = _source(record, modality)
        try:
            return self.extract[modality]([record])[0]
        except MediaError as e:
            self.skipped.append(str(e) if source in str(e) else f"{source}: {e}")
        except OSError as e:
            self.skipped.append(f"{source}: cannot read ({e.strerror or e})")
        return None

    def failed(self, record: PairRecord, modality: str) -> bool:
        """Whether ``record``'s file of ``modality`` was tried and could not be decoded (extracts nothing)."""
        key = (modality, _source(record, modality))
        return key in self._rows and self._rows[key] is None

    def __call__(self, records: Sequence[PairRecord], modality: str) -> np.ndarray:
        """Features ``[len(records), d]`` of ``modality`` (every record must be one ``prepare`` returned)."""
        self.prepare(records, modality)
        return np.stack([self._rows[(modality, _source(r, modality))] for r in records])


def evaluate_subspace(manifest_path: str, method: str, make_estimator: Callable[[int], object], *,
                      split: str | None = None, train_split: str = "train",
                      directions: Sequence[tuple[str, str]] | None = None, relevance: str = "auto",
                      factory: str = "Flat", n_components: int = N_COMPONENTS, ks: Sequence[int] = DEFAULT_KS,
                      features: UnimodalFeatures | None = None,
                      log: Callable[[str], None] | None = None) -> EvalReport:
    """Fit ``make_estimator(k)`` (a scikit-learn two-view model with ``fit(X, Y)`` / ``transform(X, Y)``, e.g. CCA
    or PLSCanonical) per modality pair on ``train_split`` of a paired-data manifest (JSONL), on standardised
    frozen features, and evaluate retrieval on ``split`` (default: test). ``method`` names the aligner
    ('cca', 'pls'); ``features`` may be shared between calls on the same manifest."""
    from sklearn.preprocessing import StandardScaler

    manifest = load_manifest(manifest_path)
    test = pick_split(manifest, split)
    train = manifest.split(train_split)
    if not train:
        raise UsageError(f"--aligner {method} fits on split {train_split!r}, which manifest {manifest.path} lacks.")
    relevance = resolve_relevance(test, relevance)
    labels = np.asarray(labels_for(test, relevance))
    if features is None or features.key != (str(manifest_path), train_split):
        features = UnimodalFeatures(str(manifest_path), train_split, train)

    report = EvalReport(f"{method}(n_components={n_components})", str(manifest.path), split or "test",
                        {m: sum(_has(r, m) for r in test) for m in MODALITIES}, relevance, aligner=method)
    fitted: dict[tuple[str, str], tuple] = {}
    for q, g in directions or ALL_DIRECTIONS:
        a, b = sorted((q, g))
        if (a, b) not in fitted:
            if not features.available(a) or not features.available(b):
                continue
            both = [r for r in train if _has(r, a) and _has(r, b)]
            both = features.prepare(features.prepare(both, a), b)
            if len(both) < 3:
                continue
            xa, xb = features(both, a), features(both, b)
            sa, sb = StandardScaler().fit(xa), StandardScaler().fit(xb)
            k = max(1, min(n_components, xa.shape[1], xb.shape[1], len(both) - 1))
            with warnings.catch_warnings():  # NIPALS notes a view's residual running out (rank < k): harmless
                warnings.filterwarnings("ignore", message=".*residual is constant")
                fitted[(a, b)] = (make_estimator(k).fit(sa.transform(xa), sb.transform(xb)), sa, sb)
            if log:
                log(f"{method}: fitted {a}–{b} on {len(both)} train pairs ({k} components)")
        est, sa, sb = fitted[(a, b)]
        q_ok = {id(r) for r in features.prepare(test, q)}
        g_ok = {id(r) for r in features.prepare(test, g)}
        q_idx = [i for i, r in enumerate(test) if id(r) in q_ok]
        g_idx = [i for i, r in enumerate(test) if id(r) in g_ok]
        if not q_idx or not g_idx:
            continue
        fq = features([test[i] for i in q_idx], q)
        fg = features([test[i] for i in g_idx], g)
        pq, pg = _project(est, sa, sb, fq, fg, q == a)
        metrics, chance = retrieve_and_score(pq, labels[q_idx], pg, labels[g_idx], factory=factory, ks=ks)
        report.results.append(DirectionResult(q, g, metrics, chance))
    report.skipped = list(features.skipped)
    report.gallery_size = {m: sum(_has(r, m) and not features.failed(r, m) for r in test) for m in MODALITIES}
    if not report.results:
        raise UsageError(f"{method.upper()} could not be fitted for any direction (too few train pairs?).")
    return report


def evaluate_cca(manifest_path: str, *, split: str | None = None, train_split: str = "train",
                 directions: Sequence[tuple[str, str]] | None = None, relevance: str = "auto",
                 factory: str = "Flat", n_components: int = N_COMPONENTS, ks: Sequence[int] = DEFAULT_KS,
                 features: UnimodalFeatures | None = None,
                 log: Callable[[str], None] | None = None) -> EvalReport:
    """Fit CCA per modality pair on ``train_split`` of a paired-data manifest (JSONL), evaluate retrieval on
    ``split`` (default: test)."""
    from sklearn.cross_decomposition import CCA

    return evaluate_subspace(manifest_path, "cca", lambda k: CCA(n_components=k, max_iter=1000), split=split,
                             train_split=train_split, directions=directions, relevance=relevance, factory=factory,
                             n_components=n_components, ks=ks, features=features, log=log)


def _project(est, sa, sb, fq: np.ndarray, fg: np.ndarray, query_is_x: bool) -> tuple[np.ndarray, np.ndarray]:
    from xsearch.encoders.base import l2_normalize

    if query_is_x:
        zq, zg = est.transform(sa.transform(fq), sb.transform(fg))
    else:
        zg, zq = est.transform(sa.transform(fg), sb.transform(fq))
    return l2_normalize(zq), l2_normalize(zg)
