"""`xsearch search --runtime onnx`: the same hits as torch, and a text query process that never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")

QUERY_AND_REPORT = (
    "import sys; from xsearch.cli.main import main; rc = main(sys.argv[1:]); "
    "print('heavy modules:', sorted(m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules), "
    "file=sys.stderr); sys.exit(rc)"
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A cache with the builtin towers exported (what the first ONNX use of a model does, once)."""
    from xsearch.encoders.onnx_builtin import load_onnx_builtin

    cache = tmp_path_factory.mktemp("onnx-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("XSEARCH_CACHE", str(cache))
    try:
        load_onnx_builtin(None, "onnx").session("text")
    finally:
        mp.undo()
    return cache


def _query(indexed, exported, runtime: str, text: str = "a red circle"):
    env = {"XSEARCH_CACHE": str(exported), "COLUMNS": "200"}
    import os

    proc = subprocess.run([sys.executable, "-c", QUERY_AND_REPORT, "search", text, "-c", str(indexed), "-k", "5",
                           "--to", "image", "--json", "--runtime", runtime],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["results"]["image"], proc.stderr


def test_onnx_query_gives_torch_hits_without_importing_torch(indexed, exported):
    onnx_hits, onnx_err = _query(indexed, exported, "onnx")
    torch_hits, torch_err = _query(indexed, exported, "torch")
    assert "heavy modules: []" in onnx_err  # the query process loaded no torch, open_clip or torchvision
    assert "'torch'" in torch_err  # the check can tell
    assert [h["path"] for h in onnx_hits] == [h["path"] for h in torch_hits] and len(onnx_hits) == 5
    for a, b in zip(onnx_hits, torch_hits):
        assert abs(a["score"] - b["score"]) <= 1e-5


def test_runtime_option_after_the_command_and_a_bad_value(cli, indexed):
    r = cli("search", "a red circle", "-c", indexed, "--runtime", "quantum")
    assert r.code == 2 and "unknown runtime 'quantum'" in r.err and "Traceback" not in r.err
    r = cli("info", "-c", indexed, "--runtime", "torch")
    assert r.code == 0 and "runtime: torch (--runtime" in r.out
