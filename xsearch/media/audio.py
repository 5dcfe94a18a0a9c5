"""Decode audio with soundfile: read at most a bounded prefix, mix to mono, resample, cut into windows."""

from __future__ import annotations

import os

import numpy as np

from xsearch.errors import MediaError
from xsearch.media._io import one_line, open_binary

MIN_LAST_WINDOW_FRACTION = 0.25  # a trailing partial window shorter than this share of a window is dropped


def load_audio(
    path: str | os.PathLike, sample_rate: int = 16000, max_seconds: float = 600.0
) -> tuple[np.ndarray, dict]:
    """Read up to ``max_seconds`` of an audio file as a mono float32 waveform at ``sample_rate``.

    Only the frames that are kept are read, so a very long file costs no more than ``max_seconds``.
    Returns ``(wave, info)`` with info = {duration (s, whole file), sample_rate (the file's),
    channels, truncated (True when the file is longer than max_seconds)}.
    Corrupt, unsupported, empty or non-finite audio raises MediaError.
    """
    import soundfile as sf

    if sample_rate <= 0 or max_seconds <= 0:
        raise ValueError("sample_rate and max_seconds must be positive")
    with open_binary(path) as handle:
        try:
            with sf.SoundFile(handle) as sound:
                source_rate, channels, total_frames = sound.samplerate, sound.channels, sound.frames
                keep_frames = min(total_frames, round(max_seconds * source_rate))
                frames = sound.read(frames=keep_frames, dtype="float32", always_2d=True)
        except sf.LibsndfileError as exc:
            raise MediaError(f"corrupt or unsupported audio: {_libsndfile_reason(exc)}") from exc
        except (RuntimeError, ValueError, TypeError, OSError, MemoryError) as exc:
            raise MediaError(f"corrupt or unsupported audio: {type(exc).__name__}: {one_line(exc)}") from exc
    if frames.shape[0] == 0:
        raise MediaError("audio has no samples")
    if not np.isfinite(frames).all():
        raise MediaError("audio contains non-finite samples (NaN or infinity)")
    mono = frames.mean(axis=1, dtype=np.float32) if frames.shape[1] > 1 else frames[:, 0]
    wave = _resample(np.ascontiguousarray(mono), source_rate, sample_rate)
    info = {
        "duration": total_frames / source_rate,
        "sample_rate": source_rate,
        "channels": channels,
        "truncated": total_frames > keep_frames,
    }
    return wave, info


def _libsndfile_reason(exc: Exception) -> str:
    # soundfile's message starts "Error opening <file object ...>: "; keep libsndfile's own words.
    message = getattr(exc, "error_string", None) or one_line(exc)
    return one_line(message)


def _resample(wave: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return wave.astype(np.float32, copy=False)
    import torch
    import torchaudio.functional as AF

    with torch.no_grad():
        resampled = AF.resample(torch.from_numpy(wave), source_rate, target_rate)
    return resampled.numpy().astype(np.float32, copy=False)


def split_windows(wave: np.ndarray, sample_rate: int, window_s: float) -> list[tuple[float, np.ndarray]]:
    """Cut ``wave`` into fixed, non-overlapping windows of ``window_s`` seconds: ``[(start_s, samples)]``.

    A final partial window is kept when it is at least 25% of a window long, or when it is the only
    one (the encoder pads short input). An empty wave gives no windows.
    """
    window = round(window_s * sample_rate)
    if window <= 0:
        raise ValueError("window_s * sample_rate must be at least one sample")
    windows = []
    for start in range(0, len(wave), window):
        piece = wave[start : start + window]
        if len(piece) < window and start > 0 and len(piece) < MIN_LAST_WINDOW_FRACTION * window:
            break
        windows.append((start / sample_rate, piece))
    return windows


def __getattr__(name: str):
    # LogMelSpectrogram subclasses torch.nn.Module, so it lives in its own module and torch is only
    # imported when someone asks for it.
    if name == "LogMelSpectrogram":
        from xsearch.media.melspec import LogMelSpectrogram

        return LogMelSpectrogram
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
