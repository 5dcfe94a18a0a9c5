"""Synthesise a group as 2 s of 16 kHz mono sound, each attribute audible in its own way.

- colour -> pitch: 220 Hz * 2**(3k/12) for colour index k (3-semitone steps, 220..740 Hz)
- shape -> timbre and envelope: circle = sine, smooth swell; square = odd harmonics, flat; triangle = pluck
  (sawtooth, instant attack, fast decay); star = bell (inharmonic partials 1, 2.76, 5.40, decaying);
  cross = buzzy pulse train (all harmonics, equal), flat
- size -> note length (small ~0.15 s, large ~0.40 s); count -> number of notes
- position -> pitch glide within each note: left down 4 semitones, centre steady, right up 4 semitones
- background -> bed under the notes: plain = faint noise; striped = 100 Hz hum; dotted = sparse clicks
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xsearch.world.attributes import COLOURS
from xsearch.world.groups import Group

SAMPLE_RATE = 16000
DURATION_S = 2.0
BASE_PITCH_HZ = 220.0
NOTE_LENGTH_S = {"small": 0.15, "large": 0.40}
GLIDE_SEMITONES = {"left": -4.0, "centre": 0.0, "right": 4.0}
MAX_PARTIAL_HZ = 7500.0  # partials above this are left out, so nothing aliases
BELL_PARTIALS = ((1.0, 1.0), (2.76, 0.6), (5.40, 0.4))  # (frequency ratio, amplitude)

_LENGTH_JITTER_S = 0.01
_DETUNE_CENTS = 15.0
_GAIN_DB = 3.0
_PEAK = 0.5  # peak level before the gain jitter: at most 0.5 * 10**(3/20) ~ 0.71, never clipping
_LAST_NOTE_END_S = 1.97
_NOTE_LEVEL = 0.5  # RMS of a note's loudest 10 ms; the bed below is set relative to it


def colour_pitch(colour: str) -> float:
    """The fundamental (Hz) a colour sounds at, before the per-item detune."""
    return BASE_PITCH_HZ * 2.0 ** (3 * COLOURS.index(colour) / 12.0)


def render_audio(group: Group) -> np.ndarray:
    """The group's sound: float32 mono at 16 kHz, 2 s long, peak below 0 dBFS; identical for identical groups."""
    rng = group.rng("audio")
    a = group.attributes
    n_total = round(DURATION_S * SAMPLE_RATE)
    out = np.zeros(n_total, dtype=np.float64)

    f0 = colour_pitch(a["colour"]) * 2.0 ** (rng.uniform(-_DETUNE_CENTS, _DETUNE_CENTS) / 1200.0)
    glide = GLIDE_SEMITONES[a["position"]]
    for onset, length in _note_times(a["count"], a["size"], rng):
        note = _note(a["shape"], f0, glide, length)
        start = round(onset * SAMPLE_RATE)
        out[start : start + len(note)] += note[: n_total - start]

    out += _bed(a["background"], n_total, rng)
    gain = 10.0 ** (rng.uniform(-_GAIN_DB, _GAIN_DB) / 20.0)
    out *= _PEAK * gain / np.max(np.abs(out))
    return out.astype(np.float32)


def write_audio(path: str | Path, audio: np.ndarray) -> None:
    """Write ``audio`` as a 16 kHz mono PCM_16 WAV."""
    import soundfile

    soundfile.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def _note_times(count: int, size: str, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(onset, length) of each note in seconds; start and gaps shrink together if the notes would not fit."""
    lengths = NOTE_LENGTH_S[size] + rng.uniform(-_LENGTH_JITTER_S, _LENGTH_JITTER_S, size=count)
    start = rng.uniform(0.05, 0.15)
    gaps = rng.uniform(0.08, 0.15, size=count - 1)
    spare = _LAST_NOTE_END_S - lengths.sum()
    used = start + gaps.sum()
    if used > spare:
        start, gaps = start * spare / used, gaps * spare / used
    times, t = [], start
    for k in range(count):
        times.append((t, float(lengths[k])))
        t += lengths[k] + (gaps[k] if k < count - 1 else 0.0)
    return times


def _note(shape: str, f0: float, glide: float, length: float) -> np.ndarray:
    """One note: the shape's partials over a gliding phase, times its envelope, at a common loudness."""
    n = round(length * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    freq = f0 * 2.0 ** (glide * (t / length) / 12.0)
    phase = 2.0 * np.pi * (np.cumsum(freq) - freq[0]) / SAMPLE_RATE
    top = f0 * 2.0 ** (max(glide, 0.0) / 12.0)
    n_harm = max(1, int(MAX_PARTIAL_HZ // top))

    if shape == "circle":
        wave = np.sin(phase)
        env = _swell(n, attack=0.3 * n, release=0.3 * n)
    elif shape == "square":
        wave = sum(np.sin(h * phase) / h for h in range(1, n_harm + 1, 2))
        env = _swell(n, attack=0.005 * SAMPLE_RATE, release=0.005 * SAMPLE_RATE)
    elif shape == "triangle":
        wave = sum(np.sin(h * phase) / h for h in range(1, n_harm + 1))
        env = np.exp(-t / (0.22 * length)) * _swell(n, attack=0.001 * SAMPLE_RATE, release=0.005 * SAMPLE_RATE)
    elif shape == "star":
        wave = sum(
            amp * np.sin(ratio * phase) * np.exp(-t / (0.45 * length / np.sqrt(ratio)))
            for ratio, amp in BELL_PARTIALS
            if ratio * top < MAX_PARTIAL_HZ
        )
        env = _swell(n, attack=0.001 * SAMPLE_RATE, release=0.005 * SAMPLE_RATE)
    elif shape == "cross":
        wave = sum(np.sin(h * phase) for h in range(1, n_harm + 1))
        env = _swell(n, attack=0.005 * SAMPLE_RATE, release=0.005 * SAMPLE_RATE)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    note = wave * env
    return note * (_NOTE_LEVEL / _loudest_frame_rms(note))


def _loudest_frame_rms(x: np.ndarray, frame: int = SAMPLE_RATE // 100) -> float:
    """RMS of the loudest 10 ms frame: notes are levelled on it, so thin and buzzy timbres sound equally loud."""
    n = len(x) // frame  # notes are >= 0.14 s, so n >= 14
    frames = x[: n * frame].reshape(n, frame)
    return float(np.sqrt((frames**2).mean(axis=1)).max())


def _swell(n: int, attack: float, release: float) -> np.ndarray:
    """A flat envelope with raised-cosine ramps of ``attack`` and ``release`` samples."""
    env = np.ones(n)
    a, r = max(int(attack), 1), max(int(release), 1)
    env[:a] = np.sin(0.5 * np.pi * np.arange(a) / a) ** 2
    env[n - r :] = np.minimum(env[n - r :], np.cos(0.5 * np.pi * np.arange(1, r + 1) / r) ** 2)
    return env


def _bed(background: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """The background sound: faint white noise, plus a hum (striped) or clicks (dotted)."""
    bed = rng.normal(0.0, rng.uniform(0.003, 0.008), size=n)
    t = np.arange(n) / SAMPLE_RATE
    if background == "striped":
        level = rng.uniform(0.02, 0.03)
        for harmonic, amp in ((1, 1.0), (2, 0.5), (3, 0.3)):
            bed += level * amp * np.sin(2.0 * np.pi * 100.0 * harmonic * t + rng.uniform(0, 2 * np.pi))
    elif background == "dotted":
        click = np.exp(-np.arange(48) / 8.0)
        for _ in range(rng.poisson(15.0 * n / SAMPLE_RATE)):
            at = int(rng.integers(0, n - len(click)))
            bed[at : at + len(click)] += rng.choice((-1.0, 1.0)) * rng.uniform(0.15, 0.3) * click
    elif background != "plain":
        raise ValueError(f"unknown background {background!r}")
    return bed
