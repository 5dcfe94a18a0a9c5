"""The re-ranker: a small cross-attention model that re-scores the index's best candidates for a query set.

Intermediate fusion: instead of one cosine between a (fused) query vector and a file's best vector, the model
reads *all* the query vectors (each with a learned embedding of its modality and its weight) and *all* of one
candidate's stored item vectors (its image, its audio windows, its text passages, a video's pictures and sound,
each with a learned track embedding) as one token sequence; a small transformer lets queries attend to each
other and to the items (cross-attention in both directions), and a summary token becomes the score.

    score = s0 · cos(weighted-mean query, best item)  +  mlp(transformer([summary, queries…, items…])[summary])

The MLP's last layer starts at zero, so an untrained model ranks exactly like ``--fusion mean``; training
(``xsearch train --reranker``, code in ``xsearch/train/reranker.py``) teaches it what cosine misses.

It works on vectors of one encoder's space, so a checkpoint is tied to the model it was trained with (its
``model_id`` is in the config); a collection built with another model is refused (code
``rerank.model_mismatch``). Checkpoint: ``model.safetensors`` (fp16) + ``config.json``, like the builtin model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from xsearch.core.errors import ModelError, UsageError
from xsearch.encoders._checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint_dir

ARCHITECTURE = "xsearch-reranker-v1"
#: Query modalities and candidate tracks the type embeddings know (an unknown one maps to the last entry). These are
#: the trained checkpoint's vocabulary (entry i is row i of its type embeddings), so they stay fixed here rather than
#: follow the modality registry: a modality registered later maps to "other" until a checkpoint is trained with it.
QUERY_TYPES: tuple[str, ...] = ("text", "image", "audio", "video", "other")
ITEM_TYPES: tuple[str, ...] = ("image", "audio", "text", "video", "soundtrack", "other")


@dataclass
class RerankerConfig:
    """Architecture hyper-parameters; saved in the checkpoint's config.json."""

    dim: int = 256  # the encoder's embedding dimension
    width: int = 128
    heads: int = 4
    layers: int = 2
    dropout: float = 0.0  # inside the transformer layers, in training only
    max_queries: int = 8  # queries beyond this are merged away (the first ones kept) — see Reranker.score
    max_items: int = 32  # a candidate's items beyond this: the ones nearest the queries are kept
    init_scale: float = 10.0  # s0 at initialisation: the cosine term's temperature
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "RerankerConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class RerankerModel(nn.Module):
    """``forward(queries, candidates) -> scores [B]``; every tensor is batched over candidates (B).

    - ``q`` [B, Q, dim] unit query vectors, ``q_type`` [B, Q] (index into QUERY_TYPES), ``q_weight`` [B, Q],
      ``q_mask`` [B, Q] (True = a real query);
    - ``c`` [B, N, dim] the candidate's unit item vectors, ``c_type`` [B, N] (index into ITEM_TYPES),
      ``c_mask`` [B, N] (True = a real item; every candidate has at least one).

    One sequence per candidate: a summary token, the query tokens (vector, modality, weight, and how well the
    query matches the candidate's best and average item) and the candidate's item tokens (vector, track, how
    well the item matches the queries), through ``layers`` transformer layers: queries attend to each other and
    to the items, so two queries can be combined in a learned way and a file's evidence is read item by item.
    """

    def __init__(self, cfg: RerankerConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or RerankerConfig()
        w = cfg.width
        self.cls = nn.Parameter(torch.zeros(1, 1, w))
        self.q_in = nn.Linear(cfg.dim, w)
        self.q_type = nn.Embedding(len(QUERY_TYPES), w)
        self.q_stats = nn.Linear(3, w)  # weight, cos with the best item, mean cos over the items
        self.c_in = nn.Linear(cfg.dim, w)
        self.c_type = nn.Embedding(len(ITEM_TYPES), w)
        self.c_stats = nn.Linear(2, w)  # cos with the weighted-mean query, best cos with any query
        layer = nn.TransformerEncoderLayer(w, cfg.heads, dim_feedforward=2 * w, dropout=cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.head = nn.Sequential(nn.Linear(w + 1, w), nn.GELU(), nn.Linear(w, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.scale = nn.Parameter(torch.tensor(float(cfg.init_scale)))
        for emb in (self.q_type, self.c_type):
            nn.init.normal_(emb.weight, std=0.02)
        nn.init.normal_(self.cls, std=0.02)

    def forward(self, q: torch.Tensor, q_type: torch.Tensor, q_weight: torch.Tensor, q_mask: torch.Tensor,
                c: torch.Tensor, c_type: torch.Tensor, c_mask: torch.Tensor) -> torch.Tensor:
        qm, cm = q_mask.to(q.dtype), c_mask.to(q.dtype)
        neg = torch.finfo(q.dtype).min
        # cosine evidence: every query against every item, and the weighted-mean query against every item
        cos = torch.einsum("bqd,bnd->bqn", q, c)
        cos_max = cos.masked_fill(~c_mask[:, None, :], neg).amax(-1)  # [B, Q]
        cos_mean = (cos * cm[:, None, :]).sum(-1) / cm.sum(-1, keepdim=True).clamp_min(1.0)
        fused = nn.functional.normalize((q * (q_weight * qm)[..., None]).sum(1), dim=-1)  # [B, dim]
        item_fused = torch.einsum("bd,bnd->bn", fused, c)  # [B, N]
        fused_cos = item_fused.masked_fill(~c_mask, neg).amax(-1)  # [B]
        item_best = cos.masked_fill(~q_mask[:, :, None], neg).amax(1)  # [B, N]
        qt = self.q_in(q) + self.q_type(q_type) + self.q_stats(torch.stack([q_weight, cos_max, cos_mean], -1))
        ct = self.c_in(c) + self.c_type(c_type) + self.c_stats(torch.stack([item_fused, item_best], -1))
        seq = torch.cat([self.cls.expand(q.shape[0], -1, -1), qt, ct], dim=1)
        mask = torch.cat([torch.ones_like(q_mask[:, :1]), q_mask, c_mask], dim=1)
        h = self.norm(self.encoder(seq, src_key_padding_mask=~mask)[:, 0])
        return self.scale * fused_cos + self.head(torch.cat([h, fused_cos[:, None]], -1))[:, 0]


def type_index(name: str, table: Sequence[str]) -> int:
    return table.index(name) if name in table else len(table) - 1


class Reranker:
    """A loaded re-ranker: ``score(queries, candidates)`` on numpy vectors (serving side, no training code)."""

    def __init__(self, model: RerankerModel, config: dict, path: Path | None = None, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.cfg = model.cfg
        self.config = config
        self.path = path
        self.device = device
        self.model_id = str(config.get("encoder_model_id", ""))  # the encoder whose vectors it was trained on
        self.id = f"{ARCHITECTURE}@{config.get('digest', 'untrained')}"

    def check_encoder(self, model_id: str, dim: int) -> None:
        """Refuse vectors of another model (code rerank.model_mismatch): the re-ranker only knows its encoder's
        space. An untrained re-ranker (no recorded model) only checks the dimension."""
        if (self.model_id and self.model_id != model_id) or dim != self.cfg.dim:
            raise UsageError(f"the re-ranker was trained on vectors of model {self.model_id or '?'} "
                             f"({self.cfg.dim}-d), but the collection holds vectors of {model_id} ({dim}-d)",
                             code="rerank.model_mismatch", trained_for=self.model_id, model=model_id)

    def score(self, queries: Sequence[tuple[str, np.ndarray, float]],
              candidates: Sequence[Sequence[tuple[str, np.ndarray]]]) -> np.ndarray:
        """Scores (higher is better) of each candidate for the query set.

        ``queries``: ``(modality, unit vector [dim], weight)``; ``candidates``: per candidate, its tracks as
        ``(track, item vectors [n, dim])`` (an image: one vector; audio: its windows; a video: pictures and sound).
        A candidate with more than ``max_items`` items keeps those nearest the queries."""
        if not len(candidates):
            return np.zeros(0, np.float32)
        cfg = self.cfg
        queries = list(queries)[: cfg.max_queries]
        qv = np.stack([np.asarray(v, np.float32) for _, v, _ in queries])
        q_types = [type_index(m, QUERY_TYPES) for m, _, _ in queries]
        q_w = np.asarray([float(w) for _, _, w in queries], np.float32)
        q_w = q_w / max(float(np.abs(q_w).sum()), 1e-6) * len(q_w)  # relative weights, as trained (mean |w| = 1)
        items, types = [], []
        for tracks in candidates:
            vecs = [np.asarray(v, np.float32).reshape(-1, cfg.dim) for _, v in tracks]
            kinds = [np.full(len(v), type_index(t, ITEM_TYPES)) for (t, _), v in zip(tracks, vecs)]
            vecs, kinds = (np.concatenate(vecs), np.concatenate(kinds)) if vecs else (np.zeros((0, cfg.dim)), [])
            if len(vecs) > cfg.max_items:
                keep = np.sort(np.argsort(-(vecs @ qv.T).max(1), kind="stable")[: cfg.max_items])
                vecs, kinds = vecs[keep], np.asarray(kinds)[keep]
            if not len(vecs):  # a file without vectors (should not happen): one zero item, no evidence
                vecs, kinds = np.zeros((1, cfg.dim), np.float32), np.asarray([len(ITEM_TYPES) - 1])
            items.append(vecs)
            types.append(np.asarray(kinds))
        b, n, nq = len(items), max(len(v) for v in items), len(queries)
        c = np.zeros((b, n, cfg.dim), np.float32)
        c_type = np.zeros((b, n), np.int64)
        c_mask = np.zeros((b, n), bool)
        for i, (v, t) in enumerate(zip(items, types)):
            c[i, : len(v)], c_type[i, : len(v)], c_mask[i, : len(v)] = v, t, True
        dev = self.device
        with torch.inference_mode():
            out = self.model(
                torch.from_numpy(qv).to(dev)[None].expand(b, -1, -1),
                torch.tensor(q_types, device=dev)[None].expand(b, -1),
                torch.from_numpy(q_w).to(dev)[None].expand(b, -1),
                torch.ones(b, nq, dtype=torch.bool, device=dev),
                torch.from_numpy(c).to(dev), torch.from_numpy(c_type).to(dev), torch.from_numpy(c_mask).to(dev))
        return out.float().cpu().numpy()

    def describe(self) -> dict:
        return {"id": self.id, "path": str(self.path) if self.path else None, "trained_for": self.model_id,
                "parameters": sum(p.numel() for p in self.model.parameters()), **{
                    k: self.config[k] for k in ("trained", "metrics") if k in self.config}}


def default_reranker_dir() -> Path:
    """Where the shipped re-ranker lives inside the package."""
    return Path(str(resources.files("xsearch.encoders") / "weights" / "reranker"))


def save_reranker(model: RerankerModel, out_dir: Path | str, meta: dict | None = None, half: bool = True) -> Path:
    """Write ``model.safetensors`` (fp16 by default) + ``config.json`` (architecture, dims, ``meta``, digest)."""
    return save_checkpoint_dir(model, out_dir, ARCHITECTURE, meta, half=half, digest=True)


def load_reranker(path: str | Path | None = None, device: str | None = None) -> Reranker:
    """The shipped re-ranker (``path=None``) or a checkpoint directory; ModelError (code rerank.missing /
    rerank.bad_checkpoint) when there is none or it does not fit."""
    from safetensors.torch import load_file

    from xsearch.encoders.base import pick_device

    ckpt = Path(path).expanduser() if path else default_reranker_dir()
    weights, config_path = ckpt / WEIGHTS_FILE, ckpt / CONFIG_FILE
    if not weights.is_file() or not config_path.is_file():
        raise ModelError(f"no re-ranker at {ckpt} (expected {WEIGHTS_FILE} and {CONFIG_FILE})", code="rerank.missing",
                         path=str(ckpt))
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"unreadable re-ranker config {config_path}: {e}", code="rerank.bad_checkpoint",
                         path=str(ckpt)) from None
    if not isinstance(config, dict) or config.get("architecture") != ARCHITECTURE:
        arch = config.get("architecture") if isinstance(config, dict) else None
        raise ModelError(f"{ckpt} holds a checkpoint of architecture {arch!r}, not a re-ranker ({ARCHITECTURE})",
                         code="rerank.bad_checkpoint", path=str(ckpt))
    model = RerankerModel(RerankerConfig.from_dict(config.get("model", {})))
    try:
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
        model.load_state_dict(state)
    except Exception as e:  # safetensors / shape mismatch errors are long; keep their first line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"re-ranker checkpoint {ckpt} does not load: {first}", code="rerank.bad_checkpoint",
                         path=str(ckpt)) from None
    return Reranker(model, config, ckpt, pick_device(device))
