"""Sounds: every attribute can be read back from the waveform."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile

from tests.helpers.world import SR, frame_rms, note_spans, peak_frequency, semitones
from xsearch.world import COLOURS, SHAPES, colour_pitch, render_audio, sample_groups, write_audio


def variant(group, **attributes):
    """The same group (same seeds) with some attributes changed."""
    return dataclasses.replace(group, attributes={**group.attributes, **attributes})


@pytest.fixture(scope="module")
def base():
    return sample_groups(1, seed=9)[0]


@pytest.fixture(scope="module")
def rendered():
    return [(g, render_audio(g)) for g in sample_groups(150, seed=4)]


def harmonic_amplitude(spectrum: np.ndarray, n_fft: int, f: float) -> float:
    lo, hi = int(f * 0.97 * n_fft / SR), int(f * 1.03 * n_fft / SR) + 1
    return float(spectrum[lo:hi].max())


def test_format_and_determinism(rendered, tmp_path):
    g, audio = rendered[0]
    assert audio.dtype == np.float32 and audio.shape == (2 * SR,)
    for _, a in rendered:
        assert 0.3 < np.abs(a).max() < 1.0  # peak-normalised below 0 dBFS with a few dB of gain jitter
    assert np.array_equal(render_audio(g), audio)
    write_audio(tmp_path / "a.wav", audio)
    data, sr = soundfile.read(tmp_path / "a.wav", dtype="float32")
    info = soundfile.info(tmp_path / "a.wav")
    assert sr == SR and info.subtype == "PCM_16" and info.channels == 1 and info.format == "WAV"
    assert np.abs(data - audio).max() < 1e-4


def test_number_of_notes_is_the_count(rendered):
    for g, audio in rendered:
        assert len(note_spans(audio)) == g.attributes["count"], g.attributes


@pytest.mark.parametrize("colour", COLOURS)
def test_pitch_is_the_colour(base, colour):
    for shape in ("circle", "square", "triangle", "star"):  # cross has equal harmonics: no single peak
        g = variant(base, colour=colour, shape=shape, position="centre", background="striped")
        audio = render_audio(g)
        start, end = note_spans(audio)[0]
        f = peak_frequency(audio[start:end])
        assert abs(semitones(f, colour_pitch(colour))) < 1.0, (shape, f)


def test_colour_pitches_are_three_semitones_apart():
    pitches = [colour_pitch(c) for c in COLOURS]
    assert pitches[0] == 220.0 and abs(pitches[-1] - 740.0) < 1.0
    assert np.allclose(np.diff(12 * np.log2(pitches)), 3.0)


def test_small_notes_are_shorter_than_large(base):
    for shape in SHAPES:
        lengths = {}
        for size in ("small", "large"):
            audio = render_audio(variant(base, shape=shape, size=size, count=3, background="plain"))
            lengths[size] = np.mean([e - s for s, e in note_spans(audio)]) / SR
        assert lengths["small"] < 0.2 < lengths["large"] * 1.4, (shape, lengths)
        assert lengths["large"] > 1.7 * lengths["small"], (shape, lengths)


@pytest.mark.parametrize("position, direction", [("left", -1), ("centre", 0), ("right", 1)])
def test_glide_follows_position(base, position, direction):
    audio = render_audio(variant(base, shape="circle", size="large", position=position, background="plain"))
    start, end = note_spans(audio)[0]
    third = (end - start) // 3
    first, last = peak_frequency(audio[start : start + third]), peak_frequency(audio[end - third : end])
    change = semitones(last, first)
    if direction == 0:
        assert abs(change) < 0.5
    else:
        assert 1.5 < direction * change < 4.5, change


def test_timbre_and_envelope_follow_shape(base):
    n_fft = 1 << 15
    features = {}
    for shape in SHAPES:
        g = variant(base, shape=shape, size="large", count=1, position="centre", background="plain", colour="red")
        audio = render_audio(g)
        start, end = note_spans(audio)[0]
        note = audio[start:end]
        spectrum = np.abs(np.fft.rfft(note * np.hanning(len(note)), n_fft))
        f0 = peak_frequency(note) if shape != "cross" else colour_pitch("red")
        amp = {k: harmonic_amplitude(spectrum, n_fft, k * f0) for k in (1, 2, 2.76, 3, 5.4, 10)}
        rms = frame_rms(note)
        features[shape] = (amp, rms[-3] / rms.max())
    circle, square, triangle, star, cross = (features[s] for s in SHAPES)
    assert circle[0][2] < 0.02 * circle[0][1] and circle[0][3] < 0.02 * circle[0][1]  # pure sine
    assert square[0][2] < 0.05 * square[0][3] and square[0][3] > 0.2 * square[0][1]  # odd harmonics only
    assert triangle[0][2] > 0.3 * triangle[0][1] and triangle[0][3] > 0.2 * triangle[0][1]  # all harmonics
    assert star[0][2.76] > 3 * star[0][2] and star[0][5.4] > 3 * star[0][3]  # inharmonic bell partials
    assert cross[0][10] > 0.5 * cross[0][1]  # buzzy: high harmonics as strong as the fundamental
    # Envelopes: plucks and bells decay, square and cross hold, the sine swells in and out.
    assert triangle[1] < 0.2 and star[1] < 0.5
    assert square[1] > 0.8 and cross[1] > 0.8 and circle[1] < 0.5


def test_background_bed(base):
    quiet = {}
    for background in ("plain", "striped", "dotted"):
        audio = render_audio(variant(base, count=1, size="small", background=background))
        _, end = note_spans(audio)[0]
        tail = audio[end + SR // 20 :]  # the bed alone, after the only note
        spectrum = np.abs(np.fft.rfft(tail * np.hanning(len(tail))))
        freqs = np.fft.rfftfreq(len(tail), 1 / SR)
        rms = frame_rms(tail)
        quiet[background] = (freqs[np.argmax(spectrum)], rms.max() / np.median(rms))
    assert abs(quiet["striped"][0] - 100) < 3  # the hum
    assert quiet["dotted"][1] > 3 > quiet["plain"][1]  # clicks stand out of the noise
    assert quiet["striped"][1] < 3
