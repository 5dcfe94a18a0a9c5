"""ONNX Runtime towers of the builtin model: same vectors as torch, the same model id, a said fallback to torch,
the runtime setting, and an int8 variant that keeps retrieval quality."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from xsearch.core.errors import UsageError  # noqa: E402
from xsearch.encoders import runtimes  # noqa: E402


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture
def encoders(onnx_cache, monkeypatch):
    """(torch encoder, ONNX Runtime encoder) of the shipped builtin model, exports in a module-wide cache."""
    from xsearch.encoders.builtin import load_builtin
    from xsearch.encoders.onnx_builtin import load_onnx_builtin

    monkeypatch.setenv("XSEARCH_CACHE", str(onnx_cache))
    return load_builtin(), load_onnx_builtin(None, "onnx")


def _images():
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = [(64, 64), (100, 37), (37, 100), (480, 640), (65, 64), (1, 300)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


TEXTS = ["a red circle", "two small blue squares on the left", "日本語 and emoji 🐶", "", "x" * 500]


def test_onnx_vectors_match_torch(encoders):
    torch_enc, onnx_enc = encoders
    assert type(onnx_enc).__name__ == "OnnxBuiltinEncoder"
    assert onnx_enc.model_id == torch_enc.model_id  # collections indexed by one are searched by the other
    for modality, batch in (("text", TEXTS), ("image", _images())):
        a, b = onnx_enc.embed(modality, batch), torch_enc.embed(modality, batch)
        assert a.shape == b.shape == (len(batch), 256)
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert onnx_enc.session("text") is not None and onnx_enc.session("image") is not None


def test_audio_tower_on_onnx_with_a_numpy_log_mel(encoders, capsys):
    torch_enc, onnx_enc = encoders
    waves = [np.random.default_rng(1).standard_normal(n).astype(np.float32) * 0.1 for n in (100, 32000, 50000)]
    waves.append(np.sin(np.linspace(0, 2000, 32000)).astype(np.float32))  # a tone: energy in few mel bands
    np.testing.assert_allclose(onnx_enc.embed("audio", waves), torch_enc.embed("audio", waves), atol=1e-5)
    assert onnx_enc.session("audio") is not None and "runs on torch" not in capsys.readouterr().err


def test_failed_export_falls_back_to_torch_with_one_line(tmp_path, monkeypatch, capsys):
    from xsearch.encoders import onnx_export
    from xsearch.encoders.builtin import load_builtin
    from xsearch.encoders.onnx_builtin import load_onnx_builtin

    def refuse(*args, **kwargs):
        raise RuntimeError("exporter says no\nsecond line of noise")

    monkeypatch.setenv("XSEARCH_CACHE", str(tmp_path))
    monkeypatch.setattr(onnx_export, "export_module", refuse)
    enc = load_onnx_builtin(None, "onnx")
    np.testing.assert_allclose(enc.embed("text", TEXTS[:2]), load_builtin().embed("text", TEXTS[:2]), atol=1e-6)
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "text tower runs on torch" in line]
    assert len(said) == 1 and "exporter says no" in said[0] and "second line" not in err
    assert enc.session("text") is None  # remembered: no second export, no second line
    assert "runs on torch" not in capsys.readouterr().err


def test_runtime_setting(monkeypatch):
    monkeypatch.delenv("XSEARCH_RUNTIME", raising=False)
    try:
        assert runtimes.current_runtime() == runtimes.default_runtime()
        monkeypatch.setenv("XSEARCH_RUNTIME", "torch")
        assert runtimes.current_runtime() == "torch"
        runtimes.set_runtime("onnx-int8")
        assert runtimes.current_runtime() == "onnx-int8" and runtimes.describe()["chosen_by"] == "--runtime"
        with pytest.raises(UsageError, match="unknown runtime"):
            runtimes.set_runtime("tensorrt")
    finally:
        runtimes.set_runtime(None)


def test_registry_builds_per_runtime(onnx_cache, monkeypatch):
    from xsearch.encoders.registry import load_encoder

    monkeypatch.setenv("XSEARCH_CACHE", str(onnx_cache))
    monkeypatch.setenv("XSEARCH_RUNTIME", "torch")
    assert type(load_encoder("builtin")).__name__ == "BuiltinEncoder"
    monkeypatch.setenv("XSEARCH_RUNTIME", "onnx")
    assert type(load_encoder("builtin")).__name__ == "OnnxBuiltinEncoder"
    assert type(load_encoder("builtin", "cpu")).__name__ == "OnnxBuiltinEncoder"


@pytest.mark.slow
def test_int8_keeps_heldout_recall_within_001(tmp_path_factory, onnx_cache, monkeypatch):
    """The shipped model on a held-out world split: R@1 of every direction under onnx-int8 within 0.01 of torch."""
    from xsearch.encoders.builtin import load_builtin
    from xsearch.encoders.onnx_builtin import load_onnx_builtin
    from xsearch.evaluation.runner import evaluate
    from xsearch.world import make_world

    monkeypatch.setenv("XSEARCH_CACHE", str(onnx_cache))
    # every group of the test split uses (colour, shape) pairs the shipped model never saw in training
    manifest = str(make_world(tmp_path_factory.mktemp("int8") / "w", 400, seed=23, test_fraction=1.0,
                              val_fraction=0.0))
    ref = evaluate(load_builtin(), manifest, split="test")
    int8 = evaluate(load_onnx_builtin(None, "onnx-int8"), manifest, split="test")
    r1 = {(d.query, d.gallery): d.metrics["R@1"] for d in ref.results}
    got = {(d.query, d.gallery): d.metrics["R@1"] for d in int8.results}
    assert set(r1) == set(got) and len(r1) >= 6
    worst = max(abs(r1[k] - got[k]) for k in r1)
    assert worst <= 0.01, {k: (r1[k], got[k]) for k in r1}
