"""The modality registry: lookups, decode dispatch, and a new modality added with one register() call."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.helpers.media import noise_image, save_image, tone, write_wav
from xsearch.core.errors import MediaError, UsageError
from xsearch.media import DecodeOptions, MediaFile, Segment, Skipped, decode, discover, modalities
from xsearch.media.sniff import modality_for_extension, sniff_media


def _file(path: Path, modality: str) -> MediaFile:
    st = path.stat()
    return MediaFile(path, modality, st.st_size, st.st_mtime_ns)


def test_builtin_modalities_and_lookups():
    import xsearch.media
    from xsearch.media.types import MODALITIES

    assert modalities.names() == ("image", "audio", "text", "video") == MODALITIES == xsearch.media.MODALITIES
    image, audio, text, video = modalities.registered()
    assert (image.offset_unit, audio.offset_unit, text.offset_unit) == ("", "s", "passage")
    assert (image.where(0), audio.where(12.0), text.where(2)) == ("", "12.0s", "¶3")
    assert modalities.get("audio") is audio and audio.label == "audio"
    assert ".png" in image.extensions and ".flac" in audio.extensions and ".md" in text.extensions
    assert ".mp4" in video.extensions and video.offset_unit == "s"
    assert modalities.for_extension(".JPG") is image and modalities.for_extension(".exe") is None
    assert modality_for_extension(".Markdown") == "text"
    assert image.sniff is not None and text.sniff is None and text.check_content is not None
    assert modalities.labels() == "image, audio, text or video"
    with pytest.raises(UsageError) as info:
        modalities.get("smell")
    assert info.value.code == "usage.unknown_modality" and "image, audio, text" in str(info.value)


def test_registration_is_checked():
    with pytest.raises(ValueError, match="already registered"):
        modalities.register(modalities.Modality("text", extensions={".log"}, decoder=lambda f, o: []))
    with pytest.raises(ValueError, match="belong"):
        modalities.register(modalities.Modality("notes", extensions={".TXT"}, decoder=lambda f, o: []))
    with pytest.raises(ValueError):
        modalities.Modality("Bad Name", extensions={".x"}, decoder=lambda f, o: [])
    with pytest.raises(ValueError):
        modalities.Modality("x", extensions={".x"}, decoder="no_colon")
    assert modalities.names() == ("image", "audio", "text", "video")


def test_decode_dispatches_by_modality(tmp_path: Path):
    image = _file(save_image(tmp_path / "x.png", noise_image((30, 20))), "image")
    audio = _file(write_wav(tmp_path / "x.wav", tone(440, 3.0, 8000), 8000), "audio")
    text = tmp_path / "t.txt"
    text.write_text("one.\n\ntwo.\n")
    opts = DecodeOptions(sample_rate=8000, audio_window_s=1.0)
    assert [s.data.size for s in decode(image, opts)] == [(30, 20)]
    assert [s.offset for s in decode(audio, opts)] == [0.0, 1.0, 2.0]
    assert [s.data for s in decode(_file(text, "text"), opts)] == ["one.", "two."]

    calls = []
    original = modalities.get("text")
    modalities.register(dataclasses.replace(original, decoder=lambda f, o: calls.append(f) or [Segment(f, "stub")]),
                        replace=True)
    try:
        assert [s.data for s in decode(_file(text, "text"), opts)] == ["stub"] and len(calls) == 1
    finally:
        modalities.register(original, replace=True)
    assert modalities.registered()[2] is original

    with pytest.raises(MediaError, match="unsupported modality 'smell'") as info:
        decode(MediaFile(text, "smell", 1, 0))
    assert info.value.code == "media.unsupported_modality"


def test_sniffing_goes_through_the_registry():
    assert sniff_media(b"\x89PNG\r\n\x1a\n" + bytes(8)) == "image"
    assert sniff_media(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "audio"
    assert sniff_media(b"just some words") is None


def _decode_toy(file: MediaFile, opts: DecodeOptions) -> list[Segment]:
    return [Segment(file=file, data=file.path.read_text().strip().upper(), offset=0.0, info={"toy": True})]


@pytest.fixture
def toy():
    """A toy modality, registered for one test and removed afterwards."""
    before = modalities.names()
    mod = modalities.register(modalities.Modality("toy", extensions=(".toy",), decoder=_decode_toy, label="toy box"))
    try:
        yield mod
    finally:
        modalities.unregister("toy")
        assert modalities.names() == before


def test_a_registered_modality_is_discovered_and_decoded(tmp_path: Path, toy):
    from xsearch.media.types import MODALITIES

    (tmp_path / "a.toy").write_text("hello toy\n")
    (tmp_path / "b.txt").write_text("plain text\n")
    (tmp_path / "c.unknown").write_text("ignored\n")
    assert MODALITIES == ("image", "audio", "text", "video", "toy")
    found = {f.path.name: f for f in discover(tmp_path)}
    assert set(found) == {"a.toy", "b.txt"}
    assert found["a.toy"].modality == "toy" and found["b.txt"].modality == "text"
    [segment] = decode(found["a.toy"])
    assert segment.data == "HELLO TOY" and segment.modality == "toy" and segment.info == {"toy": True}
    assert [f.path.name for f in discover(tmp_path, modalities=["toy"])] == ["a.toy"]
    odd = discover(tmp_path / "c.unknown")
    [skipped] = list(odd)
    assert isinstance(skipped, Skipped) and "image, audio, text, video or toy box" in skipped.reason


def test_the_registry_is_restored_after_the_toy_test():
    assert modalities.names() == ("image", "audio", "text", "video")
    assert modalities.for_extension(".toy") is None


def test_tracks_are_registry_data():
    assert modalities.tracks_of("video") == ("video", "soundtrack") and modalities.tracks_of("image") == ("image",)
    assert modalities.tracks_of("soundtrack") == ("soundtrack",)  # a track, not a modality: its own one track
    assert modalities.multi_track("video") and not modalities.multi_track("audio")
    assert modalities.derived_tracks() == {"video": "image", "soundtrack": "audio"}
    assert modalities.owner("soundtrack").name == "video" and modalities.owner("nothing") is None
    picture, sound = modalities.track("video"), modalities.track("soundtrack")
    assert picture.pooled and picture.matched == "picture" and sound.embed_as == "audio" and not sound.pooled
    assert modalities.embed_as("text") == "text" and modalities.embed_as("nothing") == "nothing"
    assert [t for t in ("image", "audio", "text", "video", "soundtrack") if modalities.windowed(t)] == [
        "audio", "video", "soundtrack"]
    with pytest.raises(ValueError, match="soundtrack"):  # a track belongs to one modality
        modalities.register(modalities.Modality("clip", extensions=(".clip",), decoder=_decode_toy,
                                                tracks=(modalities.Track("soundtrack"),)))
    assert "clip" not in modalities.names()


def test_a_registered_track_reaches_encoders_and_search():
    from xsearch.core.types import Hit
    from xsearch.encoders.base import parent_modality, tracks
    from xsearch.engine.search import merge_tracks

    mod = modalities.register(modalities.Modality(
        "slides", extensions=(".slides",), decoder=_decode_toy, offset_unit="s",
        tracks=(modalities.Track("slides", embed_as="image", matched="picture"),
                modalities.Track("notes", embed_as="text", matched="words"))))
    try:
        enc = type("Enc", (), {"modalities": ("image", "text")})()
        assert tracks(enc) == ("image", "text", "video", "slides", "notes")
        assert parent_modality("notes") == "text" and modalities.windowed("notes")
        hit = Hit(rank=1, score=0.5, path="/a.slides", modality="notes", item_id=1, offset=2.0)
        [merged] = merge_tracks("slides", [("notes", [hit])], 10)
        assert merged.modality == "slides" and merged.matched == "words"
    finally:
        modalities.unregister(mod.name)
