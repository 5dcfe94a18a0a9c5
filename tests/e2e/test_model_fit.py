"""The builtin model is honest about what it knows: real photos get a warning in index, search and info; the
generated world gets none (xsearch.engine.fit)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_subprocess
from xsearch.engine import fit


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real photographs: scikit-learn's two sample photos and matplotlib's portrait of Grace Hopper."""
    from matplotlib import cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = tmp_path_factory.mktemp("photos")
    for name, pixels in zip(("china.jpg", "flower.jpg"), load_sample_images().images):
        Image.fromarray(pixels).save(out / name)
    Image.open(cbook.get_sample_data("grace_hopper.jpg")).save(out / "grace_hopper.jpg")
    return out


def test_photos_get_the_warning_in_index_search_and_info(cli, photos, tmp_path):
    col = tmp_path / "col"
    r = cli("index", photos, "-c", col, "--model", "builtin", "--workers", "0")
    assert r.code == 0, r.err
    assert "only knows the generated world" in r.err and "3 of 3 files" in r.err
    assert f"--model {fit.REAL_MODEL}" in r.err and "--ocr" in r.err
    assert json.loads((col / fit.FIT_FILE).read_text())["world"] is False  # kept for search / info / the page

    r = cli("search", "a flower", "-c", col)
    assert r.code == 0 and "warning: The builtin model only knows the generated world" in r.err
    r = cli("search", "a flower", "-c", col, "--json")
    assert json.loads(r.out)["model_fit"]["world"] is False
    r = cli("info", "-c", col)
    assert "warning: The builtin model only knows" in r.out
    assert json.loads(cli("info", "-c", col, "--json").out)["collection"]["model_fit"]["world"] is False


def test_the_world_gets_no_warning(cli, indexed):
    r = cli("search", "a red circle", "-c", indexed)
    assert r.code == 0 and "warning" not in r.err
    got = json.loads(cli("info", "-c", indexed, "--json").out)["collection"]["model_fit"]
    assert got["world"] is True and got["message"] == "" and got["checked"] > 0


def test_world_pictures_copied_out_of_their_world_are_still_recognised(world, photos, tmp_path):
    copies = tmp_path / "copies"
    copies.mkdir()
    for p in sorted((world / "image").glob("*.png"))[:12]:
        shutil.copy(p, copies / p.name)  # no world.json above them now: told by their pixels
    files = [(str(p), "image") for p in sorted(copies.iterdir())]
    assert fit.verdict("builtin", files)["world"] is True
    mixed = files[:4] + [(str(p), "image") for p in sorted(photos.iterdir())]
    got = fit.verdict("builtin", mixed)
    assert got["world"] is False and got["world_like"] == 4 and got["checked"] == 7


def test_only_the_shipped_builtin_model_is_judged(photos):
    files = [(str(p), "image") for p in photos.iterdir()]
    assert fit.verdict(fit.REAL_MODEL, files) is None
    assert fit.verdict("builtin:/my/own/checkpoint", files) is None
    sounds = [(str(photos / "gone.wav"), "audio")]  # a file gone since indexing tells nothing
    assert fit.verdict("builtin", sounds)["checked"] == 0


@pytest.mark.slow
def test_index_warns_in_a_real_process(photos, tmp_path):
    r = run_subprocess("index", photos, "-c", tmp_path / "col", "--model", "builtin", "--workers", "0")
    assert r.code == 0 and "only knows the generated world" in r.err
