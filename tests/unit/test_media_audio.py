"""load_audio(), split_windows() and LogMelSpectrogram: formats, mixing, resampling, limits, bad files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.media import deny_open, fft_peak_hz, tone, wav_header, write_sparse_wav, write_wav
from xsearch.core.errors import MediaError
from xsearch.media import load_audio, split_windows


def test_mono_wav_same_rate_is_read_exactly(tmp_path: Path):
    wave = tone(440, 0.5, 16000)
    path = write_wav(tmp_path / "a.wav", wave, 16000, subtype="FLOAT")
    loaded, info = load_audio(path, 16000, 10)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    np.testing.assert_array_equal(loaded, wave)
    assert info == {"duration": 0.5, "sample_rate": 16000, "channels": 1, "truncated": False}


def test_stereo_is_mixed_down_to_mono(tmp_path: Path):
    left = tone(300, 0.25, 8000, amplitude=0.8)
    stereo = np.stack([left, 0.25 * left], axis=1)
    path = write_wav(tmp_path / "stereo.wav", stereo, 8000, subtype="FLOAT")
    loaded, info = load_audio(path, 8000, 10)
    assert info["channels"] == 2 and loaded.ndim == 1
    np.testing.assert_allclose(loaded, 0.625 * left, atol=1e-6)


def test_resampling_keeps_a_1khz_tone_at_1khz(tmp_path: Path):
    path = write_wav(tmp_path / "tone44k.wav", tone(1000, 1.0, 44100), 44100)
    loaded, info = load_audio(path, 16000, 10)
    assert info["sample_rate"] == 44100
    assert abs(len(loaded) - 16000) <= 1
    assert abs(fft_peak_hz(loaded, 16000) - 1000) <= 2
    assert 0.3 < np.abs(loaded).max() < 0.7  # amplitude 0.5 survives


def test_upsampling_too(tmp_path: Path):
    path = write_wav(tmp_path / "tone8k.wav", tone(1000, 1.0, 8000), 8000)
    loaded, _ = load_audio(path, 22050, 10)
    assert abs(len(loaded) - 22050) <= 1
    assert abs(fft_peak_hz(loaded, 22050) - 1000) <= 2


@pytest.mark.parametrize(
    "ext, fmt, subtype",
    [
        ("flac", "FLAC", "PCM_16"),
        ("ogg", "OGG", "VORBIS"),
        ("mp3", "MP3", "MPEG_LAYER_III"),
        ("aiff", "AIFF", "PCM_16"),
    ],
)
def test_other_formats_decode(tmp_path: Path, ext, fmt, subtype):
    path = tmp_path / f"tone.{ext}"
    sf.write(path, tone(1000, 1.0, 16000), 16000, format=fmt, subtype=subtype)
    loaded, info = load_audio(path, 16000, 10)
    assert abs(info["duration"] - 1.0) < 0.1
    assert abs(fft_peak_hz(loaded, 16000) - 1000) <= 3


def test_only_max_seconds_are_kept(tmp_path: Path):
    path = write_wav(tmp_path / "3s.wav", tone(200, 3.0, 8000), 8000)
    loaded, info = load_audio(path, 16000, 1.0)
    assert len(loaded) == 16000
    assert info["truncated"] is True and info["duration"] == 3.0


def test_eight_hour_wav_costs_nothing(tmp_path: Path):
    path = write_sparse_wav(tmp_path / "eight_hours.wav", 8 * 3600, 16000)
    assert path.stat().st_size == 44 + 8 * 3600 * 16000 * 2
    started = time.perf_counter()
    loaded, info = load_audio(path, 16000, 30)
    elapsed = time.perf_counter() - started
    assert len(loaded) == 30 * 16000
    assert info["duration"] == 8 * 3600 and info["truncated"] is True
    assert elapsed < 2.0, f"took {elapsed:.2f}s"


def test_truncated_wav_decodes_what_is_there(tmp_path: Path):
    full = write_wav(tmp_path / "full.wav", tone(500, 1.0, 8000), 8000).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full[: 44 + 8000])  # the header announces 1 s, only 0.5 s of samples are there
    loaded, info = load_audio(cut, 8000, 10)
    assert len(loaded) == 4000 and info["duration"] == 0.5


def test_wav_cut_inside_its_header(tmp_path: Path):
    full = write_wav(tmp_path / "full.wav", tone(500, 1.0, 8000), 8000).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full[:30])
    with pytest.raises(MediaError, match="^corrupt or unsupported audio: ") as err:
        load_audio(cut, 8000, 10)
    assert "\n" not in str(err.value) and "BytesIO" not in str(err.value) and "<" not in str(err.value)


def test_random_bytes_with_wav_name(tmp_path: Path):
    path = tmp_path / "noise.wav"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="^corrupt or unsupported audio: "):
        load_audio(path, 16000, 10)


def test_header_only_wav_has_no_samples(tmp_path: Path):
    path = tmp_path / "silent.wav"
    path.write_bytes(wav_header(16000, 0))
    with pytest.raises(MediaError, match="^audio has no samples$"):
        load_audio(path, 16000, 10)


def test_non_finite_samples(tmp_path: Path):
    wave = tone(200, 0.1, 8000)
    wave[10] = np.nan
    path = write_wav(tmp_path / "nan.wav", wave, 8000, subtype="FLOAT")
    with pytest.raises(MediaError, match="non-finite"):
        load_audio(path, 16000, 10)


def test_zero_byte_audio(tmp_path: Path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(MediaError, match=r"^empty file \(0 bytes\)$"):
        load_audio(path, 16000, 10)


def test_unreadable_audio(tmp_path: Path, monkeypatch):
    path = write_wav(tmp_path / "locked.wav", tone(200, 0.1, 8000), 8000)
    deny_open(monkeypatch, path)
    with pytest.raises(MediaError, match="^permission denied$"):
        load_audio(path, 16000, 10)


def test_torchaudio_load_is_never_used(tmp_path: Path, monkeypatch):
    import torchaudio

    def forbidden(*args, **kwargs):
        raise AssertionError("torchaudio.load must not be used (it needs FFmpeg)")

    monkeypatch.setattr(torchaudio, "load", forbidden)
    path = write_wav(tmp_path / "a.wav", tone(200, 0.1, 8000), 8000)
    assert len(load_audio(path, 16000, 10)[0]) == 1600


# --- windows ---


def test_windows_offsets_and_long_enough_tail():
    wave = np.arange(53, dtype=np.float32)  # 5.3 s at 10 Hz
    windows = split_windows(wave, 10, 2.0)
    assert [start for start, _ in windows] == [0.0, 2.0, 4.0]
    assert [len(w) for _, w in windows] == [20, 20, 13]
    np.testing.assert_array_equal(np.concatenate([w for _, w in windows]), wave)


def test_short_tail_is_dropped_but_a_lone_short_window_is_kept():
    assert [len(w) for _, w in split_windows(np.zeros(44), 10, 2.0)] == [20, 20]  # tail of 4 < 25% of 20
    assert [len(w) for _, w in split_windows(np.zeros(45), 10, 2.0)] == [20, 20, 5]  # exactly 25% kept
    assert [(s, len(w)) for s, w in split_windows(np.zeros(2), 10, 2.0)] == [(0.0, 2)]
    assert [len(w) for _, w in split_windows(np.zeros(40), 10, 2.0)] == [20, 20]
    assert split_windows(np.zeros(0), 10, 2.0) == []
    with pytest.raises(ValueError):
        split_windows(np.zeros(10), 10, 0.0)


# --- log-mel front end ---


def test_log_mel_spectrogram_shape_and_frequency_response():
    import torch

    from xsearch.media.audio import LogMelSpectrogram

    mel = LogMelSpectrogram(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, f_min=0.0, f_max=8000.0)
    assert list(mel.parameters()) == []  # no learned weights
    low = torch.from_numpy(tone(500, 1.0, 16000))
    high = torch.from_numpy(tone(4000, 1.0, 16000))
    out = mel(torch.stack([low, high]))
    assert out.shape == (2, 40, 101)
    assert torch.isfinite(out).all()
    low_peak, high_peak = out.mean(dim=2).argmax(dim=1).tolist()
    assert low_peak < high_peak
    with pytest.raises(ValueError):
        mel(low)
