"""discover(): walking, ordering, classification by extension and content, and every bad-path case."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tests.helpers.media import deny_open, noise_image, png_bytes, save_image, tone, write_wav
from xsearch.core.errors import MediaError
from xsearch.media import AUDIO, IMAGE, TEXT, MediaFile, Skipped, discover
from xsearch.media.sniff import sniff_media


def _found(root, **kwargs) -> list:
    return list(discover(root, **kwargs))


def _by_name(found) -> dict[str, MediaFile | Skipped]:
    return {item.path.name: item for item in found}


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "col"
    save_image(root / "b.png", noise_image((8, 8)))
    save_image(root / "a.jpg", noise_image((8, 8)), format="JPEG")
    write_wav(root / "sub" / "tone.wav", tone(440, 0.2, 8000), 8000)
    (root / "sub" / "notes.md").write_text("# hello\n\nworld\n", encoding="utf-8")
    (root / "sub" / "deeper").mkdir()
    (root / "sub" / "deeper" / "z.txt").write_text("zed", encoding="utf-8")
    (root / "readme.pdf").write_bytes(b"%PDF-1.4 not media")
    (root / "script.py").write_text("print('hi')\n")
    (root / ".hidden.png").write_bytes(png_bytes(noise_image((4, 4))))
    save_image(root / ".cache" / "c.png", noise_image((4, 4)))
    return root


def test_walk_is_sorted_recursive_and_classified(collection: Path):
    found = _found(collection)
    assert all(isinstance(f, MediaFile) for f in found)
    rel = [f.path.relative_to(collection).as_posix() for f in found]
    assert rel == ["a.jpg", "b.png", "sub/deeper/z.txt", "sub/notes.md", "sub/tone.wav"]
    assert [f.modality for f in found] == [IMAGE, IMAGE, TEXT, TEXT, AUDIO]
    first = found[0]
    st = os.stat(first.path)
    assert first.path.is_absolute()
    assert (first.size, first.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert _found(collection) == found  # stable across runs


def test_hidden_files_and_dirs_only_on_request(collection: Path):
    names = {f.path.relative_to(collection).as_posix() for f in _found(collection, hidden=True)}
    assert {".hidden.png", ".cache/c.png"} <= names


def test_relative_root_gives_absolute_paths(collection: Path, monkeypatch):
    monkeypatch.chdir(collection.parent)
    found = _found("col")
    assert found and all(f.path.is_absolute() for f in found)
    assert found[0].path == collection / "a.jpg"


def test_include_and_exclude_globs(collection: Path):
    only_png = _found(collection, include=["*.png"])
    assert [f.path.name for f in only_png] == ["b.png"]
    by_relative_path = _found(collection, include=["sub/*.md"])
    assert [f.path.name for f in by_relative_path] == ["notes.md"]
    without_sub = _found(collection, exclude=["sub"])  # a directory name prunes the directory
    assert [f.path.name for f in without_sub] == ["a.jpg", "b.png"]
    without_deeper = _found(collection, exclude=["sub/deeper/*"])
    assert "z.txt" not in {f.path.name for f in without_deeper}
    assert "notes.md" in {f.path.name for f in without_deeper}


def test_modalities_filter(collection: Path):
    assert {f.modality for f in _found(collection, modalities=[AUDIO])} == {AUDIO}
    with pytest.raises(ValueError):
        _found(collection, modalities=["smell"])


def test_missing_path_raises_at_once(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(MediaError, match="path does not exist: .*nope"):
        discover(missing)  # raised by the call itself, before iteration


def test_empty_folder_yields_nothing(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    assert _found(tmp_path / "empty") == []


def test_single_file_root(tmp_path: Path):
    image = save_image(tmp_path / "one.png", noise_image((4, 4)))
    assert _found(image) == [MediaFile(image, IMAGE, image.stat().st_size, image.stat().st_mtime_ns)]
    other = tmp_path / "data.bin"
    other.write_bytes(b"\x01\x02\x03")
    [skipped] = _found(other)
    assert isinstance(skipped, Skipped) and "not a supported" in skipped.reason and ".bin" in skipped.reason


def test_content_decides_when_extension_lies(tmp_path: Path):
    (tmp_path / "really_png.jpg").write_bytes(png_bytes(noise_image((4, 4))))
    (tmp_path / "really_png.wav").write_bytes(png_bytes(noise_image((4, 4))))
    found = _by_name(_found(tmp_path))
    assert found["really_png.jpg"].modality == IMAGE
    assert found["really_png.wav"].modality == IMAGE


def test_media_extension_with_other_content_is_skipped_with_reason(tmp_path: Path):
    (tmp_path / "speech.wav").write_text("this is not audio at all\n")
    (tmp_path / "photo.png").write_bytes(
        np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes()
    )
    (tmp_path / "doc.jpg").write_bytes(b"%PDF-1.7\n...")
    found = _by_name(_found(tmp_path))
    assert found["speech.wav"] == Skipped(
        tmp_path / "speech.wav", "content is text, not audio (extension .wav)"
    )
    assert found["photo.png"].reason == "content is unrecognised binary data, not image (extension .png)"
    assert found["doc.jpg"].reason == "content is a PDF document, not image (extension .jpg)"


def test_zero_byte_media_files_are_skipped(tmp_path: Path):
    for name in ("empty.png", "empty.wav", "empty.txt"):
        (tmp_path / name).touch()
    found = _found(tmp_path)
    assert [(f.path.name, f.reason) for f in found] == [
        ("empty.png", "empty file (0 bytes)"),
        ("empty.txt", "empty file (0 bytes)"),
        ("empty.wav", "empty file (0 bytes)"),
    ]


def test_text_with_nul_bytes_is_binary_but_utf16_with_bom_is_text(tmp_path: Path):
    (tmp_path / "binary.txt").write_bytes(b"abc\x00\x01\x02def")
    (tmp_path / "utf16.txt").write_bytes("héllo wörld".encode("utf-16"))
    found = _by_name(_found(tmp_path))
    assert found["binary.txt"].reason == "binary content, not text"
    assert found["utf16.txt"].modality == TEXT


def test_unicode_spaces_and_newlines_in_names(tmp_path: Path):
    names = ["café 日本 photo.png", "  two  spaces .wav", "line\nbreak.txt", "ü/ñested dïr/x.md"]
    save_image(tmp_path / names[0], noise_image((4, 4)))
    write_wav(tmp_path / names[1], tone(300, 0.1, 8000), 8000)
    (tmp_path / names[2]).write_text("new\nline", encoding="utf-8")
    (tmp_path / "ü" / "ñested dïr").mkdir(parents=True)
    (tmp_path / names[3]).write_text("deep", encoding="utf-8")
    found = _found(tmp_path)
    assert all(isinstance(f, MediaFile) for f in found)
    assert sorted(f.path.relative_to(tmp_path).as_posix() for f in found) == sorted(names)
    assert all(f.path.exists() for f in found)


def test_symlink_loop_is_reported_once_and_walk_finishes(tmp_path: Path):
    root = tmp_path / "root"
    save_image(root / "a" / "pic.png", noise_image((4, 4)))
    os.symlink(root, root / "a" / "back_to_root")
    os.symlink("self_loop.png", root / "self_loop.png")  # a link to itself (ELOOP)
    found = _found(root)
    images = [f for f in found if isinstance(f, MediaFile)]
    assert [f.path for f in images] == [root / "a" / "pic.png"]
    skipped = {f.path.name: f.reason for f in found if isinstance(f, Skipped)}
    assert skipped == {"back_to_root": "symlink loop", "self_loop.png": "symlink loop"}


def test_symlinks_to_files_and_dirs_are_followed_without_resolving(tmp_path: Path):
    target = save_image(tmp_path / "store" / "real.png", noise_image((4, 4)))
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(target, root / "linked.png")
    os.symlink(tmp_path / "store", root / "linked_dir")
    found = _found(root)
    assert [f.path for f in found] == [root / "linked.png", root / "linked_dir" / "real.png"]
    assert all(f.modality == IMAGE for f in found)


def test_same_directory_reached_twice_is_walked_once(tmp_path: Path):
    save_image(tmp_path / "real" / "x.png", noise_image((4, 4)))
    os.symlink(tmp_path / "real", tmp_path / "zz_alias")
    found = _found(tmp_path)
    assert [f.path for f in found if isinstance(f, MediaFile)] == [tmp_path / "real" / "x.png"]
    [dup] = [f for f in found if isinstance(f, Skipped)]
    assert dup.path == tmp_path / "zz_alias" and "already walked" in dup.reason


def test_broken_symlink_is_skipped(tmp_path: Path):
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    [skipped] = _found(tmp_path)
    assert skipped.path == tmp_path / "dangling.png"
    assert skipped.reason.startswith("broken symlink")


def test_unreadable_file_and_directory_via_monkeypatch(tmp_path: Path, monkeypatch):
    locked = save_image(tmp_path / "locked.png", noise_image((4, 4)))
    fine = save_image(tmp_path / "fine.png", noise_image((4, 4)))
    save_image(tmp_path / "secret" / "inside.png", noise_image((4, 4)))
    save_image(tmp_path / "zz" / "after.png", noise_image((4, 4)))
    deny_open(monkeypatch, locked)
    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.abspath(path) == str(tmp_path / "secret"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = _by_name(_found(tmp_path))
    assert found["locked.png"] == Skipped(locked, "permission denied")
    assert found["secret"] == Skipped(tmp_path / "secret", "permission denied")
    assert isinstance(found["fine.png"], MediaFile) and found["fine.png"].path == fine
    assert isinstance(found["after.png"], MediaFile)  # the walk went on after the unreadable dir


def _permissions_enforced(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        probe.read_bytes()
        return False  # root (or CAP_DAC_OVERRIDE) reads files whatever their mode
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
        probe.unlink()


def test_unreadable_file_and_directory_via_chmod(tmp_path: Path):
    if not _permissions_enforced(tmp_path):
        pytest.skip("this user reads files whatever their mode (root); covered by the monkeypatch test")
    locked = save_image(tmp_path / "locked.png", noise_image((4, 4)))
    secret = tmp_path / "secret"
    save_image(secret / "inside.png", noise_image((4, 4)))
    locked.chmod(0)
    secret.chmod(0)
    try:
        found = _by_name(_found(tmp_path))
    finally:
        locked.chmod(0o644)
        secret.chmod(0o755)
    assert found["locked.png"].reason == "permission denied"
    assert found["secret"].reason == "permission denied"


def test_fifo_with_media_extension_is_not_opened(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe.wav")  # opening it would block forever
    [skipped] = _found(tmp_path)
    assert skipped.reason == "not a regular file"


# --- content sniffing on real files of every supported format ---


def _write_image(path: Path, fmt: str) -> None:
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path, format=fmt, **kwargs)


def _write_audio(path: Path, fmt: str, subtype: str) -> None:
    sf.write(path, tone(440, 0.3, 16000), 16000, format=fmt, subtype=subtype)


@pytest.mark.parametrize(
    "ext, writer",
    [
        (".png", lambda p: _write_image(p, "PNG")),
        (".jpg", lambda p: _write_image(p, "JPEG")),
        (".gif", lambda p: _write_image(p, "GIF")),
        (".webp", lambda p: _write_image(p, "WEBP")),
        (".bmp", lambda p: _write_image(p, "BMP")),
        (".tif", lambda p: _write_image(p, "TIFF")),
        (".wav", lambda p: _write_audio(p, "WAV", "PCM_16")),
        (".flac", lambda p: _write_audio(p, "FLAC", "PCM_16")),
        (".ogg", lambda p: _write_audio(p, "OGG", "VORBIS")),
        (".mp3", lambda p: _write_audio(p, "MP3", "MPEG_LAYER_III")),
        (".aiff", lambda p: _write_audio(p, "AIFF", "PCM_16")),
    ],
)
def test_every_supported_format_is_sniffed(tmp_path: Path, ext, writer):
    path = tmp_path / f"sample{ext}"
    writer(path)
    expected = AUDIO if ext in {".wav", ".flac", ".ogg", ".mp3", ".aiff"} else IMAGE
    assert sniff_media(path.read_bytes()[:64]) == expected
    [found] = _found(tmp_path)
    assert isinstance(found, MediaFile) and found.modality == expected


def test_id3_tagged_mp3_and_text_lookalikes():
    assert sniff_media(b"ID3\x04\x00\x00\x00\x00\x00\x00") == AUDIO
    assert sniff_media(b"ID3 is a tag format") is None
    assert sniff_media(b"BM is not a bitmap here") is None
    assert sniff_media("hello".encode("utf-16")) is None  # FF FE BOM is not an MPEG frame
    assert sniff_media(b"RIFF\x00\x00\x00\x00AVI LIST") == "video"  # an AVI container is a video
