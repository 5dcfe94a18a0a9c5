"""Log-mel spectrogram front end for audio encoders (fixed transform, no learned weights)."""

from __future__ import annotations

import torch
import torchaudio


class LogMelSpectrogram(torch.nn.Module):
    """``[B, T]`` waveforms → ``[B, n_mels, frames]`` natural-log mel power, ``log(mel + eps)``."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 320,
        n_mels: int = 64,
        f_min: float = 50.0,
        f_max: float | None = 8000.0,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            power=2.0,
        )
        self.eps = eps

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 2:
            raise ValueError(f"expected waveforms shaped [batch, samples], got {tuple(wave.shape)}")
        return torch.log(self.mel(wave) + self.eps)
