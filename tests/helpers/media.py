"""Small fixture builders for the media-layer tests: every file is generated in tmp_path at test time."""

from __future__ import annotations

import builtins
import errno
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image


def save_image(path: Path, image: Image.Image, **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **save_kwargs)
    return path


def noise_image(size=(64, 48), seed=0) -> Image.Image:
    """Random RGB pixels: compresses badly, so a truncated file really lacks pixel data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` pixels (1-bit grey)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row))  # one row of data; the rest is missing
        + _png_chunk(b"IEND", b"")
    )


def tone(freq: float, seconds: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, wave: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sample_rate, subtype=subtype, format="WAV")
    return path


def wav_header(sample_rate: int, data_bytes: int, channels: int = 1, bits: int = 16) -> bytes:
    """A canonical 44-byte PCM WAV header announcing ``data_bytes`` of sample data."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def write_sparse_wav(path: Path, seconds: float, sample_rate: int = 16000) -> Path:
    """A WAV of ``seconds`` of silence that takes (almost) no disk: header, then a hole."""
    data_bytes = int(seconds * sample_rate) * 2
    with open(path, "wb") as handle:
        handle.write(wav_header(sample_rate, data_bytes))
        handle.truncate(44 + data_bytes)
    return path


def fft_peak_hz(wave: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sample_rate)[int(np.argmax(spectrum))])


def deny_open(monkeypatch, *paths: Path) -> None:
    """Make builtins.open raise PermissionError for ``paths`` (tests run as root, so chmod can't)."""
    denied = {os.path.abspath(p) for p in paths}
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in denied:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
