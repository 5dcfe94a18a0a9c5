"""iter_decoded(): DataLoader workers decode ahead, keep order, and turn every failure into Skipped."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.media import deny_open, noise_image, save_image, tone, write_wav
from xsearch.media import AUDIO, IMAGE, TEXT, DecodeOptions, MediaFile, iter_decoded

OPTS = DecodeOptions(sample_rate=8000, audio_window_s=1.0, max_audio_s=10)


def _file(path: Path, modality: str) -> MediaFile:
    st = path.stat()
    return MediaFile(path, modality, st.st_size, st.st_mtime_ns)


@pytest.fixture
def mixed(tmp_path: Path) -> list[MediaFile]:
    """Ten files in a fixed order, three of them bad."""
    files = []
    for i in range(10):
        if i in (2, 7):
            path = tmp_path / f"{i:02d}_bad.png"
            path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
            files.append(_file(path, IMAGE))
        elif i == 5:
            path = tmp_path / f"{i:02d}_empty.wav"
            path.write_bytes(b"RIFF")
            files.append(_file(path, AUDIO))
        elif i % 3 == 0:
            files.append(_file(write_wav(tmp_path / f"{i:02d}.wav", tone(300, 2.5, 8000), 8000), AUDIO))
        elif i % 3 == 1:
            files.append(_file(save_image(tmp_path / f"{i:02d}.png", noise_image((8, 8), seed=i)), IMAGE))
        else:
            (tmp_path / f"{i:02d}.txt").write_text(f"passage {i} one.\n\npassage {i} two.")
            files.append(_file(tmp_path / f"{i:02d}.txt", TEXT))
    return files


def _flatten(batches):
    segments = [(s.file.path.name, s.offset) for batch, _ in batches for s in batch]
    skipped = [(s.path.name, s.reason) for _, skips in batches for s in skips]
    return segments, skipped


def _expected(files):
    good = []
    for f in files:
        if "bad" in f.path.name or "empty" in f.path.name:
            continue
        offsets = {AUDIO: [0.0, 1.0, 2.0], IMAGE: [0.0], TEXT: [0.0, 1.0]}[f.modality]
        good += [(f.path.name, o) for o in offsets]
    return good


def test_two_workers_keep_order_and_report_bad_files(mixed):
    batches = list(iter_decoded(mixed, OPTS, files_per_batch=3, workers=2))
    assert len(batches) == 4  # ceil(10 / 3): one batch per group of files, bad ones included
    segments, skipped = _flatten(batches)
    assert segments == _expected(mixed)
    assert [name for name, _ in skipped] == ["02_bad.png", "05_empty.wav", "07_bad.png"]
    assert skipped[0][1].startswith("corrupt or truncated image")
    assert skipped[1][1].startswith("corrupt or unsupported audio")
    batch_names = [[s.file.path.name for s in seg] + [s.path.name for s in sk] for seg, sk in batches]
    assert {n for n in batch_names[0]} == {"00.wav", "01.png", "02_bad.png"}


def test_in_process_gives_the_same_result(mixed):
    in_process = _flatten(list(iter_decoded(mixed, OPTS, files_per_batch=4, workers=0)))
    in_workers = _flatten(list(iter_decoded(mixed, OPTS, files_per_batch=4, workers=2)))
    assert in_process == in_workers
    assert in_process[0] == _expected(mixed)


def test_no_files_no_batches():
    assert list(iter_decoded([], OPTS, workers=2)) == []
    with pytest.raises(ValueError):
        iter_decoded([], OPTS, files_per_batch=0)


def test_unreadable_file_in_a_worker_is_skipped(tmp_path: Path, monkeypatch):
    files = [_file(save_image(tmp_path / f"{i}.png", noise_image((4, 4))), IMAGE) for i in range(4)]
    deny_open(monkeypatch, files[1].path)  # workers are forked, so they inherit the patch
    segments, skipped = _flatten(list(iter_decoded(files, OPTS, files_per_batch=2, workers=2)))
    assert skipped == [("1.png", "permission denied")]
    assert [name for name, _ in segments] == ["0.png", "2.png", "3.png"]


def _loader_module():
    return sys.modules["xsearch.media.loader"]


def test_any_exception_becomes_skipped(tmp_path: Path, monkeypatch):
    files = [_file(save_image(tmp_path / f"{i}.png", noise_image((4, 4))), IMAGE) for i in range(3)]
    loader = _loader_module()
    real_decode = loader.decode

    def flaky(file, opts):
        if file.path.name == "1.png":
            raise KeyError("boom")
        return real_decode(file, opts)

    monkeypatch.setattr(loader, "decode", flaky)
    segments, skipped = _flatten(list(iter_decoded(files, OPTS, files_per_batch=3, workers=2)))
    assert skipped == [("1.png", "decoder failed: KeyError: 'boom'")]
    assert [name for name, _ in segments] == ["0.png", "2.png"]


def test_a_crashing_worker_costs_only_its_file(tmp_path: Path, monkeypatch):
    files = [_file(save_image(tmp_path / f"{i}.png", noise_image((4, 4))), IMAGE) for i in range(7)]
    loader = _loader_module()
    real_decode = loader.decode

    def crashing(file, opts):
        if file.path.name == "4.png":
            os._exit(3)  # like a segfault in a decoder library: the worker process just dies
        return real_decode(file, opts)

    monkeypatch.setattr(loader, "decode", crashing)
    segments, skipped = _flatten(list(iter_decoded(files, OPTS, files_per_batch=2, workers=2)))
    assert skipped == [("4.png", loader.CRASHED)]
    assert [name for name, _ in segments] == ["0.png", "1.png", "2.png", "3.png", "5.png", "6.png"]


def test_decoding_runs_ahead_of_the_consumer(tmp_path: Path, monkeypatch):
    files = [_file(save_image(tmp_path / f"{i}.png", noise_image((4, 4))), IMAGE) for i in range(6)]
    marks = tmp_path / "marks"
    marks.mkdir()
    loader = _loader_module()
    real_decode = loader.decode

    def marking(file, opts):
        (marks / file.path.name).touch()
        return real_decode(file, opts)

    monkeypatch.setattr(loader, "decode", marking)
    batches = iter_decoded(files, OPTS, files_per_batch=2, workers=2)
    next(batches)  # take the first batch, then stop asking
    deadline = time.monotonic() + 10
    while not (marks / "3.png").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (marks / "2.png").exists() and (marks / "3.png").exists()  # batch 2 decoded unrequested
    assert len(list(batches)) == 2
