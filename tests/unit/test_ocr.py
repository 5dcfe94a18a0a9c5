"""OCR as a text track of images (xsearch/media/ocr.py, media/words.py, the registry's TextTrack)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xsearch.media import modalities
from xsearch.media.types import DecodeOptions, MediaFile

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def test_registry_declares_the_text_tracks():
    assert modalities.text_tracks(opt_in=True) == ("ocr",)
    assert modalities.text_tracks(opt_in=False) == ("passage",)
    assert modalities.reading("ocr") == ("image", "video")
    assert "ocr" not in modalities.derived_tracks()  # words, not vectors: no vector index of their own


def test_passages_are_read_whole_and_ocr_only_when_asked(tmp_path):
    from xsearch.media import decode

    text = tmp_path / "a.txt"
    text.write_text("x" * 300 + " invoice")
    segs = decode(MediaFile(text, "text", text.stat().st_size, 0), DecodeOptions())
    assert segs[0].info["text_lines"] == [{"text": "x" * 300 + " invoice", "offset": 0.0, "track": "passage"}]
    from PIL import Image

    Image.new("RGB", (64, 48), "white").save(tmp_path / "a.png")
    png = tmp_path / "a.png"
    assert "text_lines" not in decode(MediaFile(png, "image", png.stat().st_size, 0), DecodeOptions())[0].info


def test_a_failing_reader_costs_its_words_not_the_file(tmp_path, monkeypatch):
    from PIL import Image

    from xsearch.media import decode, ocr

    def broken(image):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(ocr, "read_lines", broken)
    png = tmp_path / "a.png"
    Image.new("RGB", (64, 48), "white").save(png)
    segs = decode(MediaFile(png, "image", png.stat().st_size, 0), DecodeOptions(text_tracks=("ocr",)))
    assert len(segs) == 1 and "ocr could not read it" in segs[0].info["note"]
    assert "text_lines" not in segs[0].info


@pytest.mark.skipif(not FONT.exists(), reason="the Chinese font (Debian fonts-wqy-microhei) is not installed")
def test_ocr_reads_english_and_chinese_with_boxes(tmp_path):
    pytest.importorskip("rapidocr_onnxruntime", reason="the 'ocr' extra (rapidocr-onnxruntime) is not installed")
    from PIL import Image, ImageDraw, ImageFont

    from xsearch.media import decode

    img = Image.new("RGB", (420, 150), (40, 90, 60))
    draw = ImageDraw.Draw(img)
    draw.rectangle((10, 10, 410, 140), fill="white")
    font = ImageFont.truetype(str(FONT), 34)
    draw.text((20, 20), "INVOICE 2031 PAID", font=font, fill="black")
    draw.text((20, 80), "春天的花园", font=font, fill="black")
    png = tmp_path / "receipt.png"
    img.save(png)
    segs = decode(MediaFile(png, "image", png.stat().st_size, 0), DecodeOptions(text_tracks=("ocr",)))
    lines = segs[0].info["text_lines"]
    texts = [line["text"].replace(" ", "") for line in lines]
    assert texts == ["INVOICE2031PAID", "春天的花园"]
    assert all(line["track"] == "ocr" and line["confidence"] > 0.9 for line in lines)
    (x0, y0), _, (x2, y2), _ = lines[0]["box"]
    assert 10 <= x0 < 60 and 10 <= y0 < 40 and x2 > 250 and y2 < 80  # where it was drawn, in the file's pixels


@pytest.mark.slow  # three OCR reads
@pytest.mark.skipif(not FONT.exists(), reason="the Chinese font (Debian fonts-wqy-microhei) is not installed")
def test_video_frames_are_read_once_per_window_at_its_time(tmp_path):
    pytest.importorskip("rapidocr_onnxruntime", reason="the 'ocr' extra (rapidocr-onnxruntime) is not installed")
    from PIL import Image, ImageDraw, ImageFont

    from xsearch.media.ocr import read_video
    from xsearch.media.types import Segment

    def frame(words: str):
        img = Image.new("RGB", (320, 120), "white")
        ImageDraw.Draw(img).text((20, 35), words, font=ImageFont.truetype(str(FONT), 34), fill="black")
        return img

    f = MediaFile(tmp_path / "v.mp4", "video", 1, 0)
    segs = [Segment(f, [frame("EXIT 42")] * 3, 0.0, track="video"),
            Segment(f, [frame("EXIT 42")] * 3, 2.0, track="video"),
            Segment(f, None, 0.0, track="soundtrack"),
            Segment(f, [frame("GATE B12")] * 3, 4.0, track="video")]
    lines = read_video(f, segs, DecodeOptions(text_tracks=("ocr",)))
    assert [(line["text"].replace(" ", ""), line["offset"]) for line in lines] == [("EXIT42", 0.0), ("GATEB12", 4.0)]
