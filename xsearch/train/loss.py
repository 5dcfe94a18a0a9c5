"""Contrastive losses: one symmetric InfoNCE reused for every modality pair (as open_clip's ClipLoss)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

PAIRS: tuple[tuple[str, str], ...] = (("image", "text"), ("image", "audio"), ("audio", "text"))


def pair_name(a: str, b: str) -> str:
    return f"{a}-{b}"


class ClipLoss(nn.Module):
    """Symmetric cross-entropy over ``logit_scale · a @ b.T`` with the diagonal as targets.

    ``a`` and ``b`` are L2-normalised ``[n, d]``; row i of each describes the same item group.
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        logits = logit_scale * a @ b.T
        labels = torch.arange(len(a), device=a.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


class MultiPairLoss(nn.Module):
    """``Σ λ_pair · L_pair`` over the modality pairs present in a batch (the multi-task form).

    ``embeddings[m]`` are ``[n, d]`` for the whole batch; ``present[m]`` marks rows that have modality m.
    A pair contributes only over rows that have both modalities (at least two, or it is skipped).
    """

    def __init__(self, weights: dict[str, float] | None = None):
        super().__init__()
        self.weights = dict(weights) if weights is not None else {pair_name(a, b): 1.0 for a, b in PAIRS}
        self.clip = ClipLoss()

    def forward(self, embeddings: dict[str, torch.Tensor], present: dict[str, torch.Tensor],
                logit_scale: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        total = None
        parts: dict[str, float] = {}
        for a, b in PAIRS:
            lam = self.weights.get(pair_name(a, b), 0.0)
            if lam == 0 or a not in embeddings or b not in embeddings:
                continue
            both = present[a] & present[b]
            if int(both.sum()) < 2:
                continue
            loss = self.clip(embeddings[a][both], embeddings[b][both], logit_scale)
            parts[pair_name(a, b)] = float(loss.detach())
            total = lam * loss if total is None else total + lam * loss
        if total is None:
            raise ValueError("no modality pair with at least two rows in this batch")
        return total, parts


def parse_pair_weights(items: list[str] | None) -> dict[str, float]:
    """``["image-text=1", "image-audio=0.5"]`` → weights; unspecified pairs keep 1.0; names in either order."""
    from xsearch.errors import UsageError

    weights = {pair_name(a, b): 1.0 for a, b in PAIRS}
    for item in items or []:
        name, sep, value = item.partition("=")
        a, _, b = name.strip().partition("-")
        key = pair_name(a, b) if pair_name(a, b) in weights else pair_name(b, a)
        if not sep or key not in weights:
            raise UsageError(f"bad --lambda {item!r}; use PAIR=WEIGHT with PAIR one of {', '.join(weights)}.")
        try:
            weights[key] = float(value)
        except ValueError:
            raise UsageError(f"bad --lambda {item!r}: {value!r} is not a number.") from None
        if weights[key] < 0:
            raise UsageError(f"bad --lambda {item!r}: weights must be >= 0.")
    return weights
