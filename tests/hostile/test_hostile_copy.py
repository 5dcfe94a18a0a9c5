"""`xsearch copy` killed half-way (issue #26 item 6): the destination must never pass for a complete collection.
The copy runs in its own process and dies (``os._exit``, as kill -9 leaves it: no clean-up) after its first commit;
then every command refuses the partial destination with a way out, and copying again starts it over."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import run_subprocess

KILLED = 137


def _killed_copy(source, destination) -> int:
    """Run copy_store in a fresh process that dies with no clean-up right after its first batch is committed."""
    code = textwrap.dedent(f"""
        import os
        from xsearch.index.copy import copy_store
        copy_store({str(source)!r}, {str(destination)!r}, files_per_batch=2, on_progress=lambda n: os._exit({KILLED}))
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).returncode




@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "milvus-lite"])
def test_an_interrupted_copy_is_refused_until_copied_again(indexed, tmp_path, kind):
    """The commands as a user's shell runs them, into either kind of destination."""
    if kind == "milvus-lite":
        pytest.importorskip("pymilvus")
        pytest.importorskip("milvus_lite")
    dest = tmp_path / "copy" if kind == "local" else f"milvus-lite:{tmp_path / 'copy.db'}"
    _test_interrupted(run_subprocess, indexed, dest)


def test_an_interrupted_local_copy_is_refused_until_copied_again(cli, indexed, tmp_path):
    _test_interrupted(cli, indexed, tmp_path / "copy")


def _test_interrupted(run, indexed, dest):
    assert _killed_copy(indexed, dest) == KILLED
    for args in (("search", "red", "-c", dest), ("info", "-c", dest), ("index", indexed.parent, "-c", dest)):
        r = run(*args)
        assert r.code == 1 and "Traceback" not in r.err, (args, r.code, r.err)
        assert "unfinished copy" in r.err and "xsearch copy" in r.err and r.err.count("\n") == 1, r.err
    r = run("copy", indexed, dest, "--json")  # no --replace needed: it starts over
    assert r.code == 0, r.err
    done = json.loads(r.out)
    r = run("info", "-c", dest, "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)["collection"]
    assert sum(m["files"] for m in info["modalities"].values()) == done["files"]
    assert run("copy", indexed, dest).code != 0  # complete now: --replace is needed again
