"""A newcomer's first commands: the demo's hand-off runs as typed, --help reads plainly, Ctrl-C says what happened,
the install declares its data packages."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_subprocess

ROOT = Path(__file__).resolve().parents[2]


def check_handoff(out: str, demo_dir: Path) -> None:
    """The demo's last lines: commands that run as typed, queries that are items of the collection (called from
    tests/e2e/test_cli_misc.py::test_demo_prints_tables_for_a_person, which runs the demo once)."""
    lines = [ln.strip() for ln in out.splitlines() if re.search(r"\b(search|serve) ", ln) and "-c " in ln]
    assert lines, out
    captions = {p.read_text().strip() for p in (demo_dir / "world" / "text").glob("*.txt")}
    for line in lines:
        argv = shlex.split(line.split("  #")[0])
        program = argv[0]
        assert program == "xsearch" or os.access(program, os.X_OK), f"{program} does not run as typed"
        if argv[1] == "search":
            assert argv[2] in captions, f"suggested query {argv[2]!r} is not an item of the collection"


@pytest.mark.slow
def test_the_demo_search_line_runs_as_typed(cli, tmp_path):
    r = cli("demo", "--dir", tmp_path / "demo", "--n", "60")
    line = next(ln.strip() for ln in r.out.splitlines() if " search " in ln and "-c " in ln)
    done = subprocess.run(shlex.split(line), capture_output=True, text=True, cwd=os.getcwd(), timeout=300)
    assert done.returncode == 0 and "→ image" in done.stdout, done.stderr


def test_help_reads_plainly(cli):
    r = cli("--help")
    assert r.code == 0
    commands = r.out.split("Commands:")[1].strip().splitlines()
    assert all(len(c) <= 80 and not c.endswith("...") for c in commands), commands  # one whole line each
    for args in (("search", "--help"), ("index", "--help"), ("world", "make", "--help"), ("serve", "--help")):
        out = cli(*args).out
        assert "<bool>" not in out and "<int" not in out and "<list" not in out and "9223372036854775807" not in out
        assert "╭" not in out  # no boxes
    out = cli("search", "--help").out
    assert re.search(r"-i, --image FILE +Image file", out) and re.search(r"-k N +Results", out)
    make = cli("world", "make", "--help").out
    assert "\n    image/<id>.png   128x128 picture\n    audio/<id>.wav" in make  # the file list keeps its lines


def test_a_typo_suggests_the_command_in_one_sentence(cli):
    r = cli("serach", "x")
    assert r.code == 2
    assert r.err.strip() == "error: No such command 'serach'. Did you mean 'search'? (see `xsearch --help`)."


def test_ctrl_c_in_index_says_what_was_kept(cli, tmp_path, monkeypatch):
    from xsearch.engine import Engine

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Engine, "index_folder", interrupted)
    r = cli("index", tmp_path, "-c", tmp_path / "col")
    assert r.code == 130
    assert "up to the last commit" in r.err and "run the same `xsearch index` again" in r.err
    assert "error: interrupted." not in r.err


def test_ctrl_c_stops_serve_without_an_error(tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Ctrl-C as a terminal delivers it: a shell that ran this suite in the background (`make test &`) left SIGINT
    # ignored, and a child inherits that.
    proc = subprocess.Popen([sys.executable, "-m", "xsearch.cli.main", "serve", "-c", tmp_path / "none", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        out = ""
        while "Ctrl-C stops it" not in out and time.time() < deadline and proc.poll() is None:
            out += proc.stdout.readline()
        assert "Ctrl-C stops it" in out
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0 and "error" not in err and "stopped." in err


def test_data_folders_are_declared_packages():
    text = (ROOT / "pyproject.toml").read_text()
    packages = text[text.index("packages = ["):].split("]")[0]  # [tool.setuptools] packages (tomllib: 3.11+)
    for folder in ("xsearch/encoders/vocab", "xsearch/encoders/weights/builtin", "xsearch/encoders/weights/reranker",
                   "xsearch/server/static"):
        assert (ROOT / folder).is_dir()
        assert f'"{folder.replace("/", ".")}"' in packages, folder


@pytest.mark.slow
def test_k_capped_in_a_real_process(indexed):
    r = run_subprocess("search", "red", "-c", indexed, "-k", "999", "--json")
    assert r.code == 0 and "capped to 90" in r.err
