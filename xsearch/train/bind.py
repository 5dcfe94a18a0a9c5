"""Fit a projection head that maps an audio encoder's space into a vision encoder's space, with text as bridge.

Only audio–caption pairs are used: the audio tower (e.g. CLAP) embeds each clip, the vision model's text tower
(e.g. CLIP) embeds its captions, and a ``ProjectionHead`` is trained with symmetric InfoNCE to send the audio
vector next to its captions in the vision space (as C-MCR / ImageBind do). Both towers stay frozen, so their
embeddings are computed once. Images, when a record has one, are used only to report audio→image recall.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from xsearch.core.errors import XsearchError
from xsearch.encoders.base import Encoder
from xsearch.evaluation.metrics import rank_metrics, relevance_from_labels
from xsearch.pairs import PairRecord, load_manifest
from xsearch.train.loss import ClipLoss


@dataclass
class BindArgs:
    manifest: str
    out_dir: str
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    hidden_dim: int = 0
    temperature: float = 0.05
    seed: int = 0
    train_split: str | None = "train"
    val_split: str | None = "val"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """UsageError (code ``train.bad_value``) for a hyperparameter that cannot train (NaN, <= 0, ...)."""
        from xsearch.train.trainer import NON_NEGATIVE, POSITIVE, SEED_MAX, check_values, whole

        check_values(self, {"epochs": whole(1), "batch_size": whole(2), "lr": POSITIVE,
                            "weight_decay": NON_NEGATIVE, "hidden_dim": whole(0), "temperature": POSITIVE,
                            "seed": whole(0, SEED_MAX)})


def _audio_embeddings(encoder: Encoder, records: list[PairRecord]) -> np.ndarray:
    """One vector per record: the mean of its windows' embeddings, renormalised (the query rule, engine.embed)."""
    from xsearch.engine.embed import embed_files, media_file

    return embed_files(encoder, [media_file(rec.audio, "audio") for rec in records])


def train_bind(args: BindArgs, vision: Encoder, audio: Encoder, *, log: Callable[[str], None] = print):
    """Train and save the head; returns ``(head, report)`` with validation audio→text/image R@1 in vision space."""
    from xsearch.encoders.projection import ProjectionHead
    from xsearch.engine.embed import embed_files, media_file
    from xsearch.train.trainer import TrainingDiverged, check_finite, check_out_dir

    args.validate()
    check_out_dir(args.out_dir)
    if "text" not in vision.modalities or not {"audio", "text"} <= set(audio.modalities):
        raise XsearchError("--bind needs a base model with a text tower and an audio model with audio and text.")
    torch.manual_seed(args.seed)
    manifest = load_manifest(args.manifest)
    usable = [r for r in manifest.records if r.audio is not None and r.texts]
    train = [r for r in usable if args.train_split is None or r.split == args.train_split] or usable
    val = [r for r in usable if args.val_split and r.split == args.val_split]
    if len(train) < 2:
        raise XsearchError(f"{args.manifest} has fewer than two records with both audio and a caption.")
    t0 = time.time()
    a_train = torch.from_numpy(_audio_embeddings(audio, train))
    caps = [r.texts for r in train]
    flat = [t for c in caps for t in c]
    t_flat = vision.embed("text", flat)
    starts = np.concatenate([[0], np.cumsum([len(c) for c in caps])[:-1]])
    counts = np.array([len(c) for c in caps])
    log(f"bind: {len(train)} audio–caption pairs embedded in {time.time() - t0:.0f}s")

    head = ProjectionHead(a_train.shape[1], t_flat.shape[1], args.hidden_dim,
                          meta={"audio_model_id": audio.model_id, "vision_model_id": vision.model_id})
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn, scale = ClipLoss(), torch.tensor(1.0 / args.temperature)
    gen = torch.Generator().manual_seed(args.seed)
    steps = max(1, math.ceil(len(train) / args.batch_size))
    t_all = torch.from_numpy(t_flat)
    for epoch in range(args.epochs):
        order = torch.randperm(len(train), generator=gen)
        for s in range(steps):
            idx = order[s * args.batch_size : (s + 1) * args.batch_size]
            if len(idx) < 2:
                continue
            pick = starts[idx.numpy()] + (torch.rand(len(idx), generator=gen).numpy() * counts[idx.numpy()]).astype(int)
            loss = loss_fn(head(a_train[idx]), t_all[pick], scale)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"bind training diverged at epoch {epoch + 1}; nothing was saved")
    head.eval()
    check_finite(head, "the bind head")
    report = {"train_pairs": len(train), "final_loss": float(loss.detach())}
    if val:
        projected = head.project(_audio_embeddings(audio, val))
        labels = [r.label for r in val]
        texts = vision.embed("text", [r.texts[0] for r in val])
        report["val audio->text R@1"] = rank_metrics(projected @ texts.T, relevance_from_labels(labels, labels))["R@1"]
        with_img = [i for i, r in enumerate(val) if r.image is not None]
        if with_img:
            imgs = embed_files(vision, [media_file(val[i].image, "image") for i in with_img])  # as queries are
            sub = [labels[i] for i in with_img]
            report["val audio->image R@1"] = rank_metrics(projected[with_img] @ imgs.T,
                                                          relevance_from_labels(sub, sub))["R@1"]
    head.meta["report"] = report
    head.save(Path(args.out_dir))
    return head, report
