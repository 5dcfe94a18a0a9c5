"""What a real Milvus server and a multi-node Ray cluster broke, checked without either (fast): the features read
from a server's version, 2.3's prefix-only ``like``, the per-write state rows, the Ray watchdog and the token-auth
hint. The same behaviours against a real server and cluster: tests/contract (milvus-server) and
tests/e2e/test_ray_cluster.py, both slow."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from xsearch.core.errors import XsearchError
from xsearch.core.types import Filters


def test_server_features_follow_its_version():
    from xsearch.index.milvus.features import LITE, parse_version, server_features

    old = server_features("v2.3.5-lite")
    assert parse_version("v2.3.5-lite") == (2, 3, 5)
    assert not old.group_by and not old.like_full and "HNSW_SQ" not in old.index_types
    assert "IVF_PQ" in old.index_types and "HNSW" in old.index_types
    new = server_features("v2.5.4")
    assert new.group_by and new.like_full and "HNSW_SQ" in new.index_types
    assert LITE.group_by and LITE.like_full and "IVF_PQ" not in LITE.index_types


@pytest.mark.parametrize("glob, term", [
    ("*.png", None),                       # Milvus 2.3: "unsupported pattern" for a leading %
    ("g00015?.png", 'name like "g00015%"'),  # _ is literal on 2.3: narrowed by the prefix, post-filtered
    ("img[12].png", 'name like "img%"'),
    ("/a/b.png", 'path == "/a/b.png"'),
    ("/a/*", 'path like "/a/%"'),
])
def test_globs_on_a_prefix_only_like_are_narrowed_then_post_filtered(glob, term):
    from xsearch.index.milvus.filters import compile_filters, matches

    c = compile_filters(Filters(path_glob=glob), like_full=False)
    assert c.expr == (term or "")
    field = "path" if "/" in glob else "name"
    names = ["g000151.png", "g0001512.png", "g00015_.png", "img1.png", "img3.png", "x.png", "x.jpg"]
    values = ["/a/b.png", "/a/c.jpg", "/b/a.png"] if field == "path" else names
    for value in values:  # the post-filter keeps exactly what the glob (the local store's GLOB) keeps
        meta = {"path": value if field == "path" else f"/d/{value}", "name": value.rsplit("/", 1)[-1],
                "size": 1, "mtime_ns": 1}
        assert c.keep({field: value}) == matches(Filters(path_glob=glob), meta), value


def test_state_rows_pick_the_newest_and_read_old_collections():
    from xsearch.index.milvus.db import _state_seq

    assert _state_seq("state") == -1 and _state_seq("state:000000000012") == 12
    assert _state_seq("stateX") is None and _state_seq("spec") is None and _state_seq("state:x") is None


def _stuck_after(n: int):
    for i in range(n):
        yield {"batch": i}
    threading.Event().wait()  # what iter_batches does after a node is lost


def test_watchdog_ends_a_run_that_makes_no_progress():
    from xsearch.engine.executors.ray import watched

    got, began = [], time.monotonic()
    with pytest.raises(XsearchError) as e:
        for batch in watched(_stuck_after(2), stall_s=0.5):
            got.append(batch)
    assert got == [{"batch": 0}, {"batch": 1}] and time.monotonic() - began < 5
    assert e.value.code == "executor.stalled" and "run the same command again" in str(e.value)
    assert list(watched(iter([1, 2, 3]), stall_s=0.5)) == [1, 2, 3]
    with pytest.raises(ZeroDivisionError):  # the pipeline's own errors come through as they are
        list(watched((1 / 0 for _ in range(1)), stall_s=0.5))


def test_stall_seconds_from_the_environment(monkeypatch):
    from xsearch.engine.executors.ray import STALL_S, stall_seconds

    monkeypatch.delenv("XSEARCH_RAY_STALL_S", raising=False)
    assert stall_seconds() == STALL_S and stall_seconds(3) == 3.0
    monkeypatch.setenv("XSEARCH_RAY_STALL_S", "12")
    assert stall_seconds() == 12.0
    monkeypatch.setenv("XSEARCH_RAY_STALL_S", "soon")
    with pytest.raises(XsearchError) as e:
        stall_seconds()
    assert e.value.code == "usage.bad_value"


def test_a_cluster_that_refuses_the_driver_names_token_auth(monkeypatch):
    """HEAD:PORT on a Ray with token auth: ray.init fails after ~30 s with only "Failed to connect to Ray cluster";
    the executor says what to check, for plain addresses as for ray://."""
    ray_mod = pytest.importorskip("ray")
    import xsearch.engine.executors.ray as executors_ray

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = f"127.0.0.1:{listener.getsockname()[1]}"

    def refuse(*a, **kw):
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}")

    monkeypatch.setattr(executors_ray.ray, "init", refuse)
    monkeypatch.setattr(executors_ray.ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    try:
        with pytest.raises(XsearchError) as e:
            executors_ray.RayExecutor(address=address)._connect()
    finally:
        listener.close()
    assert e.value.code == "executor.connect_failed" and address in str(e.value)
    assert "auth_token" in e.value.hint and "RAY_AUTH_MODE=token" in e.value.hint and "HEAD:PORT" in e.value.hint
    assert ray_mod is not None
