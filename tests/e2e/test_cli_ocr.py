"""`xsearch index --ocr` and searching by the words in pictures, from the CLI (rapidocr: the 'ocr' extra).

The two long ones are marked slow; tests/unit/test_ocr.py reads a picture in the default run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")

pytest.importorskip("rapidocr_onnxruntime", reason="the 'ocr' extra (rapidocr-onnxruntime) is not installed")
if not FONT.exists():
    pytest.skip("the Chinese font (Debian fonts-wqy-microhei) is not installed", allow_module_level=True)


def _picture(path: Path, words: str, seed: int) -> None:
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(60, 200, (200, 360, 3), dtype=np.uint8)).resize((360, 200))
    draw = ImageDraw.Draw(img)
    draw.rectangle((10, 60, 350, 120), fill="white")
    draw.text((18, 68), words, font=ImageFont.truetype(str(FONT), 36), fill="black")
    img.save(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ocr-photos")
    _picture(root / "receipt.png", "INVOICE 2031 PAID", 1)
    _picture(root / "other.png", "INVOICE 2032 DUE", 2)
    _picture(root / "sign.png", "春天的花园 门票", 3)
    return root


def _first(cli, col, *args) -> dict:
    r = cli("search", *args, "-c", col, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)["results"]["image"][0]


@pytest.mark.slow  # ~30 s on 2 busy cores: the builtin model and OCR of three pictures, several runs
def test_index_with_ocr_then_find_pictures_by_their_words(cli, photos, tmp_path):
    col = tmp_path / "col"
    r = cli("index", photos, "-c", col, "--model", "builtin", "--ocr", "--workers", "1")
    assert r.code == 0, r.err
    assert "lines of words:" in r.out and " ocr" in r.out
    top = _first(cli, col, "invoice 2031")
    assert top["path"].endswith("receipt.png")
    assert top["words"][0]["text"].replace(" ", "").upper() == "INVOICE2031PAID"
    assert len(top["words"][0]["box"]) == 4 and 0.5 < top["words"][0]["confidence"] <= 1
    assert _first(cli, col, "2032 due")["path"].endswith("other.png")
    assert _first(cli, col, "门票", "--mode", "keyword")["path"].endswith("sign.png")
    info = json.loads(cli("info", "-c", col, "--json").out)["collection"]
    assert info["words"]["ocr"]["files"] == 3 and info["words"]["ocr"]["lines"] >= 3
    assert info["text_tracks"] == ["ocr"]

    again = cli("index", photos, "-c", col, "--json")  # remembered, nothing to read again
    assert again.code == 0 and json.loads(again.out)["unchanged"] == 3
    off = cli("index", photos, "-c", col, "--no-ocr", "--json")
    assert off.code == 0
    info = json.loads(cli("info", "-c", col, "--json").out)["collection"]
    assert "ocr" not in info["words"] and info["text_tracks"] == []
    r = cli("search", "invoice 2031", "-c", col, "--mode", "keyword", "--json")
    assert json.loads(r.out)["results"]["image"] == []


@pytest.mark.slow
def test_turning_ocr_on_later_reads_the_pictures_already_indexed(cli, photos, tmp_path):
    col = tmp_path / "col"
    assert cli("index", photos, "-c", col, "--model", "builtin", "--workers", "0").code == 0
    r = cli("index", photos, "-c", col, "--ocr", "--workers", "0", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["updated"] == 3 and report["lines_added"]["ocr"] >= 3


@pytest.mark.slow  # ~30 s: the builtin model and OCR of three pictures into milvus-lite
def test_index_into_milvus_lite_with_ocr_then_find_pictures_by_their_words(cli, photos, tmp_path):
    pytest.importorskip("milvus_lite")
    col = f"milvus-lite:{tmp_path / 'm.db'}"
    r = cli("index", photos, "-c", col, "--model", "builtin", "--ocr", "--workers", "1")
    assert r.code == 0, r.err
    assert "lines of words:" in r.out and " ocr" in r.out
    top = _first(cli, col, "invoice 2031")  # hybrid, the default
    assert top["path"].endswith("receipt.png") and len(top["words"][0]["box"]) == 4
    assert _first(cli, col, "2032 due", "--mode", "keyword")["path"].endswith("other.png")
    assert _first(cli, col, "门票", "--mode", "keyword")["path"].endswith("sign.png")
    info = json.loads(cli("info", "-c", col, "--json").out)["collection"]
    assert info["words"]["ocr"]["files"] == 3 and info["text_tracks"] == ["ocr"]
    again = cli("index", photos, "-c", col, "--json")  # remembered, nothing to read again
    assert again.code == 0 and json.loads(again.out)["unchanged"] == 3


@pytest.mark.slow  # ~9 s: indexes three pictures (the error paths alone: tests/contract/test_keyword_contract.py)
def test_ocr_on_a_store_without_keyword_search_is_one_clear_line(cli, photos, tmp_path, monkeypatch):
    """A Milvus without full-text search (a server before 2.5; here milvus-lite made to look like one): --ocr and
    --mode keyword are one line and exit 2, a text search (hybrid by default) is its vectors."""
    pytest.importorskip("milvus_lite")
    from xsearch.index.milvus import features

    older = features.Features("v2.4.9", True, True, features.LITE_INDEX_TYPES, full_text=False)
    monkeypatch.setattr(features, "_lite_features", lambda: older)
    col = f"milvus-lite:{tmp_path / 'm.db'}"
    r = cli("index", photos, "-c", col, "--model", "builtin", "--ocr")
    assert r.code == 2 and "Traceback" not in r.err
    assert "needs Milvus 2.5 or later" in r.err and "v2.4.9" in r.err and len(r.err.strip().splitlines()) <= 2
    assert cli("index", photos, "-c", col, "--model", "builtin", "--workers", "0").code == 0
    for mode in ([], ["--mode", "hybrid"]):
        r = cli("search", "invoice 2031", "-c", col, "--json", *mode)
        assert r.code == 0 and len(json.loads(r.out)["results"]["image"]) == 3, r.err
    r = cli("search", "invoice 2031", "-c", col, "--mode", "keyword")
    assert r.code == 2 and "needs Milvus 2.5 or later" in r.err and len(r.err.strip().splitlines()) <= 2
