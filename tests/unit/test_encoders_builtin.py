"""The builtin encoder: shapes, unit vectors, batch invariance, determinism, awkward inputs, early shrinking."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xsearch.core.errors import ModelError
from xsearch.encoders.registry import load_encoder


@pytest.fixture(scope="module")
def enc():
    return load_encoder("builtin")


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (48 + 7 * i, 80, 3), dtype=np.uint8)) for i in range(n)]


def test_shapes_normalisation_and_identity(enc):
    assert enc.modalities == ("image", "audio", "text") and enc.spaces == {"shared": 256}
    assert enc.model_id.startswith("builtin@") and enc.model_id.endswith(":256")
    waves = [np.sin(np.arange(n) / 9).astype(np.float32) * 0.2 for n in (100, 16000, 32000, 50000)]
    for out, n in ((enc.embed("image", _images(3)), 3), (enc.embed("audio", waves), 4),
                   (enc.embed("text", ["a", "b c"]), 2)):
        assert out.shape == (n, 256) and out.dtype == np.float32
        assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert enc.embed("text", []).shape == (0, 256)


def test_batch_size_invariance_and_determinism(enc):
    images = _images(5)
    full = enc.embed("image", images)
    old = enc.batch_size
    enc.batch_size = 2
    try:
        assert np.allclose(enc.embed("image", images), full, atol=1e-5)
    finally:
        enc.batch_size = old
    assert np.array_equal(enc.embed("image", images), full)
    assert np.allclose(enc.embed("image", images[2:3])[0], full[2], atol=1e-5)


def test_awkward_inputs(enc):
    with pytest.raises(ModelError, match="zero size"):
        enc.embed("image", [Image.new("RGB", (0, 5))])
    empty = enc.embed("text", [""])  # start/end tokens only; the engine refuses empty *queries* before this
    assert np.isfinite(empty).all()
    long_text = " ".join(["red circle"] * 200)
    assert np.allclose(enc.embed("text", [long_text]), enc.embed("text", [" ".join(["red circle"] * 40)]), atol=1e-5)
    short = enc.embed("audio", [np.zeros(10, np.float32)])  # shorter than one frame: zero-padded
    assert np.isfinite(short).all()
    with pytest.raises(ModelError, match="has one embedding space"):
        enc.embed("text", ["x"], space="clap")


def test_shrinking_in_the_decoder_changes_nothing(enc, tmp_path):
    from xsearch.engine.embed import decode_options
    from xsearch.media import decode, discover

    path = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 500, 3), dtype=np.uint8)).save(path)
    opts = decode_options(enc)
    assert opts.image_short_side == 64
    seg = decode(next(iter(discover(path))), opts)[0]
    assert seg.data.size == (106, 64) and (seg.info["width"], seg.info["height"]) == (500, 300)
    direct = enc.embed("image", [Image.open(path).convert("RGB")])
    assert np.array_equal(enc.embed("image", [seg.data]), direct)


def test_unknown_or_missing_specs():
    with pytest.raises(ModelError, match="unknown model spec"):
        load_encoder("resnet:50")
    with pytest.raises(ModelError, match="no builtin checkpoint"):
        load_encoder("builtin:/nonexistent/dir")
