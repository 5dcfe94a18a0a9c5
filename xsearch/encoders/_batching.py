"""Batched inference for the pretrained backends: inference mode, CUDA autocast, a batch size that halves on OOM."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from xsearch.core.errors import ModelError
from xsearch.encoders.base import l2_normalize


def autocast(device: str):
    """fp16/bf16 autocast on CUDA (bf16 where the GPU supports it); nothing on CPU."""
    if not device.startswith("cuda"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


class BatchRunner:
    """Runs ``encode(items[i:i+b]) -> Tensor[b, dim]`` over all items; ``b`` halves (and stays halved) on OOM."""

    def __init__(self, device: str, batch_size: int):
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, not {batch_size}.")
        self.device = device
        self.batch_size = batch_size

    def run(self, items: Sequence, encode: Callable[[Sequence], torch.Tensor], dim: int) -> np.ndarray:
        """Encoded rows of ``items``, in order, L2-normalised float32 of shape [len(items), dim]."""
        outs: list[np.ndarray] = []
        start = 0
        while start < len(items):
            chunk = items[start : start + self.batch_size]
            try:
                with torch.inference_mode(), autocast(self.device):
                    z = encode(chunk)
            except torch.cuda.OutOfMemoryError:
                if self.batch_size == 1:
                    raise ModelError("out of GPU memory even at batch size 1.", code="model.out_of_memory",
                                     device=self.device) from None
                self.batch_size = max(1, self.batch_size // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            outs.append(z.float().cpu().numpy())
            start += len(chunk)
        if not outs:
            return np.zeros((0, dim), dtype=np.float32)
        return l2_normalize(np.concatenate(outs))
