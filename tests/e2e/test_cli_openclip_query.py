"""A text query on an open_clip collection under ONNX Runtime, once the model's text tower was exported, runs
without importing torch or open_clip (xsearch/encoders/openclip_query.py): the same hits and scores as torch; an
image, or a checkpoint changed since, loads the full encoder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow  # ~30 s: indexing, exporting and a torch search of a tiny open_clip, then a process

from tests.e2e.test_cli_runtime import QUERY_AND_REPORT  # noqa: E402
from tests.helpers.encoders import tiny_openclip_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """A tiny random-weight open_clip collection indexed on onnx, one text query run (the text tower exported)."""
    from PIL import Image

    from xsearch.core.types import Query
    from xsearch.encoders import registry, runtimes
    from xsearch.engine import Engine

    root = tmp_path_factory.mktemp("openclip-query")
    arch, ckpt = tiny_openclip_checkpoint(root)
    images = root / "images"
    images.mkdir()
    for i, colour in enumerate([(220, 30, 30), (30, 200, 40), (20, 40, 230), (240, 240, 20), (10, 10, 10)]):
        Image.new("RGB", (48, 40), colour).save(images / f"im{i}.png")
    mp = pytest.MonkeyPatch()
    mp.setenv("XSEARCH_CACHE", str(root / "cache"))
    mp.delenv("XSEARCH_RUNTIME", raising=False)
    try:
        runtimes.set_runtime("onnx")
        registry.clear_cache()
        spec = f"openclip:{arch}:{ckpt}"
        with Engine(root / "c", model=spec) as eng:
            eng.index_folder(images, workers=0)
            eng.search([Query("text", "a red square")], to="image", k=1)
        runtimes.set_runtime("torch")
        registry.clear_cache()
        with Engine(root / "c") as eng:
            torch_hits = eng.search([Query("text", "a red square")], to="image", k=5)["image"]
    finally:
        runtimes.set_runtime(None)
        registry.clear_cache()
        mp.undo()
    return root, arch, ckpt, [(h.path, h.score) for h in torch_hits]


def test_a_text_query_runs_without_torch_and_gives_torch_hits(collection):
    root, _, _, torch_hits = collection
    env = {**os.environ, "XSEARCH_CACHE": str(root / "cache"), "COLUMNS": "200"}
    env.pop("XSEARCH_RUNTIME", None)
    proc = subprocess.run([sys.executable, "-c", QUERY_AND_REPORT, "search", "a red square", "-c", str(root / "c"),
                           "-k", "5", "--to", "image", "--json", "--runtime", "onnx"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "heavy modules: []" in proc.stderr  # (the tiny arch is registered only in this test process, too)
    hits = [(h["path"], h["score"]) for h in json.loads(proc.stdout)["results"]["image"]]
    assert [p for p, _ in hits] == [p for p, _ in torch_hits] and len(hits) == 5
    assert max(abs(a - b) for (_, a), (_, b) in zip(hits, torch_hits)) <= 1e-4


def test_images_and_a_changed_checkpoint_load_the_full_encoder(collection, monkeypatch):
    from PIL import Image

    from xsearch.encoders.openclip import OpenClipEncoder
    from xsearch.encoders.openclip_query import OpenClipTextQuery, load_openclip

    root, arch, ckpt, _ = collection
    monkeypatch.setenv("XSEARCH_CACHE", str(root / "cache"))
    light = load_openclip(arch, str(ckpt), "cpu")
    assert isinstance(light, OpenClipTextQuery)
    picture = Image.new("RGB", (40, 40), (200, 10, 10))
    full = OpenClipEncoder(arch, str(ckpt), "cpu")
    np.testing.assert_allclose(light.embed("image", [picture]), full.embed("image", [picture]), atol=1e-5)
    np.testing.assert_allclose(light.embed("text", ["a red square"]), full.embed("text", ["a red square"]),
                               atol=1e-5)
    st = os.stat(ckpt)
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # new weights may have been written there
    assert isinstance(load_openclip(arch, str(ckpt), "cpu"), OpenClipEncoder)
