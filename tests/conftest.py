"""Shared fixtures: an isolated XSEARCH_HOME per test, no hub access, a small generated world and its collection."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

WORLD_N = 90
WORLD_SEED = 11  # not the shipped model's training seed
TINY = {"epochs": 8, "batch_size": 32, "lr": 3e-3, "warmup_epochs": 0.5, "threads": 2}  # a training run of seconds


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, tmp_path, monkeypatch):
    """Every test gets its own XSEARCH_HOME, the session's ONNX export cache and an empty, offline Hugging Face
    home (``tmp_path / "hf-home"``)."""
    monkeypatch.setenv("XSEARCH_HOME", str(tmp_path_factory.mktemp("xsearch-home")))
    # exported ONNX towers: one cache for the session (exported once), never the user's ~/.cache
    monkeypatch.setenv("XSEARCH_CACHE", str(tmp_path_factory.getbasetemp() / "xsearch-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for name in ("XSEARCH_COLLECTION", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    from xsearch.encoders.runtimes import set_runtime

    set_runtime(None)  # an in-process `--runtime X` of an earlier test is not this test's setting


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run `xsearch ARGS...` in-process through the real entry point; returns code, stdout, stderr."""
    from xsearch.cli.main import main

    def run(*args) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def run_subprocess(*args, env: dict | None = None, cwd: Path | None = None, timeout: float = 300) -> CliResult:
    """`python -m xsearch.cli.main ARGS` in a fresh process (what a user's shell does)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "xsearch.cli.main", *map(str, args)], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """A small generated world (images, sounds, caption files, manifest.jsonl)."""
    from xsearch.world import make_world

    out = tmp_path_factory.mktemp("world") / "w"
    make_world(out, WORLD_N, WORLD_SEED)
    return out


@pytest.fixture(scope="session")
def indexed(world, tmp_path_factory) -> Path:
    """The world indexed with the builtin model into a session-wide collection (read-only for tests)."""
    from xsearch.engine import Engine

    col = tmp_path_factory.mktemp("collections") / "world"
    report = Engine(col, model="builtin").index_folder(world, workers=0)
    assert report.added == 3 * WORLD_N and not report.skipped
    return col


@pytest.fixture(scope="session")
def manifest_records(world) -> list[dict]:
    import json

    return [json.loads(line) for line in (world / "manifest.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """The manifest of a 240-group world for minute-scale training tests."""
    from xsearch.world import make_world

    return make_world(tmp_path_factory.mktemp("tiny") / "w", 240, seed=5)


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A real Milvus server's HOST:PORT for the whole session (tests/helpers/servers.py: $XSEARCH_TEST_MILVUS_URI,
    else the milvus package's venv started once), or a skip that says why there is none."""
    pytest.importorskip("pymilvus")
    from tests.helpers.servers import start_milvus

    server, why = start_milvus(tmp_path_factory.mktemp("milvus-server"))
    if server is None:
        pytest.skip(why)
    try:
        yield server.address
    finally:
        server.stop()
