"""The Encoder protocol's one entry point, ``embed(modality, batch, space)``, on every backend; the encoder cache."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.helpers.encoders import TINY_CLAP_SAMPLE_RATE, tiny_clap_dir, tiny_openclip_checkpoint
from xsearch.core.errors import ModelError, UsageError
from xsearch.encoders import registry
from xsearch.encoders.base import ModalityDispatch


def _batches():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (24 + 5 * i, 40, 3), dtype=np.uint8)) for i in range(3)]
    waves = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in (800, TINY_CLAP_SAMPLE_RATE, 5000)]
    texts = ["a dog barking", "rain on a tin roof", "church bells"]
    return {"image": images, "audio": waves, "text": texts}


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    from xsearch.encoders.clap import ClapEncoder
    from xsearch.encoders.openclip import OpenClipEncoder

    root = tmp_path_factory.mktemp("protocol")
    arch, ckpt = tiny_openclip_checkpoint(root)
    return {
        "builtin": registry.load_encoder("builtin", device="cpu"),
        "openclip": OpenClipEncoder(arch, str(ckpt), device="cpu"),
        "clap": ClapEncoder(str(tiny_clap_dir(root)), device="cpu"),
    }


@pytest.mark.parametrize("name", ["builtin", "openclip", "clap"])
def test_embed_is_the_per_modality_method(encoders, name):
    enc = encoders[name]
    assert isinstance(enc, ModalityDispatch)
    batches = _batches()
    for modality in enc.modalities:
        via_embed = enc.embed(modality, batches[modality])
        direct = enc.embedders()[modality](batches[modality])
        assert via_embed.shape == (3, enc.spaces[enc.index_space(modality)]) and via_embed.dtype == np.float32
        np.testing.assert_array_equal(via_embed, direct)
        np.testing.assert_allclose(np.linalg.norm(via_embed, axis=1), 1.0, atol=1e-5)
        assert enc.embed(modality, []).shape == (0, via_embed.shape[1])


@pytest.mark.parametrize("name, missing", [("openclip", "audio"), ("clap", "image"), ("builtin", "smell")])
def test_an_unsupported_modality_is_a_coded_usage_error(encoders, name, missing):
    enc = encoders[name]
    with pytest.raises(UsageError) as info:
        enc.embed(missing, _batches().get(missing, ["x"]))
    assert info.value.code == "model.modality_unsupported"
    assert info.value.params["modality"] == missing and "\n" not in str(info.value)
    with pytest.raises(UsageError) as info:
        enc.index_space(missing)
    assert info.value.code == "model.modality_unsupported"


def test_a_bridged_pair_dispatches_into_the_asked_space(encoders, tmp_path, monkeypatch):
    from xsearch.encoders.bridge import CLAP_SPACE, CLIP_SPACE, BridgedEncoder

    monkeypatch.setenv("XSEARCH_HOME", str(tmp_path / "home"))
    pair = BridgedEncoder(encoders["openclip"], encoders["clap"], ["a dog", "rain", "bells"], cache_dir=tmp_path)
    batches = _batches()
    for modality in ("image", "audio", "text"):
        for space in (None, CLIP_SPACE, CLAP_SPACE):
            np.testing.assert_array_equal(pair.embed(modality, batches[modality], space=space),
                                          pair.embedders()[modality](batches[modality], space=space))
    with pytest.raises(UsageError) as info:
        pair.embed("smell", ["x"])
    assert info.value.code == "model.modality_unsupported"


def test_a_new_modality_is_one_table_entry():
    class Toy(ModalityDispatch):
        EMBEDDERS = {**ModalityDispatch.EMBEDDERS, "toy": "_embed_toy"}
        spec, modalities = "toy-model", ("text", "toy")

        def _embed_text(self, texts, space=None):
            return np.ones((len(texts), 2), np.float32)

        def _embed_toy(self, items, space=None):
            return np.full((len(items), 2), float(space == "s"), np.float32)

    assert Toy().embed("toy", [1, 2], space="s").tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert Toy().embed("text", ["a"]).shape == (1, 2)
    with pytest.raises(UsageError):
        Toy().embed("image", [])


def test_the_cache_builds_a_spec_once_under_concurrent_callers(monkeypatch):
    builds: list[str] = []
    counter = threading.Lock()

    def slow_build(parsed, device):
        with counter:
            builds.append(parsed.text)
        time.sleep(0.2)  # long enough for every thread to arrive while the first one builds
        return object()

    monkeypatch.setattr(registry, "_build", slow_build)
    registry.clear_cache()
    try:
        results: list[object] = []
        start = threading.Barrier(4)

        def worker():
            start.wait()
            results.append(registry.load_encoder("builtin:/some/checkpoint", device="cpu"))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert builds == ["builtin:/some/checkpoint"]
        assert len(results) == 4 and all(r is results[0] for r in results)
        assert registry.load_encoder("builtin:/some/checkpoint", device="cpu") is results[0]
    finally:
        registry.clear_cache()


def test_resolve_spec_resolves_auto_in_one_place(monkeypatch):
    from xsearch.encoders import auto

    assert registry.resolve_spec(" builtin ") == ("builtin", "")
    monkeypatch.setattr(auto, "resolve_auto", lambda: ("builtin", "builtin: offline."))
    assert registry.resolve_spec("auto") == ("builtin", "model: builtin (builtin: offline.)")
    assert registry.load_encoder("auto", device="cpu") is registry.load_encoder("builtin", device="cpu")
    with pytest.raises(ModelError) as info:
        registry.resolve_spec("resnet:50")
    assert info.value.code == "model.bad_spec" and "xsearch models" not in str(info.value)


def test_registry_reexports_the_spec_names():
    from xsearch.encoders import specs
    from xsearch.encoders.registry import DEFAULT_CLAP, DEFAULT_OPENCLIP, DEFAULT_PAIR, list_models, parse_spec

    assert DEFAULT_PAIR == f"{DEFAULT_OPENCLIP}+{DEFAULT_CLAP}" and parse_spec is specs.parse_spec
    assert any(row["spec"] == "builtin" for row in list_models())
