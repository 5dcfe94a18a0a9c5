"""The page shows the words a picture was found by: marked, with their boxes over the thumbnail (docs/ocr.md).

The OCR lines are written into the collection directly (what `index --ocr` stores: text, box, confidence), so this
tests the page, not the OCR model (tests/e2e/test_cli_ocr.py does that)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.servers import xsearch_serve

CHROMIUM = os.environ.get("XSEARCH_CHROMIUM", "/usr/bin/chromium")


def _missing() -> str:
    try:
        import fastapi  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return f"browser test skipped: {e.name} is not installed"
    return "" if os.access(CHROMIUM, os.X_OK) else f"browser test skipped: no {CHROMIUM}"


pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or "-")

BOX = [[40.0, 30.0], [260.0, 30.0], [260.0, 70.0], [40.0, 70.0]]


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    import numpy as np
    from PIL import Image

    from xsearch.engine import Engine
    from xsearch.index import open_writer

    root = tmp_path_factory.mktemp("pictures")
    for i, name in enumerate(["receipt.png", "beach.png", "tree.png"]):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (200, 320, 3), dtype=np.uint8)).save(root / name)
    col = tmp_path_factory.mktemp("col") / "c"
    Engine(col, model="builtin").index_folder(root, workers=0)
    with open_writer(str(col)) as w:
        receipt = w.file(str(root / "receipt.png"))
        w.replace_text(receipt.id, [{"track": "ocr", "text": "INVOICE2031PAID", "box": BOX, "confidence": 0.97}],
                       ["ocr"])
    return col


@pytest.fixture(scope="module")
def server(collection, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with xsearch_serve(["-c", collection], home) as url:
        yield url


@pytest.mark.slow  # a serve process, the builtin model and Chromium: ~20 s idle, minutes on busy cores
def test_a_picture_found_by_its_words_shows_them_and_their_box(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, base_url=server)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/?q=invoice+2031&to=image")
        page.wait_for_selector(".card.image .words mark")
        first = page.locator(".card.image").first
        assert first.locator(".name").text_content().strip().startswith("receipt")
        assert first.locator(".words mark").text_content() == "INVOICE2031PAID"
        polygon = first.locator(".thumb svg.word-boxes polygon")
        assert polygon.count() == 1
        assert polygon.get_attribute("points") == "40,30 260,30 260,70 40,70"
        assert first.locator(".thumb svg.word-boxes").get_attribute("viewBox") == "0 0 320 200"
        others = page.locator(".card.image").nth(1)
        assert others.locator(".words").count() == 0  # no words matched: nothing added
        page.screenshot(path=tmp_path / "words.png")
        browser.close()
        assert not errors, errors
