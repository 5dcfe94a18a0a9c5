"""Decode audio with soundfile: read at most a bounded prefix, mix to mono, resample, cut into windows."""

from __future__ import annotations

import os
import re

import numpy as np

from xsearch.core.errors import MediaError
from xsearch.media._io import one_line, open_binary
from xsearch.media.types import DecodeOptions, MediaFile, Segment

MIN_LAST_WINDOW_FRACTION = 0.25  # a trailing partial window shorter than this share of a window is dropped
#: libsndfile's log line for a WAV ``data`` / AIFF ``SSND`` chunk longer than the file: "data : 384000 (should be 4800)"
_CHUNK_PAST_END = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTH = 0x7FFFF000  # chunk sizes from here up are "length unknown" placeholders (streamed WAVs)


def load_audio(
    path: str | os.PathLike, sample_rate: int = 16000, max_seconds: float = 600.0
) -> tuple[np.ndarray, dict]:
    """Read up to ``max_seconds`` of an audio file as a mono float32 waveform at ``sample_rate``.

    Only the frames that are kept are read, so a very long file costs no more than ``max_seconds``.
    Returns ``(wave, info)`` with info = {duration (s, whole file), sample_rate (the file's),
    channels, truncated (True when the file is longer than max_seconds)}, and ``damaged`` (a one-line reason)
    when the file holds less audio than its header says (a cut download): duration is then what is really there.
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
                header_frames = _header_frames(sound.extra_info, total_frames)
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
    got = frames.shape[0]
    available = got if got < keep_frames else total_frames  # a short read: the file ends there
    info = {
        "duration": available / source_rate,
        "sample_rate": source_rate,
        "channels": channels,
        "truncated": available > got,
    }
    if header_frames > available:
        info["damaged"] = (f"truncated: the header says {header_frames / source_rate:.1f} s but only "
                           f"{_seconds(available / source_rate)} s could be read")
    return wave, info


def _header_frames(log: str, frames: int) -> int:
    """How many frames the file's header promises: libsndfile quietly shortens a WAV / AIFF whose data chunk runs
    past the end of the file, and says so only in its log."""
    match = _CHUNK_PAST_END.search(log or "")
    if match is None:
        return frames
    said, there = int(match.group(1)), int(match.group(2))
    if not 0 < there < said < _UNKNOWN_LENGTH:
        return frames
    return max(frames, round(frames * said / there))


def _seconds(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}"


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


def split_windows(wave: np.ndarray, sample_rate: int, window_s: float,
                  hop_s: float | None = None) -> list[tuple[float, np.ndarray]]:
    """Cut ``wave`` into windows of ``window_s`` seconds starting every ``hop_s`` seconds (default: no overlap):
    ``[(start_s, samples)]``. With ``hop_s = window_s / 2`` a sound of up to half a window lands whole in some
    window wherever it starts, and longer sounds lose less to a window boundary.

    The last window is the first that reaches the end; a final partial window is kept when it is at least 25% of
    a window long, or when it is the only one (the encoder pads short input). An empty wave gives no windows.
    """
    window = round(window_s * sample_rate)
    hop = window if hop_s is None else round(hop_s * sample_rate)
    if window <= 0 or hop <= 0:
        raise ValueError("window_s and hop_s times sample_rate must be at least one sample")
    windows = []
    for start in range(0, len(wave), hop):
        piece = wave[start : start + window]
        if len(piece) < window and start > 0 and len(piece) < MIN_LAST_WINDOW_FRACTION * window:
            break
        windows.append((start / sample_rate, piece))
        if start + window >= len(wave):
            break
    return windows


def decode_audio(file: MediaFile, opts: DecodeOptions) -> list[Segment]:
    """The audio modality's decoder: one Segment per window (offset = window start in s), info {duration,
    sample_rate (of ``data``), source_sample_rate, channels, truncated}."""
    wave, source = load_audio(file.path, opts.sample_rate, opts.max_audio_s)
    info = {
        "duration": source["duration"],
        "sample_rate": opts.sample_rate,
        "source_sample_rate": source["sample_rate"],
        "channels": source["channels"],
        "truncated": source["truncated"],
    }
    if "damaged" in source:
        info["damaged"] = source["damaged"]
    windows = split_windows(wave, opts.sample_rate, opts.audio_window_s, opts.audio_hop_s)
    if not windows:
        raise MediaError("audio has no samples after resampling")
    return [Segment(file=file, data=samples, offset=start, info=dict(info)) for start, samples in windows]


def __getattr__(name: str):
    # LogMelSpectrogram subclasses torch.nn.Module, so it lives in its own module and torch is only
    # imported when someone asks for it.
    if name == "LogMelSpectrogram":
        from xsearch.media.melspec import LogMelSpectrogram

        return LogMelSpectrogram
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
