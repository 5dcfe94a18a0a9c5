"""The ray executor on a real multi-node Ray cluster (a head and a worker node on loopback, each its own raylet):
the same vectors as the local executor, and a run that loses a node ends within a bound — completed, or with one
coded line — instead of hanging in Ray Data's ``iter_batches``.

Slow (a cluster start is ~20 s on 2 cores): CI runs them with ``-m slow``.
"""

from __future__ import annotations

import shutil
import sys
import time

import pytest

from tests.helpers.servers import RayCluster

ray = pytest.importorskip("ray", reason="the ray executor needs the 'ray' extra (pip install -e '.[ray]')")
pytest.importorskip("ray.data", reason="the ray executor needs Ray Data (pip install -e '.[ray]')")

from tests.unit.test_executor_ray import _compare_with_local, folder  # noqa: E402, F401 - the shared world

pytestmark = pytest.mark.slow

STALL_S = 30.0  # the first batch may wait twice that (38 s measured: actors starting on 2 busy cores)
KILL_BOUND_S = 120.0  # the target: a lost node ends the run within 2 minutes


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    c = RayCluster(workers=1, cpus_per_node=1)
    try:
        yield c
    finally:
        c.shutdown()


def test_cluster_has_two_nodes_and_gives_the_local_vectors(cluster, folder):  # noqa: F811
    assert cluster.nodes_alive() == 2
    ray_ex = _compare_with_local(folder, num_cpus=0.5, decode_cpus=0.5)
    assert ray_ex.resources["cluster_cpus"] == 2


def _slow_decode(files, opts):
    """The real decoder, slowed down so that a run lasts long enough to lose a node in the middle of it."""
    import time as _time

    from xsearch.media.loader import decode_files

    _time.sleep(1.0)
    return decode_files(files, opts)


def test_a_killed_node_ends_the_run_within_the_bound(cluster, folder, tmp_path):  # noqa: F811
    """Kill the worker node's raylet after the first batch: the run completes (Ray rescheduled the work) or ends
    with executor.stalled, within KILL_BOUND_S; never hangs. Runs last in this module (it kills the worker)."""
    import ray.cloudpickle

    from xsearch.core.errors import XsearchError
    from xsearch.encoders.registry import load_encoder
    from xsearch.engine.embed import decode_options
    from xsearch.engine.executors.ray import RayExecutor
    from xsearch.media import discover

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    root = tmp_path / "images"
    shutil.copytree(folder / "image", root)
    (root / "truncated.png").unlink()
    enc = load_encoder("builtin", "cpu")
    files = sorted((f for f in discover(root) if hasattr(f, "modality")), key=lambda f: str(f.path))
    ex = RayExecutor(2, decode=_slow_decode, num_cpus=0.5, decode_cpus=0.5, stall_s=STALL_S)
    seen: list[str] = []
    outcome = "completed"
    killed_at = None
    began = time.monotonic()
    try:
        for embedded, skipped in ex.run(enc, files, decode_options(enc)):
            seen += [str(e.file.path) for e in embedded] + [str(s.path) for s in skipped]
            if killed_at is None:
                print(f"first batch after {time.monotonic() - began:.1f} s")
                cluster.kill(cluster.workers[0])
                killed_at = time.monotonic()
    except XsearchError as e:
        assert e.code == "executor.stalled" and "run the same command again" in str(e), e
        outcome = "stalled"
    assert killed_at is not None, (outcome, f"{time.monotonic() - began:.1f} s")
    took = time.monotonic() - killed_at
    assert took < KILL_BOUND_S, (outcome, took)
    if outcome == "completed":
        assert sorted(set(seen)) == sorted(str(f.path) for f in files)
    print(f"killed node: {outcome} {took:.1f} s after the kill, {len(set(seen))}/{len(files)} files back")


def test_a_killed_node_keeps_the_embedded_files_and_the_cli_rerun_adds_the_rest(cluster, folder, tmp_path):  # noqa: F811
    """The issue's target end to end: an index run on the cluster loses a node after its first batch and ends within
    the bound — completed, or executor.stalled with every file embedded before it committed — and `xsearch index`
    run again adds exactly the files still missing."""
    import json
    import subprocess

    import ray.cloudpickle

    from xsearch.core.errors import XsearchError
    from xsearch.engine import Engine
    from xsearch.index import open_store

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    node = cluster.cluster.add_node(num_cpus=1)  # a worker of this test's own: the other kill test may have run
    cluster.workers.append(node)
    cluster.cluster.wait_for_nodes()
    root = tmp_path / "images"
    shutil.copytree(folder / "image", root)
    (root / "truncated.png").unlink()
    total = len(list(root.iterdir()))
    col = tmp_path / "col"
    killed_at: list[float] = []

    def kill_after_first_batch(_done: int) -> None:
        if not killed_at:
            cluster.kill(node)
            killed_at.append(time.monotonic())

    outcome = "completed"
    try:
        Engine(col, model="builtin").index_folder(
            root, executor="ray", files_per_batch=4, on_progress=kill_after_first_batch,
            executor_options={"decode": _slow_decode, "stall_s": STALL_S, "num_cpus": 0.5, "decode_cpus": 0.5})
    except XsearchError as e:
        assert e.code == "executor.stalled", e
        outcome = "stalled"
    assert killed_at and time.monotonic() - killed_at[0] < KILL_BOUND_S, outcome
    with open_store(str(col)) as s:
        kept = s.file_count("image")
    assert kept >= 4 if outcome == "stalled" else kept == total  # at least the first batch, committed
    rerun = subprocess.run([sys.executable, "-m", "xsearch.cli.main", "index", str(root), "-c", str(col), "--json"],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-600:]
    report = json.loads(rerun.stdout)
    assert (report["added"], report["unchanged"]) == (total - kept, kept), (outcome, kept, report)
    with open_store(str(col)) as s:
        assert s.file_count("image") == total
    print(f"killed node: {outcome}, {kept}/{total} kept, the re-run added {report['added']}")
