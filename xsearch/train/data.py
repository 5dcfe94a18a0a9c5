"""Decoded training pairs held in memory as tensors, with light augmentation per batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from xsearch.pairs import PairRecord


@dataclass
class PairedTensors:
    """Preprocessed records: images as uint8, one audio window each, every caption tokenised."""

    images: torch.Tensor  # uint8 [N, 3, S, S]
    audio: torch.Tensor  # float32 [N, W]
    tokens: torch.Tensor  # int64 [N, C, L]
    n_captions: torch.Tensor  # int64 [N]
    present: dict[str, torch.Tensor]  # modality -> bool [N]
    labels: list[str]
    problems: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def build(cls, records: Sequence[PairRecord], pre, *, max_captions: int = 8,
              on_item: Callable[[], None] | None = None) -> "PairedTensors":
        """Decode every record through the media layer and the encoder's own preprocessing."""
        from xsearch.media.audio import load_audio
        from xsearch.media.image import load_image

        cfg = pre.cfg
        n, s = len(records), cfg.image_size
        images = torch.zeros((n, 3, s, s), dtype=torch.uint8)
        audio = torch.zeros((n, pre.window), dtype=torch.float32)
        tokens = torch.zeros((n, max_captions, cfg.context_length), dtype=torch.int64)
        n_captions = torch.zeros(n, dtype=torch.int64)
        present = {m: torch.zeros(n, dtype=torch.bool) for m in ("image", "audio", "text")}
        problems = []
        for i, rec in enumerate(records):
            if rec.image is not None:
                try:
                    img = load_image(rec.image, max_pixels=64_000_000)
                    images[i] = (pre.images([img])[0] * 255).round().to(torch.uint8)
                    present["image"][i] = True
                except Exception as e:  # a bad file drops that modality of the record, not the run
                    problems.append(f"{rec.image}: {e}")
            if rec.audio is not None:
                try:
                    wave, _ = load_audio(rec.audio, cfg.sample_rate, cfg.audio_window_s)
                    audio[i] = pre.audio([wave])[0]
                    present["audio"][i] = True
                except Exception as e:
                    problems.append(f"{rec.audio}: {e}")
            if rec.texts:
                caps = rec.texts[:max_captions]
                tokens[i, : len(caps)] = pre.text(caps)
                n_captions[i] = len(caps)
                present["text"][i] = True
            if on_item:
                on_item()
        return cls(images, audio, tokens, n_captions, present, [r.label for r in records], problems)

    def batch(self, idx: torch.Tensor, generator: torch.Generator | None = None, augment: bool = True,
              canonical_text: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Model inputs for rows ``idx`` and the presence masks. Training picks a random caption per row."""
        g = generator
        imgs = self.images[idx].float() / 255.0
        wav = self.audio[idx].clone()
        if canonical_text:
            pick = torch.zeros(len(idx), dtype=torch.int64)
        else:
            pick = (torch.rand(len(idx), generator=g) * self.n_captions[idx].clamp_min(1)).long()
        toks = self.tokens[idx, pick]
        if augment:
            imgs = _shift_images(imgs, 2, g)
            wav = _augment_audio(wav, g)
        inputs = {"image": imgs, "audio": wav, "text": toks}
        present = {m: p[idx] for m, p in self.present.items()}
        return inputs, present


def _shift_images(x: torch.Tensor, max_shift: int, g: torch.Generator | None) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (edge-replicated), one offset per batch."""
    pad = F.pad(x, (max_shift,) * 4, mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * max_shift + 1, (2,), generator=g))
    return pad[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


def _augment_audio(w: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """Per-row gain of ±3 dB and a little added noise."""
    gain_db = (torch.rand(len(w), 1, generator=g) * 6 - 3)
    noise = torch.randn(w.shape, generator=g) * (torch.rand(len(w), 1, generator=g) * 0.003)
    return w * (10 ** (gain_db / 20)) + noise


def rows_with(tensors: PairedTensors, min_modalities: int = 2) -> np.ndarray:
    """Indices of records with at least ``min_modalities`` modalities (a single one has nothing to pair)."""
    count = sum(p.long() for p in tensors.present.values())
    return np.flatnonzero(count.numpy() >= min_modalities)
