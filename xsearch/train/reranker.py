"""Training the re-ranker (``xsearch train --reranker``) on a generated world.

The world's items are embedded once by the encoder the re-ranker serves (the shipped builtin model). Each
training example is a *query set* and the candidate list the index gives it (negatives = the top
``candidates`` files by cosine to the weighted-mean query, exactly what ``--fusion mean`` retrieves):

- ``single``: one query (a caption, an image or a sound of a group) towards another modality;
- ``pair``: two queries of the same group from two modalities (e.g. a caption + its sound → images);
- ``combo``: a *partial* caption naming 1–3 attributes of a target group ("red circles", "on a striped
  background") + an image, sound or caption of *another* group that agrees with the target on every other
  attribute; relevant = the target's attributes. The mean vector lands between the two, near the other group's
  own items; the re-ranker has to learn that what the text names overrides the example (a multi-query
  combination that cosine cannot express).

Relevant = same six attributes (as ``xsearch eval``). Loss: listwise softmax cross-entropy over the candidates.
What keeps it honest on files it never saw:

- each list comes from a random part of the gallery (150 files up to all of it), so lists look like those of
  small collections (easy negatives in the tail) as well as large ones;
- lists in which the index found no relevant file are left out: forcing the positive in teaches the model that
  files the index ranked low are the answer, and it then promotes the low-ranked negatives of real lists;
- every training vector gets a little Gaussian noise (``noise``; cosine ≈ 0.95 to the clean one) and the
  transformer has dropout, so the training files' vectors cannot be learnt by heart;
- window-level evidence: a share of the candidates get 1–2 distractor items (other files' vectors) next to their
  own, as a long recording's windows or a text's passages would, so the model finds the matching item among a
  file's items.

The best epoch on the world's ``val`` split (the index's order vs re-ranked precision@1, on the full lists) is
kept. Everything is seeded: the same command gives the same weights on the same machine.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from xsearch.core.errors import UsageError
from xsearch.encoders.reranker import ITEM_TYPES, QUERY_TYPES, RerankerConfig, RerankerModel, save_reranker
from xsearch.pairs import PairRecord, load_manifest
from xsearch.world.attributes import ATTRIBUTES
from xsearch.world.text import BACKGROUND_WORDS, COLOUR_WORDS, COUNT_WORDS, POSITION_WORDS, SHAPE_WORDS, SIZE_WORDS

MODALITIES = ("image", "audio", "text")
KINDS = ("single", "pair", "combo")
ATTRS = tuple(ATTRIBUTES)
#: The world the shipped re-ranker is trained on (not the builtin model's world, not the evaluation world).
WORLD = {"n": 8000, "seed": 2}


@dataclass
class RerankArgs:
    out_dir: str
    manifest: str = ""  # a world's manifest.jsonl (records with attributes); empty: generate WORLD first
    encoder: str = "builtin"
    epochs: int = 8
    batch_size: int = 32  # query sets per step (each with its candidates)
    lr: float = 2e-3
    weight_decay: float = 0.01
    candidates: int = 50
    sets_per_epoch: int = 6000
    val_sets: int = 1200
    distractor_p: float = 0.25  # share of candidates given extra distractor items
    train_candidates: int = 32  # list length in training (each from a random part of the gallery, see below)
    min_gallery: int = 150  # the smallest part of the gallery a training list is drawn from
    noise: float = 0.02  # Gaussian noise per dimension on every training vector (cos to the clean one ≈ 0.95)
    dropout: float = 0.1
    partial_per_group: int = 4  # partial captions embedded per group (for combo queries)
    width: int = 128
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    overwrite: bool = False
    world: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from xsearch.train.trainer import NON_NEGATIVE, POSITIVE, SEED_MAX, check_values, whole

        share = ("a number from 0 to 1", lambda v: 0 <= v <= 1)
        check_values(self, {"epochs": whole(1), "batch_size": whole(1), "lr": POSITIVE,
                            "weight_decay": NON_NEGATIVE, "candidates": whole(2), "train_candidates": whole(2),
                            "min_gallery": whole(0), "noise": NON_NEGATIVE, "dropout": share,
                            "sets_per_epoch": whole(1), "val_sets": whole(0), "distractor_p": share,
                            "partial_per_group": whole(1), "width": whole(8), "seed": whole(0, SEED_MAX),
                            "threads?": whole(1)})


# -- partial captions --------------------------------------------------------------------------------------------


def partial_caption(attributes: dict, names, rng: np.random.Generator | None = None) -> str:
    """A caption naming only the attributes in ``names`` ("two small shapes on the left", "red circles", "shapes
    on a striped background"); with ``rng`` words are drawn from the world's synonyms, else the canonical ones."""

    def pick(options):
        return options[int(rng.integers(len(options)))] if rng is not None else options[0]

    names, a = set(names), attributes
    plural = a["count"] > 1 if "count" in names else True
    words = []
    if "count" in names:
        words.append(pick(COUNT_WORDS[a["count"]]))
    if "size" in names:
        words.append(pick(SIZE_WORDS[a["size"]]))
    if "colour" in names:
        words.append(pick(COLOUR_WORDS[a["colour"]]))
    if "shape" in names:
        words.append(pick(SHAPE_WORDS[a["shape"]])[1 if plural else 0])
    else:
        words.append(("shapes" if plural else "shape") if rng is None else
                     pick((("shapes", "shape"), ("objects", "object"), ("things", "thing")))[0 if plural else 1])
    if "position" in names:
        words.append(pick(POSITION_WORDS[a["position"]]))
    if "background" in names:
        bg = pick(BACKGROUND_WORDS[a["background"]])
        words.append(f"on a {bg}" if bg.endswith(("background", "backdrop")) else f"on {bg}")
    return re.sub(r"\ba (?=[aeiou])", "an ", " ".join(words))


# -- the embedded world ------------------------------------------------------------------------------------------


@dataclass
class EmbeddedWorld:
    """A world's groups embedded by one encoder: the gallery item of each modality, every caption, and partial
    captions with the attributes they name."""

    attrs: list[dict]
    labels: np.ndarray  # [n] str: what makes two groups relevant (all six attributes)
    splits: np.ndarray  # [n] str
    items: dict[str, np.ndarray]  # modality -> [n, dim] (text: the canonical caption, the world's text file)
    captions: np.ndarray  # [m, dim] every caption of every group
    caption_rows: list[np.ndarray]  # per group: indices into captions
    partial: np.ndarray  # [p, dim]
    partial_row: np.ndarray  # [p] the group each partial caption describes
    partial_names: list[frozenset]  # [p] the attributes it names


def embed_world(encoder, records: list[PairRecord], *, partial_per_group: int = 4, seed: int = 0,
                log: Callable[[str], None] = print) -> EmbeddedWorld:
    """Embed every record's image, sound and captions (through xsearch.engine.embed, as indexing does) and
    ``partial_per_group`` partial captions per group (random attribute subsets of size 1–3)."""
    from xsearch.engine.embed import embed_files, media_file

    t0 = time.time()
    attrs = [dict(r.attributes or {}) for r in records]
    if not all(a and set(ATTRS) <= set(a) for a in attrs):
        raise UsageError("the re-ranker trains on a generated world: every record needs its six attributes",
                         code="train.no_attributes")
    items = {}
    for m in ("image", "audio"):
        items[m] = embed_files(encoder, [media_file(getattr(r, m), m) for r in records])
        log(f"embedded {len(records)} {m} files ({time.time() - t0:.0f}s)")
    texts, caption_rows = [], []
    for r in records:
        caption_rows.append(np.arange(len(texts), len(texts) + len(r.texts)))
        texts += r.texts
    captions = _embed_texts(encoder, texts)
    items["text"] = captions[[rows[0] for rows in caption_rows]]
    rng = np.random.default_rng([seed, 7])
    partial_texts, partial_row, partial_names = [], [], []
    for i, a in enumerate(attrs):
        for _ in range(partial_per_group):
            names = frozenset(rng.choice(ATTRS, size=int(rng.integers(1, 4)), replace=False).tolist())
            partial_texts.append(partial_caption(a, names, rng if rng.random() < 0.7 else None))
            partial_row.append(i)
            partial_names.append(names)
    partial = _embed_texts(encoder, partial_texts)
    log(f"embedded {len(texts)} captions and {len(partial_texts)} partial captions ({time.time() - t0:.0f}s)")
    return EmbeddedWorld(attrs, np.asarray([json.dumps(a, sort_keys=True) for a in attrs]),
                         np.asarray([str(r.split) for r in records]), items, captions, caption_rows, partial,
                         np.asarray(partial_row), partial_names)


def _embed_texts(encoder, texts: list[str], batch: int = 512) -> np.ndarray:
    """Each distinct text embedded once (the world's captions and partial captions repeat a lot)."""
    unique = sorted(set(texts))
    vecs = np.concatenate([encoder.embed("text", unique[i:i + batch]) for i in range(0, len(unique), batch)])
    where = {t: i for i, t in enumerate(unique)}
    return vecs[[where[t] for t in texts]]


# -- query sets --------------------------------------------------------------------------------------------------


@dataclass
class QuerySet:
    kind: str
    modalities: list[str]
    vectors: np.ndarray  # [q, dim]
    weights: np.ndarray  # [q]
    target: str
    intended: str  # the label relevant gallery items carry


class QuerySampler:
    """Draws query sets of the three kinds from the groups ``rows`` of an embedded world."""

    def __init__(self, world: EmbeddedWorld, rows: np.ndarray):
        self.w, self.rows = world, np.asarray(rows)
        self._by_rest: dict[frozenset, dict[tuple, list[int]]] = {}
        self._partials = {}
        inside = set(self.rows.tolist())
        for p, r in enumerate(world.partial_row.tolist()):
            if r in inside:
                self._partials.setdefault(r, []).append(p)

    def _query(self, row: int, modality: str, rng) -> np.ndarray:
        if modality == "text":
            caps = self.w.caption_rows[row]
            return self.w.captions[caps[int(rng.integers(len(caps)))]]
        return self.w.items[modality][row]

    def _others(self, names: frozenset, row: int) -> list[int]:
        """Groups that agree with ``row`` on every attribute outside ``names`` and differ on one inside."""
        if names not in self._by_rest:
            table: dict[tuple, list[int]] = {}
            for r in self.rows.tolist():
                table.setdefault(tuple(self.w.attrs[r][a] for a in ATTRS if a not in names), []).append(r)
            self._by_rest[names] = table
        a = self.w.attrs[row]
        same = self._by_rest[names].get(tuple(a[n] for n in ATTRS if n not in names), [])
        return [r for r in same if any(self.w.attrs[r][n] != a[n] for n in names)]

    def sample(self, kind: str, rng: np.random.Generator, random_weights: bool = False) -> QuerySet | None:
        row = int(self.rows[int(rng.integers(len(self.rows)))])
        if kind == "single":
            q = MODALITIES[int(rng.integers(3))]
            target = [m for m in MODALITIES if m != q][int(rng.integers(2))]
            mods, vecs = [q], [self._query(row, q, rng)]
        elif kind == "pair":
            target = MODALITIES[int(rng.integers(3))]
            mods = [m for m in MODALITIES if m != target]
            vecs = [self._query(row, m, rng) for m in mods]
        else:
            partials = self._partials.get(row, [])
            if not partials:
                return None
            p = partials[int(rng.integers(len(partials)))]
            others = self._others(self.w.partial_names[p], row)
            if not others:
                return None
            other = others[int(rng.integers(len(others)))]
            example = MODALITIES[int(rng.integers(3))]
            target = [m for m in MODALITIES if m != example][int(rng.integers(2))]
            mods, vecs = ["text", example], [self.w.partial[p], self._query(other, example, rng)]
        weights = rng.uniform(0.5, 1.5, len(mods)) if random_weights and len(mods) > 1 else np.ones(len(mods))
        return QuerySet(kind, mods, np.stack(vecs).astype(np.float32), weights.astype(np.float32), target,
                        str(self.w.labels[row]))


def fused(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    v = (weights[:, None] * vectors).sum(0)
    return (v / max(float(np.linalg.norm(v)), 1e-6)).astype(np.float32)


@dataclass
class Batch:
    """Query sets with their candidate lists, as index arrays into the world (gathered into tensors per step)."""

    sets: list[QuerySet]
    cands: np.ndarray  # [S, C] gallery rows (world rows), -1 padding
    labels: np.ndarray  # [S, C] bool
    extra: np.ndarray  # [S, C, X] distractor rows (same target modality), -1 none


def candidate_lists(world: EmbeddedWorld, rows: np.ndarray, sets: list[QuerySet], depth: int, *,
                    force_positive: bool, rng: np.random.Generator, distractor_p: float = 0.0,
                    max_extra: int = 2, min_gallery: int = 0) -> Batch:
    """The first stage for each query set: the ``depth`` gallery rows (of ``rows``) nearest the weighted-mean
    query (the exact top-k a Flat index returns), their relevance, and distractor items for some candidates.

    ``min_gallery`` > 0: each query set searches a random part of the gallery, of a log-uniform size between
    ``min_gallery`` and all of it (its relevant rows always in), so that lists look like those of small
    collections (easy negatives in the tail) as well as large ones (hard negatives only)."""
    rows = np.asarray(rows)
    depth = min(depth, len(rows))
    cands = np.full((len(sets), depth), -1, np.int64)
    labels = np.zeros((len(sets), depth), bool)
    extra = np.full((len(sets), depth, max_extra), -1, np.int64)
    gallery_labels = world.labels[rows]
    for target in MODALITIES:
        idx = [i for i, s in enumerate(sets) if s.target == target]
        if not idx:
            continue
        queries = np.stack([fused(sets[i].vectors, sets[i].weights) for i in idx])
        scores = queries @ world.items[target][rows].T
        if min_gallery and min_gallery < len(rows):
            low, high = math.log(min_gallery), math.log(len(rows))
            share = np.exp(rng.uniform(low, high, len(idx))) / len(rows)
            drop = rng.random(scores.shape) >= share[:, None]
            drop &= gallery_labels[None, :] != np.asarray([sets[i].intended for i in idx])[:, None]
            scores = np.where(drop, -np.inf, scores)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        for j, i in enumerate(idx):
            order = top[j]
            rel = gallery_labels[order] == sets[i].intended
            if force_positive and not rel.any():
                pos = np.flatnonzero(gallery_labels == sets[i].intended)
                order = order.copy()
                order[-1] = pos[int(rng.integers(len(pos)))]
                rel = gallery_labels[order] == sets[i].intended
            cands[i], labels[i] = rows[order], rel
    if distractor_p > 0:
        pick = rng.random((len(sets), depth)) < distractor_p
        n_extra = rng.integers(1, max_extra + 1, (len(sets), depth))
        for i, c in zip(*np.nonzero(pick)):
            extra[i, c, : n_extra[i, c]] = rows[rng.integers(len(rows), size=n_extra[i, c])]
    return Batch(sets, cands, labels, extra)


def batch_tensors(world: EmbeddedWorld, batch: Batch, sel: np.ndarray, device: str, noise: float = 0.0,
                  rng: np.random.Generator | None = None) -> tuple:
    """The model's inputs for query sets ``sel`` of ``batch``: every (set, candidate) pair is one row.
    ``noise`` > 0 (training): every query and item vector gets Gaussian noise of that size per dimension and is
    renormalised, so the model cannot learn the training files' vectors by heart."""
    sets = [batch.sets[i] for i in sel]
    n_sets, depth = len(sets), batch.cands.shape[1]
    nq = max(len(s.modalities) for s in sets)
    dim = world.captions.shape[1]
    q = np.zeros((n_sets, nq, dim), np.float32)
    q_type = np.zeros((n_sets, nq), np.int64)
    q_w = np.zeros((n_sets, nq), np.float32)
    q_mask = np.zeros((n_sets, nq), bool)
    for i, s in enumerate(sets):
        n = len(s.modalities)
        q[i, :n], q_mask[i, :n] = s.vectors, True
        q_type[i, :n] = [QUERY_TYPES.index(m) for m in s.modalities]
        q_w[i, :n] = s.weights / max(float(np.abs(s.weights).sum()), 1e-6) * n
    extra = batch.extra[sel]
    n_items = 1 + int((extra >= 0).sum(-1).max()) if extra.size else 1
    c = np.zeros((n_sets, depth, n_items, dim), np.float32)
    c_mask = np.zeros((n_sets, depth, n_items), bool)
    c_type = np.zeros((n_sets, depth, n_items), np.int64)
    for i, s in enumerate(sets):
        gallery = world.items[s.target]
        own = batch.cands[sel[i]]
        c[i, :, 0], c_mask[i, :, 0] = gallery[own], own >= 0
        for x in range(n_items - 1):
            ex = extra[i, :, x]
            has = ex >= 0
            c[i, has, 1 + x], c_mask[i, has, 1 + x] = gallery[ex[has]], True
        c_type[i] = ITEM_TYPES.index(s.target)
    if noise > 0 and rng is not None:
        q = _jitter(q, noise, rng) * q_mask[..., None]
        c = _jitter(c, noise, rng) * c_mask[..., None]
    c_mask[:, :, 0] |= ~c_mask.any(-1)  # padding candidates keep one (zero) item so attention has a key
    rows = n_sets * depth

    def t(x, dtype=None):
        return torch.from_numpy(x).to(device) if dtype is None else torch.from_numpy(x).to(device, dtype)

    def rep(x):
        return np.repeat(x, depth, axis=0)

    inputs = (t(rep(q)), t(rep(q_type)), t(rep(q_w)), t(rep(q_mask)), t(c.reshape(rows, n_items, dim)),
              t(c_type.reshape(rows, n_items)), t(c_mask.reshape(rows, n_items)))
    return inputs, t(batch.labels[sel]), t(batch.cands[sel] >= 0)


def _jitter(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    x = x + rng.normal(0.0, sigma, x.shape).astype(np.float32)
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)).astype(np.float32)


def listwise_loss(scores: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """−log Σ_relevant softmax(scores) over each list (padding excluded); lists without a relevant item skipped."""
    neg = torch.finfo(scores.dtype).min
    scores = scores.masked_fill(~valid, neg)
    keep = labels.any(-1)
    pos = scores.masked_fill(~labels, neg).logsumexp(-1)
    return (scores.logsumexp(-1) - pos)[keep].mean()


def score_batch(model: RerankerModel, world: EmbeddedWorld, batch: Batch, device: str,
                step: int = 64) -> np.ndarray:
    """Re-ranker scores [S, C] for every query set of ``batch`` (inference)."""
    out = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(batch.sets), step):
            sel = np.arange(start, min(start + step, len(batch.sets)))
            inputs, _, _ = batch_tensors(world, batch, sel, device)
            out.append(model(*inputs).reshape(len(sel), -1).float().cpu().numpy())
    return np.concatenate(out)


def list_metrics(order_scores: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> dict:
    """P@1 and MRR of lists ordered by ``order_scores`` (labels: relevance of each candidate)."""
    s = np.where(valid, order_scores, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")
    rel = np.take_along_axis(labels, order, axis=1)
    first = np.where(rel.any(1), rel.argmax(1) + 1, np.inf)
    return {"P@1": float(np.mean(first == 1)), "MRR": float(np.mean(1.0 / first))}


def evaluate_lists(model: RerankerModel, world: EmbeddedWorld, batch: Batch, device: str) -> dict:
    """Per kind: candidate lists in the index's order vs re-ranked (P@1, MRR)."""
    scores = score_batch(model, world, batch, device)
    valid = batch.cands >= 0
    depth = batch.cands.shape[1]
    cosine = np.tile(-np.arange(depth, dtype=np.float64), (len(batch.sets), 1))  # the index's order
    out = {}
    for kind in KINDS:
        idx = np.asarray([i for i, s in enumerate(batch.sets) if s.kind == kind])
        if len(idx):
            out[kind] = {"n": int(len(idx)), "index": list_metrics(cosine[idx], batch.labels[idx], valid[idx]),
                         "reranked": list_metrics(scores[idx], batch.labels[idx], valid[idx])}
    return out


def draw_sets(sampler: QuerySampler, n: int, rng: np.random.Generator, *, random_weights: bool) -> list[QuerySet]:
    sets: list[QuerySet] = []
    tries = 0
    while len(sets) < n and tries < 20 * n:
        tries += 1
        s = sampler.sample(KINDS[len(sets) % len(KINDS)], rng, random_weights=random_weights)
        if s is not None:
            sets.append(s)
    return sets


# -- training ----------------------------------------------------------------------------------------------------


def train_reranker(args: RerankArgs, encoder, *, log: Callable[[str], None] = print) -> dict:
    """Train a re-ranker for ``encoder``'s vectors on the manifest's world; saves the best epoch (by val P@1 over
    all kinds) to ``args.out_dir`` and returns the report (history, val metrics)."""
    from xsearch.encoders.base import pick_device
    from xsearch.train.trainer import check_out_dir

    out_dir = check_out_dir(args.out_dir)
    if (out_dir / "model.safetensors").exists() and not args.overwrite:
        raise UsageError(f"{out_dir} already holds a checkpoint; pass --overwrite to replace it",
                         code="train.out_exists", path=str(out_dir))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    records = _usable_records(args)
    t0 = time.time()
    world = embed_world(encoder, records, partial_per_group=args.partial_per_group, seed=args.seed, log=log)
    train_rows, val_rows = _split_rows(world, len(records), args.seed)
    train_sampler = QuerySampler(world, train_rows)
    val_batch = _validation_lists(world, val_rows, args)
    cfg = RerankerConfig(dim=world.captions.shape[1], width=args.width, heads=4 if args.width % 4 == 0 else 1,
                         dropout=args.dropout)
    model = RerankerModel(cfg).to(device)
    opt, sched = _optimiser(model, args)
    rng = np.random.default_rng([args.seed, 2])
    history, best, best_state = [], -1.0, None
    if val_batch is not None:
        log("val before training (= the index's order): " + _fmt(evaluate_lists(model, world, val_batch, device)))
    for epoch in range(1, args.epochs + 1):
        te = time.time()
        losses = _train_epoch(model, opt, sched, world, train_sampler, train_rows, args, rng, device)
        entry = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": round(time.time() - te, 1)}
        if val_batch is not None:
            entry["val"] = evaluate_lists(model, world, val_batch, device)
        history.append(entry)
        log(f"epoch {epoch}/{args.epochs}: loss {entry['loss']:.4f} ({entry['seconds']:.0f}s)"
            + (f"; val {_fmt(entry['val'])}" if "val" in entry else ""))
        if _epoch_score(entry) > best:
            best, best_state = _epoch_score(entry), {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    best_epoch = max(range(len(history)), key=lambda i: _epoch_score(history[i]))
    report = {"encoder_model_id": encoder.model_id, "encoder_spec": encoder.spec,
              "trained": {**{k: v for k, v in asdict(args).items() if k not in ("out_dir", "overwrite", "device",
                                                                                 "threads")},
                          "manifest": str(Path(args.manifest).name), "groups": len(records),
                          "best_epoch": best_epoch + 1, "seconds": round(time.time() - t0, 1)},
              "metrics": {"val": history[best_epoch].get("val")}, "history": history}
    save_reranker(model.cpu(), out_dir, meta=report)
    return report


def _usable_records(args: RerankArgs) -> list:
    """The manifest's train / val groups that have an image, a sound and captions (at least 20)."""
    manifest = load_manifest(args.manifest)
    records = [r for r in manifest.records if r.split != "test" and r.image and r.audio and r.texts]
    if len(records) < 20:
        raise UsageError(f"the manifest has {len(records)} usable train/val groups (image, audio and captions); "
                         "the re-ranker needs at least 20", code="train.too_few_records", records=len(records))
    return records


def _split_rows(world: EmbeddedWorld, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, val rows) by the manifest's splits; without a usable split, a fifth of the groups held out."""
    train_rows = np.flatnonzero(world.splits == "train")
    val_rows = np.flatnonzero(world.splits == "val")
    if len(val_rows) < 10 or len(train_rows) < 10:
        perm = np.random.default_rng(seed).permutation(n)
        val_rows, train_rows = np.sort(perm[: len(perm) // 5]), np.sort(perm[len(perm) // 5:])
    return train_rows, val_rows


def _validation_lists(world: EmbeddedWorld, val_rows: np.ndarray, args: RerankArgs) -> Batch | None:
    """The fixed validation query sets and their candidate lists (None when none could be drawn)."""
    val_rng = np.random.default_rng([args.seed, 1])
    val_sets = draw_sets(QuerySampler(world, val_rows), args.val_sets, val_rng, random_weights=False)
    if not val_sets:
        return None
    return candidate_lists(world, val_rows, val_sets, args.candidates, force_positive=False, rng=val_rng)


def _optimiser(model: RerankerModel, args: RerankArgs):
    """AdamW with half an epoch of linear warm-up, then cosine decay over the run."""
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(args.sets_per_epoch / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = max(1, steps_per_epoch // 2)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    return opt, sched


def _train_epoch(model: RerankerModel, opt, sched, world: EmbeddedWorld, sampler: QuerySampler,
                 train_rows: np.ndarray, args: RerankArgs, rng: np.random.Generator, device: str) -> list[float]:
    """One epoch on freshly drawn query sets (random weights, distractors); the loss of each step."""
    sets = draw_sets(sampler, args.sets_per_epoch, rng, random_weights=True)
    batch = candidate_lists(world, train_rows, sets, args.train_candidates, force_positive=False, rng=rng,
                            distractor_p=args.distractor_p, min_gallery=args.min_gallery)
    model.train()
    losses = []
    perm = rng.permutation(len(sets))
    for start in range(0, len(sets), args.batch_size):
        sel = perm[start:start + args.batch_size]
        inputs, labels, valid = batch_tensors(world, batch, sel, device, noise=args.noise, rng=rng)
        scores = model(*inputs).reshape(len(sel), -1)
        loss = listwise_loss(scores, labels, valid)
        if not torch.isfinite(loss):
            raise UsageError("the re-ranker's loss became NaN; try a lower --lr", code="train.diverged")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


def _epoch_score(entry: dict) -> float:
    """What picks the best epoch: mean val P@1 over the kinds (minus the loss when there is no validation)."""
    if "val" in entry:
        return float(np.mean([v["reranked"]["P@1"] for v in entry["val"].values()]))
    return -entry["loss"]


def _fmt(metrics: dict) -> str:
    return ", ".join(f"{k} P@1 {v['index']['P@1']:.3f}→{v['reranked']['P@1']:.3f}" for k, v in metrics.items())
