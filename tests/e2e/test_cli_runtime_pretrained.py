"""`xsearch index / search / info` with a CLAP model on ONNX Runtime (a tiny random-weight CLAP, offline): the
same hits as torch, `info --model` says what each tower runs on, and a failed export falls back with one line."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from tests.helpers.encoders import TINY_CLAP_SAMPLE_RATE, tiny_clap_dir  # noqa: E402


@pytest.fixture(scope="module")
def clap_spec(tmp_path_factory):
    return f"clap:{tiny_clap_dir(tmp_path_factory.mktemp('cli-clap'))}"


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sounds")
    rng = np.random.default_rng(3)
    for i in range(4):
        t = np.arange(int(TINY_CLAP_SAMPLE_RATE * 0.8)) / TINY_CLAP_SAMPLE_RATE
        x = 0.4 * np.sin(2 * np.pi * (220 * (i + 1)) * t) + 0.05 * rng.standard_normal(len(t))
        with wave.open(str(folder / f"tone{i}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(TINY_CLAP_SAMPLE_RATE)
            w.writeframes((x * 32767).astype("<i2").tobytes())
    return folder


@pytest.fixture(autouse=True)
def _fresh_encoders():
    from xsearch.encoders.registry import clear_cache

    clear_cache()  # in-process commands would otherwise share the encoder built for another cache
    yield
    clear_cache()


def _hits(cli, collection, runtime):
    r = cli("search", "a dog barking", "-c", collection, "--to", "audio", "-k", "4", "--json", "--runtime", runtime)
    assert r.code == 0, r.err
    return json.loads(r.out)["results"]["audio"], r.err


def test_index_and_search_on_onnx_give_torch_hits(cli, clap_spec, sounds, tmp_path):
    collection = tmp_path / "c"
    r = cli("index", sounds, "-c", collection, "--model", clap_spec, "--runtime", "onnx")
    assert r.code == 0, r.err
    assert "exporting the audio tower of " + clap_spec in r.err
    onnx_hits, err = _hits(cli, collection, "onnx")
    assert "exporting the text tower" in err
    torch_hits, _ = _hits(cli, collection, "torch")
    assert [h["path"] for h in onnx_hits] == [h["path"] for h in torch_hits] and len(onnx_hits) == 4
    for a, b in zip(onnx_hits, torch_hits):
        assert abs(a["score"] - b["score"]) <= 1e-4
    r = cli("info", "--model", clap_spec, "--runtime", "onnx")
    assert r.code == 0 and f"towers of {clap_spec}: audio on onnx, text on onnx" in r.out
    r = cli("info", "--model", clap_spec, "--runtime", "torch")
    assert r.code == 0 and f"towers of {clap_spec}: audio on torch, text on torch" in r.out


def test_a_failed_export_is_one_line_then_torch(cli, clap_spec, sounds, tmp_path, monkeypatch):
    from xsearch.encoders import onnx_export

    collection = tmp_path / "c"
    assert cli("index", sounds, "-c", collection, "--model", clap_spec, "--runtime", "torch").code == 0
    torch_hits, _ = _hits(cli, collection, "torch")

    def refuse(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::stft' is not supported\n(long exporter text)")

    monkeypatch.setenv("XSEARCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(onnx_export, "export_module", refuse)
    hits, err = _hits(cli, collection, "onnx")
    assert [h["path"] for h in hits] == [h["path"] for h in torch_hits]
    said = [line for line in err.splitlines() if "runs on torch" in line]
    assert said == [f"runtime: the text tower of {clap_spec} runs on torch (onnx export failed: Exporting the "
                    "operator 'aten::stft' is not supported)"]
    assert "Traceback" not in err and "long exporter text" not in err
    r = cli("info", "--model", clap_spec, "--runtime", "onnx")
    assert r.code == 0 and "text on torch (onnx export failed" in r.out
    assert "audio on torch (onnx export failed" in r.out
