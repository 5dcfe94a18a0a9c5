"""Hostile media folders (the media items of the hardening issue): file names that are not UTF-8, symlinks out
of the indexed folder, truncated audio, and files that are not media at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from xsearch.engine import Engine
from xsearch.media import discover
from xsearch.media.audio import load_audio
from xsearch.media.modalities import labels
from xsearch.media.types import MediaFile, Skipped


def _png(path: Path, colour=(200, 30, 30), size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG")
    return path


def _wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype="PCM_16", format="WAV")
    return path


def _bad(parent: Path, name: bytes) -> Path:
    """``parent / name`` for a name whose bytes are not UTF-8 (as os.fsdecode gives it: with surrogates)."""
    return parent / os.fsdecode(name)


def _index(cli, folder, col, *extra):
    r = cli("index", folder, "-c", col, "--model", "builtin", "--workers", "0", "--json", *extra)
    assert r.code in (0, 4), r.err
    return json.loads(r.out)


@pytest.fixture
def bad_names(tmp_path) -> Path:
    root = tmp_path / "W"
    _png(root / "ok.png")
    _png(_bad(root, b"bad\xff.png"), (10, 20, 200))
    _png(_bad(root, b"dir\xfe") / "inside.png", (10, 200, 20))
    _bad(root, b"notes\xff.xyz").write_text("not media")  # not media: only counted as ignored
    return root


# -- 5. file names that are not UTF-8 -----------------------------------------------------------------------------


def test_non_utf8_names_are_skipped_with_a_reason_and_the_rest_indexed(bad_names, tmp_path):
    col = tmp_path / "col"
    report = Engine(col, model="builtin").index_folder(bad_names, workers=0)
    assert report.added == 1
    reasons = {Path(s["path"]).name: s["reason"] for s in report.skipped}
    assert set(reasons) == {os.fsdecode(b"bad\xff.png"), os.fsdecode(b"dir\xfe")}  # the folder once, not its files
    assert reasons[os.fsdecode(b"bad\xff.png")] == (
        "file name is not valid UTF-8 (bad\\xff.png); rename it to index it")
    assert "not valid UTF-8 (dir\\xfe)" in reasons[os.fsdecode(b"dir\xfe")]
    again = Engine(col, model="builtin").index_folder(bad_names, workers=0)  # and every later run works too
    assert (again.unchanged, again.added, again.removed, len(again.skipped)) == (1, 0, 0, 2)


def test_non_utf8_names_in_the_cli_are_one_line_each(cli, bad_names, tmp_path):
    col = tmp_path / "col"
    r = cli("index", bad_names, "-c", col, "--model", "builtin", "--workers", "0")
    assert r.code == 0 and "Traceback" not in r.err
    assert "bad\\xff.png: file name is not valid UTF-8 (bad\\xff.png)" in r.err
    rep = _index(cli, bad_names, col)
    assert len(rep["skipped"]) == 2 and rep["unchanged"] == 1
    for command in (("similar", _bad(bad_names, b"bad\xff.png")), ("remove", _bad(bad_names, b"bad\xff.png")),
                    ("remove", _bad(bad_names, b"dir\xfe"))):
        r = cli(*command, "-c", col)
        assert r.code == 1 and "Traceback" not in r.err and r.err.count("\n") == 1, (command, r.err)
        assert "not valid UTF-8" in r.err and "\\xf" in r.err


def test_engine_similar_and_remove_refuse_non_utf8_paths_with_a_code(bad_names, tmp_path):
    from xsearch.core.errors import MediaError

    engine = Engine(tmp_path / "col", model="builtin")
    engine.index_folder(bad_names, workers=0)
    for call in (engine.similar, engine.remove):
        with pytest.raises(MediaError) as info:
            call(_bad(bad_names, b"bad\xff.png"))
        assert info.value.code == "media.name_not_utf8" and "\n" not in str(info.value)


def test_a_non_utf8_root_is_one_clear_error(tmp_path):
    from xsearch.core.errors import MediaError

    root = _bad(tmp_path, b"root\xff")
    _png(root / "a.png")
    with pytest.raises(MediaError) as info:
        Engine(tmp_path / "col", model="builtin").index_folder(root, workers=0)
    assert info.value.code == "media.name_not_utf8" and "root\\xff" in str(info.value)


# -- 10. symlinks out of the indexed folder -------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("root:x:0:0:the secret password line\n")
    _png(outside / "pics" / "far.png", (0, 0, 250))
    root = tmp_path / "W"
    root.mkdir()
    (root / "inside.md").write_text("a note about red circles\n")
    _png(root / "real.png")
    os.symlink(outside / "secret.md", root / "s.md")
    os.symlink(outside / "pics", root / "pics")
    os.symlink(root / "inside.md", root / "alias.md")  # a link that stays inside: followed as before
    os.symlink("real.png", root / "rel.png")
    return root


def test_discover_does_not_follow_links_out_of_the_folder_unless_asked(linked, tmp_path):
    found = list(discover(linked, follow_links=False))
    media = sorted(f.path.name for f in found if isinstance(f, MediaFile))
    assert media == ["alias.md", "inside.md", "real.png", "rel.png"]
    reasons = {f.path.name: f.reason for f in found if isinstance(f, Skipped)}
    assert reasons == {
        "pics": f"symlink leaves the indexed folder (target {tmp_path / 'outside' / 'pics'})",
        "s.md": f"symlink leaves the indexed folder (target {tmp_path / 'outside' / 'secret.md'})",
    }
    followed = [f.path.name for f in discover(linked, follow_links=True)]
    assert "s.md" in followed and "far.png" in followed


def test_index_skips_outside_links_by_default_and_follow_links_allows_them(cli, linked, tmp_path):
    col = tmp_path / "col"
    r = cli("index", linked, "-c", col, "--model", "builtin", "--workers", "0")
    assert r.code == 0, r.err
    assert "4 added" in r.out and "2 skipped" in r.out
    assert r.err.count("symlink leaves the indexed folder") == 2
    assert r.err.count("--follow-links") == 1  # one note at the end, not one per link
    hits = json.loads(cli("search", "password line", "--to", "text", "-c", col, "--json").out)
    assert "secret" not in json.dumps(hits)
    rep = _index(cli, linked, col, "--follow-links")
    assert rep["added"] == 2 and rep["skipped"] == []
    assert "secret password" in json.dumps(json.loads(cli("search", "password", "--to", "text", "-c", col,
                                                           "--json").out))
    rep = _index(cli, linked, col)  # without the flag again: what came through the links goes
    assert rep["removed"] == 2 and len(rep["skipped"]) == 2
    assert "secret" not in cli("search", "password", "--to", "text", "-c", col, "--json").out


# -- 13. truncated audio, and files that are not media --------------------------------------------------------------


def _cut_wav(path: Path, seconds: float, keep_seconds: float, rate: int = 16000) -> Path:
    full = _wav(path.with_name("full_" + path.name), seconds, rate).read_bytes()
    path.write_bytes(full[: 44 + round(keep_seconds * rate) * 2])
    return path


def test_truncated_wav_is_reported_as_damaged(tmp_path):
    cut = _cut_wav(tmp_path / "cut.wav", 12.0, 0.15)
    wave, info = load_audio(cut, 16000, 600)
    assert len(wave) == 2400 and info["duration"] == pytest.approx(0.15)
    assert info["damaged"] == "truncated: the header says 12.0 s but only 0.15 s could be read"
    whole = _wav(tmp_path / "whole.wav", 1.0)
    assert "damaged" not in load_audio(whole, 16000, 600)[1]
    assert "damaged" not in load_audio(whole, 16000, 0.5)[1]  # cut on purpose is "truncated", not damaged


def test_truncated_wav_gets_a_note_in_the_index_report(tmp_path):
    root = tmp_path / "W"
    _cut_wav(root / "cut.wav", 12.0, 0.15)
    _wav(root / "fine.wav", 1.0)
    (root / "full_cut.wav").unlink()
    report = Engine(tmp_path / "col", model="builtin").index_folder(root, workers=0)
    assert report.added == 2
    [note] = report.notes
    assert note.startswith(f"{root / 'cut.wav'}: truncated: the header says 12.0 s but only 0.15 s could be read")


def test_non_media_files_are_counted_by_extension(cli, tmp_path):
    root = tmp_path / "W"
    _png(root / "a.png")
    for name in ("one.pdf", "two.PDF", "sub/three.pdf", "x.xyz", "README"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"%PDF-1.4\n" if "pdf" in name.lower() else b"data")
    (root / ".hidden.xyz").write_text("x")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "skip.xyz").write_text("x")
    col = tmp_path / "col"
    report = Engine(col, model="builtin").index_folder(root, workers=0, exclude=["skip.*"])
    assert report.ignored == {".pdf": 3, "(no extension)": 1, ".xyz": 1}
    assert report.to_dict()["ignored"] == report.ignored and not report.skipped
    r = cli("index", root, "-c", tmp_path / "col2", "--model", "builtin", "--workers", "0", "--hidden")
    assert r.code == 0, r.err
    kinds = labels()  # "image, audio or text" (and any modality registered since)
    assert f"ignored 6 files that are not {kinds} files: .pdf ×3, .xyz ×2, (no extension) ×1" in r.err
    assert _index(cli, root, tmp_path / "col3")["ignored"] == {".pdf": 3, "(no extension)": 1, ".xyz": 2}
