"""The ray executor against the local one: same vectors, same report, bad files skipped with the same reason.

Runs on a local Ray (2 CPUs, no dashboard) started once for the module. Skipped when the 'ray' extra is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.executors import assert_executor_contract

ray = pytest.importorskip("ray", reason="the ray executor needs the 'ray' extra (pip install -e '.[ray]')")
pytest.importorskip("ray.data", reason="the ray executor needs Ray Data (pip install -e '.[ray]')")

WORLD_N = 24
BATCH = 8


@pytest.fixture(scope="module")
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A 24-group world (images, sounds, texts) plus a truncated PNG."""
    from xsearch.world import make_world

    root = tmp_path_factory.mktemp("ray-world") / "w"
    make_world(root, WORLD_N, seed=1)
    good = sorted((root / "image").iterdir())[0].read_bytes()
    (root / "image" / "truncated.png").write_bytes(good[: len(good) // 2])
    return root


def _vectors(collection: Path) -> dict:
    """{(path, track): (offsets, vectors)} of every file in a collection."""
    from xsearch.index import open_store

    store = open_store(str(collection))
    try:
        out = {}
        for row in store.files():
            for track in _tracks(row.modality):
                try:
                    vecs = store.file_vectors(row.id, track)
                except Exception:  # noqa: BLE001 - a file without that track
                    continue
                if len(vecs):
                    out[(row.path, track)] = vecs
        return out
    finally:
        store.close()


def _tracks(modality: str) -> tuple[str, ...]:
    return ("video", "soundtrack") if modality == "video" else (modality,)


def test_plain_wire_format_rebuilds_images_exactly():
    from PIL import Image

    from xsearch.engine.executors.ray import from_plain, to_plain

    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (7, 5, 3), dtype=np.uint8), "RGB")
    wave = np.linspace(-1, 1, 50, dtype=np.float32)
    back = from_plain(to_plain([img, [img, img], wave, "text"]))
    assert np.array_equal(np.asarray(back[0]), np.asarray(img)) and back[0].mode == "RGB"
    assert all(np.array_equal(np.asarray(b), np.asarray(img)) for b in back[1])
    assert back[2] is wave and back[3] == "text"


def test_local_executor_takes_no_ray_options():
    from xsearch.core.errors import UsageError
    from xsearch.engine.executors import make_executor

    with pytest.raises(UsageError) as e:
        make_executor("local", address="auto")
    assert e.value.code == "executor.bad_option"
    with pytest.raises(UsageError):
        make_executor("ray", no_such_option=1)


def test_unreachable_address_fails_fast():
    """ray.init on a dead GCS address retries for many minutes; the executor says so in one line instead."""
    import socket
    import time

    from xsearch.core.errors import XsearchError
    from xsearch.engine.executors.ray import check_reachable

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        t0 = time.monotonic()
        with pytest.raises(XsearchError) as e:
            check_reachable(address, timeout=2.0)
        assert e.value.code == "executor.unreachable" and address in str(e.value)
        assert time.monotonic() - t0 < 5
    for address in ("auto", "local", "anyscale://x"):
        check_reachable(address)  # no port: left to Ray
    with socket.socket() as s:  # a listening port passes
        s.bind(("127.0.0.1", 0))
        s.listen()
        check_reachable(f"127.0.0.1:{s.getsockname()[1]}")


def test_missing_ray_is_a_usage_error(monkeypatch):
    import sys

    from xsearch.core.errors import UsageError
    from xsearch.engine.executors import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError, as without the extra
    monkeypatch.delitem(sys.modules, "xsearch.engine.executors.ray", raising=False)
    with pytest.raises(UsageError) as e:
        make_executor("ray")
    assert e.value.code == "executor.unavailable" and "'ray' extra" in str(e.value)


def _compare_with_local(folder: Path, **ray_options):
    """Run both executors over the same files: the same files, offsets, infos, snippets, vectors (allclose) and
    skip reasons; every file accounted for in some batch (the progress bar's count)."""
    from xsearch.encoders.registry import load_encoder
    from xsearch.engine.embed import decode_options
    from xsearch.engine.executors.local import LocalExecutor
    from xsearch.engine.executors.ray import RayExecutor
    from xsearch.media import discover

    enc = load_encoder("builtin", "cpu")
    opts = decode_options(enc)
    files = sorted((f for f in discover(folder) if hasattr(f, "modality")), key=lambda f: str(f.path))
    local = list(LocalExecutor(0, BATCH).run(enc, files, opts))
    ray_ex = RayExecutor(BATCH, **ray_options)
    remote = list(ray_ex.run(enc, files, opts))

    def flat(batches):
        done = {str(e.file.path): e for embedded, _ in batches for e in embedded}
        skipped = {str(s.path): s.reason for _, bad in batches for s in bad}
        return done, skipped

    (l_done, l_skip), (r_done, r_skip) = flat(local), flat(remote)
    assert len(l_done) == 3 * WORLD_N and set(r_done) == set(l_done)
    assert r_skip == l_skip and list(l_skip) == [str(folder / "image" / "truncated.png")]
    for path, mine in l_done.items():
        theirs = r_done[path]
        assert theirs.file == mine.file and theirs.info == mine.info
        assert set(theirs.tracks) == set(mine.tracks)
        for track, items in mine.tracks.items():
            assert theirs.tracks[track].offsets == items.offsets
            assert theirs.tracks[track].snippets == items.snippets
            np.testing.assert_allclose(theirs.tracks[track].vectors, items.vectors, atol=1e-5)
    assert sum(len(e) + len(s) for e, s in remote) == len(files)
    truncated = {str(folder / "image" / "truncated.png"): ""}
    for batches in (local, remote):  # the same contract, on both executors' batches
        assert_executor_contract(batches, files, truncated)
    return ray_ex


@pytest.mark.slow  # ~13 s with the local Ray start (tests/e2e/test_ray_cluster.py compares on two nodes)
def test_executors_give_the_same_vectors_and_skips(local_ray, folder):
    ray_ex = _compare_with_local(folder)
    assert ray_ex.resources["cluster_cpus"] == 2 and ray_ex.resources["num_cpus"] <= 1


@pytest.mark.slow
def test_ray_client_path_runs_the_pipeline_in_a_coordinator_actor(local_ray, folder, monkeypatch):
    """Under Ray Client (ray://) Ray Data cannot run in the driver; the executor then runs it in an actor on the
    cluster and pulls batches. Simulated here by telling the driver it is a client: same results."""
    import xsearch.engine.executors.ray as executors_ray

    pulled = []
    real_get = ray.get
    monkeypatch.setattr(ray.util.client.ray, "is_connected", lambda: True)
    monkeypatch.setattr(executors_ray.ray, "get", lambda ref: pulled.append(1) or real_get(ref))
    _compare_with_local(folder)
    assert len(pulled) >= 2  # batches came through the coordinator's next()


@pytest.mark.slow  # a second Ray run (~15 s on 2 cores) on top of the executor-level comparison above
def test_cli_index_with_ray_matches_local(local_ray, folder, tmp_path, cli):
    """End to end through `xsearch index --executor ray`: the same report and the same stored vectors."""
    reports = {}
    for executor in ("local", "ray"):
        col = tmp_path / executor
        r = cli("index", folder, "-c", col, "--model", "builtin", "--workers", "0", "--batch-files", BATCH,
                "--executor", executor, "--json")
        assert r.code == 0, r.err
        reports[executor] = json.loads(r.out)
    keys = ("added", "updated", "unchanged", "renamed", "removed", "vectors_added", "model_id", "skipped")
    assert {k: reports["ray"][k] for k in keys} == {k: reports["local"][k] for k in keys}
    assert reports["ray"]["added"] == 3 * WORLD_N
    assert [s["path"] for s in reports["ray"]["skipped"]] == [str(folder / "image" / "truncated.png")]
    local_vecs, ray_vecs = _vectors(tmp_path / "local"), _vectors(tmp_path / "ray")
    assert set(ray_vecs) == set(local_vecs) and len(local_vecs) == 3 * WORLD_N
    for key, vecs in local_vecs.items():
        np.testing.assert_allclose(ray_vecs[key], vecs, atol=1e-5)


def _crash_on_marked_file(files, opts):
    """A decoder that kills its worker process on a file named 'crash*' (a segfaulting codec, in effect)."""
    import os

    from xsearch.media.loader import decode_files

    if any(Path(f.path).name.startswith("crash") for f in files):
        os._exit(3)
    return decode_files(files, opts)


@pytest.mark.slow
def test_a_worker_crash_costs_only_its_file(local_ray, folder, tmp_path):
    """A worker that dies is retried, then its batch is dropped and its files retried one by one: only the
    crashing file is skipped, with a reason, and the run finishes."""
    import shutil
    import sys

    import ray.cloudpickle

    from xsearch.encoders.registry import load_encoder
    from xsearch.engine.embed import decode_options
    from xsearch.engine.executors.ray import CRASHED, RayExecutor
    from xsearch.media import discover

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    root = tmp_path / "images"
    shutil.copytree(folder / "image", root)
    (root / "truncated.png").unlink()
    shutil.copy(sorted(root.iterdir())[0], root / "crash.png")
    enc = load_encoder("builtin", "cpu")
    files = sorted((f for f in discover(root) if hasattr(f, "modality")), key=lambda f: str(f.path))
    batches = list(RayExecutor(BATCH, decode=_crash_on_marked_file).run(enc, files, decode_options(enc)))
    done = {str(e.file.path) for embedded, _ in batches for e in embedded}
    skipped = [(str(s.path), s.reason) for _, bad in batches for s in bad]
    assert skipped == [(str(root / "crash.png"), CRASHED)]
    assert len(done) == len(files) - 1
