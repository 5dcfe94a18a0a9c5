"""decode(): one file → segments, by modality; every failure is a one-line MediaError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.media import deny_open, noise_image, png_bytes, save_image, tone, write_wav
from xsearch.core.errors import MediaError
from xsearch.media import AUDIO, IMAGE, TEXT, DecodeOptions, MediaFile, decode, discover


def _file(path: Path, modality: str) -> MediaFile:
    st = path.stat()
    return MediaFile(path, modality, st.st_size, st.st_mtime_ns)


def test_image_gives_one_segment(tmp_path: Path):
    file = _file(save_image(tmp_path / "x.png", noise_image((30, 20))), IMAGE)
    [segment] = decode(file, DecodeOptions())
    assert segment.file is file and segment.modality == IMAGE and segment.offset == 0.0
    assert segment.data.mode == "RGB" and segment.data.size == (30, 20)
    assert segment.info == {"width": 30, "height": 20}


def test_audio_gives_one_segment_per_window(tmp_path: Path):
    file = _file(write_wav(tmp_path / "x.wav", tone(440, 5.3, 8000, amplitude=0.4), 8000), AUDIO)
    opts = DecodeOptions(sample_rate=16000, audio_window_s=2.0, max_audio_s=60)
    segments = decode(file, opts)
    assert [s.offset for s in segments] == [0.0, 2.0, 4.0]
    assert [len(s.data) for s in segments] == [32000, 32000, 20800]
    assert all(s.data.dtype == np.float32 for s in segments)
    assert segments[0].info == {
        "duration": 5.3,
        "sample_rate": 16000,
        "source_sample_rate": 8000,
        "channels": 1,
        "truncated": False,
    }


def test_long_audio_is_cut_at_max_audio_s(tmp_path: Path):
    file = _file(write_wav(tmp_path / "long.wav", tone(440, 7.0, 8000), 8000), AUDIO)
    segments = decode(file, DecodeOptions(sample_rate=8000, audio_window_s=2.0, max_audio_s=4.0))
    assert [s.offset for s in segments] == [0.0, 2.0]
    assert segments[0].info["truncated"] is True and segments[0].info["duration"] == 7.0


def test_text_gives_one_segment_per_passage(tmp_path: Path):
    path = tmp_path / "notes.md"
    path.write_text("# Title\n\nFirst paragraph.\n\nSecond paragraph.\n", encoding="utf-8")
    segments = decode(_file(path, TEXT), DecodeOptions())
    assert [(s.offset, s.data) for s in segments] == [
        (0, "# Title"),
        (1, "First paragraph."),
        (2, "Second paragraph."),
    ]
    info = dict(segments[0].info)
    assert info.pop("text_read") == ["passage"] and len(info.pop("text_lines")) == 3  # for the keyword index
    assert info == {"encoding": "utf-8", "truncated": False}


def test_whitespace_only_text_is_an_error(tmp_path: Path):
    path = tmp_path / "blank.txt"
    path.write_text(" \n\n\t\n")
    with pytest.raises(MediaError, match="no content"):
        decode(_file(path, TEXT), DecodeOptions())


def test_options_limits_reach_the_decoders(tmp_path: Path):
    image = _file(save_image(tmp_path / "x.png", noise_image((50, 50))), IMAGE)
    with pytest.raises(MediaError, match="over the limit of 100"):
        decode(image, DecodeOptions(max_image_pixels=100))
    text = tmp_path / "t.txt"
    text.write_text("abcdefghij" * 10)
    segments = decode(_file(text, TEXT), DecodeOptions(max_text_chars=25, text_passage_chars=10))
    assert [s.data for s in segments] == ["abcdefghij", "abcdefghij", "abcde"]
    assert segments[0].info["truncated"] is True


@pytest.mark.parametrize(
    "name, content, modality, reason",
    [
        ("empty.png", b"", IMAGE, r"^empty file \(0 bytes\)$"),
        ("empty.wav", b"", AUDIO, r"^empty file \(0 bytes\)$"),
        ("noise.png", bytes(range(256)) * 8, IMAGE, "^corrupt or truncated image"),
        ("noise.wav", bytes(range(256)) * 8, AUDIO, "^corrupt or unsupported audio"),
        ("binary.txt", b"a\x00b", TEXT, "^binary content, not text$"),
    ],
)
def test_bad_files_raise_one_line_media_errors(tmp_path: Path, name, content, modality, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError, match=reason) as err:
        decode(_file(path, modality), DecodeOptions())
    assert "\n" not in str(err.value)


def test_truncated_png_via_decode(tmp_path: Path):
    data = png_bytes(noise_image((64, 64)))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="^corrupt or truncated image"):
        decode(_file(path, IMAGE), DecodeOptions())


def test_file_vanished_or_locked(tmp_path: Path, monkeypatch):
    path = save_image(tmp_path / "x.png", noise_image((4, 4)))
    file = _file(path, IMAGE)
    deny_open(monkeypatch, path)
    with pytest.raises(MediaError, match="^permission denied$"):
        decode(file, DecodeOptions())
    monkeypatch.undo()
    path.unlink()
    with pytest.raises(MediaError, match="^file not found$"):
        decode(file, DecodeOptions())


def test_unexpected_library_errors_become_media_errors(tmp_path: Path, monkeypatch):
    import xsearch.media.image as image_module

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero\nin a decoder")

    monkeypatch.setattr(image_module, "load_image", broken)
    file = _file(save_image(tmp_path / "x.png", noise_image((4, 4))), IMAGE)
    with pytest.raises(MediaError) as err:
        decode(file, DecodeOptions())
    assert str(err.value) == "decoder failed: ZeroDivisionError: division by zero in a decoder"


def test_unknown_modality(tmp_path: Path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    with pytest.raises(MediaError, match="unsupported modality 'smell'"):
        decode(_file(path, "smell"), DecodeOptions())


def test_odd_names_discover_and_decode_end_to_end(tmp_path: Path):
    save_image(tmp_path / "ünï cødé\nphoto 🌅.jpg", noise_image((8, 8)), format="JPEG")
    write_wav(tmp_path / "  spaced  out .wav", tone(440, 0.5, 8000), 8000)
    (tmp_path / "日本語 メモ.txt").write_text("こんにちは。", encoding="utf-8")
    found = list(discover(tmp_path))
    assert len(found) == 3 and all(isinstance(f, MediaFile) for f in found)
    decoded = {f.path.name: decode(f, DecodeOptions()) for f in found}
    assert decoded["日本語 メモ.txt"][0].data == "こんにちは。"
    assert decoded["ünï cødé\nphoto 🌅.jpg"][0].info == {"width": 8, "height": 8}
    assert len(decoded["  spaced  out .wav"]) == 1
