"""Measurements the world tests make on rendered images and sounds (numpy only, independent of the renderers)."""

from __future__ import annotations

import colorsys
from collections import deque

import numpy as np

SR = 16000


# --- images -------------------------------------------------------------------------------------------------


def object_mask(image) -> np.ndarray:
    """Pixels that are clearly coloured (backgrounds are neutral grey, so these belong to objects)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    saturation = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-9), 0.0)
    return saturation > 0.25


def mean_object_rgb(image) -> np.ndarray:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    return rgb[object_mask(image)].mean(axis=0)


def nearest_hue_name(rgb: np.ndarray, named_rgb: dict[str, tuple[int, int, int]]) -> str:
    """The name whose colour is closest in (hue angle, saturation) to ``rgb``."""

    def hs(c):
        h, s, _ = colorsys.rgb_to_hsv(*(np.asarray(c, dtype=np.float64) / 255.0))
        return h, s

    h, s = hs(rgb)

    def distance(name):
        h2, s2 = hs(named_rgb[name])
        dh = min(abs(h - h2), 1 - abs(h - h2))
        return dh + 0.5 * abs(s - s2)

    return min(named_rgb, key=distance)


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask (breadth-first flood fill), each as an (k, 2) array of (y, x)."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    found = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        queue, pixels = deque([(y0, x0)]), []
        while queue:
            y, x = queue.popleft()
            pixels.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        found.append(np.array(pixels))
    return found


def classify_shape(pixels: np.ndarray) -> str:
    """Name a blob by how much of its box it fills and where its mass sits (top vs bottom half)."""
    y, x = pixels[:, 0], pixels[:, 1]
    h, w = y.max() - y.min() + 1, x.max() - x.min() + 1
    fill = len(pixels) / (h * w)
    mid = (y.min() + y.max()) / 2
    bottom_heavy = (y > mid).sum() / max((y < mid).sum(), 1)
    if fill > 0.9:
        return "square"
    if fill > 0.7:
        return "circle"
    if bottom_heavy > 2.0:
        return "triangle"
    if fill < 0.47:
        return "star"
    return "cross"


# --- sounds -------------------------------------------------------------------------------------------------


def frame_rms(audio: np.ndarray, hop: int = 160) -> np.ndarray:
    """RMS of consecutive 10 ms frames."""
    n = len(audio) // hop
    frames = audio[: n * hop].reshape(n, hop).astype(np.float64)
    return np.sqrt((frames**2).mean(axis=1))


def note_spans(audio: np.ndarray, on: float = 0.25, off: float = 0.08, hop: int = 160) -> list[tuple[int, int]]:
    """(start, end) sample spans where the loudness rises above ``on`` x max and until it falls below ``off``."""
    rms = frame_rms(audio, hop)
    high, low = on * rms.max(), off * rms.max()
    spans, start = [], None
    for k, level in enumerate(rms):
        if start is None and level > high:
            start = k
        elif start is not None and level < low:
            spans.append((start * hop, k * hop))
            start = None
    if start is not None:
        spans.append((start * hop, len(rms) * hop))
    return spans


def peak_frequency(segment: np.ndarray, sr: int = SR) -> float:
    """The strongest frequency in ``segment`` (Hann window, zero-padded FFT, parabolic peak refinement)."""
    n = 1 << 16
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n))
    spectrum[: int(150 * n / sr)] = 0.0  # ignore DC and the striped background's 100 Hz hum (pitches >= 218 Hz)
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
    shift = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + shift) * sr / n


def semitones(f: float, ref: float) -> float:
    return 12.0 * np.log2(f / ref)
