"""The Milvus store beyond the shared contract (tests/contract/): index and filter mapping, milvus-lite's own
behaviour (index parameters, group_by over-fetch), crash repair, the server's lease, one process per .db."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from tests.helpers.index import unit_rows
from xsearch.core.errors import CollectionLockedError, UsageError, XsearchError  # noqa: E402
from xsearch.core.types import Filters  # noqa: E402
from xsearch.index import factory, open_store, open_writer  # noqa: E402
from xsearch.index.milvus import writer_lock  # noqa: E402
from xsearch.index.milvus.connection import Connection  # noqa: E402
from xsearch.index.milvus.db import LOAD_RETRIES, Db  # noqa: E402
from xsearch.index.milvus.filters import compile_filters, glob_to_like  # noqa: E402
from xsearch.index.milvus.indexes import choose_index  # noqa: E402
from xsearch.index.milvus.uri import parse_uri  # noqa: E402
from xsearch.index.milvus.writer_lock import Lease  # noqa: E402
from xsearch.index.store import StoreSpec  # noqa: E402

DIM = 8
SPEC = StoreSpec("m@1:8", "m", {"image": DIM, "audio": DIM}, "Flat")


def unit(seed: int, n: int = 1) -> np.ndarray:
    return unit_rows(n, DIM, seed)


def add(w, path, vectors, modality="image", **kw):
    fid = w.upsert_file(path, modality=modality, size=kw.pop("size", 10), mtime_ns=kw.pop("mtime_ns", 1),
                        hash=path, **kw)
    w.replace_items(fid, {modality: ([float(i) for i in range(len(vectors))], vectors, None)})
    return fid


@pytest.fixture
def uri(tmp_path):
    return f"milvus-lite:{tmp_path / 'm.db'}"


@pytest.fixture
def server_uri(milvus_server):
    """A collection of its own on the real Milvus server (tests/conftest.py ``milvus_server``)."""
    return f"milvus://{milvus_server}/t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["milvus-lite", pytest.param("milvus-server", marks=pytest.mark.slow)])
def any_uri(request, tmp_path):
    """milvus-lite, then the real server (slow): what must hold on both."""
    if request.param == "milvus-lite":
        return f"milvus-lite:{tmp_path / 'm.db'}"
    return request.getfixturevalue("server_uri")


# -- pure mappings --------------------------------------------------------------------------------------------------


def test_factory_strings_map_to_milvus_indexes():
    assert choose_index("Flat", lite=True).index_type == "FLAT"
    hnsw = choose_index("HNSW32", lite=True)
    assert (hnsw.index_type, hnsw.build, hnsw.search) == ("HNSW", {"M": 32, "efConstruction": 80}, {"ef": 128})
    assert choose_index("HNSW16_SQ8", lite=True).index_type == "HNSW_SQ"
    ivf = choose_index("IVF256,Flat", lite=True)
    assert (ivf.index_type, ivf.build, ivf.search) == ("IVF_FLAT", {"nlist": 256}, {"nprobe": 32})
    assert choose_index("IVF64,SQ8", lite=True).index_type == "IVF_SQ8"
    assert choose_index("IVF64,PQ8", lite=False).build == {"nlist": 64, "m": 8, "nbits": 8}
    assert choose_index("auto", lite=True).index_type == "FLAT"
    assert choose_index("auto", lite=False).index_type == "HNSW"
    for bad, lite in (("IVF64,PQ8", True), ("PCA32,Flat", True), ("OPQ16,IVF64,PQ16", False), ("LSH", False)):
        with pytest.raises(UsageError) as e:
            choose_index(bad, lite=lite)
        assert e.value.code == "store.unsupported_index" and bad in str(e.value)


def test_globs_compile_to_like_exactly_or_with_a_post_filter():
    assert glob_to_like("*.jpg") == ("%.jpg", None)
    assert glob_to_like("cat?.png") == ("cat_.png", None)
    like, regex = glob_to_like("img[12].png")
    assert like == "img_.png" and regex.fullmatch("img1.png") and not regex.fullmatch("img3.png")
    like, regex = glob_to_like("my_file*")  # a literal _ is any character to like: checked exactly afterwards
    assert like == "my_file%" and regex.fullmatch("my_file.txt") and not regex.fullmatch("myXfile.txt")
    like, regex = glob_to_like("[^a]*")
    assert regex.fullmatch("b.png") and not regex.fullmatch("a.png")
    c = compile_filters(Filters(path_glob="*/holiday/*", min_size=5, max_duration=3.0, since=1.0),
                        exclude_paths=['/a/"q".png'], gen=4)
    assert c.expr == ('gen <= 4 and path like "%/holiday/%" and (duration >= 0.0 and duration <= 3.0) and '
                      'size >= 5 and mtime_ns >= 1000000000 and path not in ["/a/\\"q\\".png"]')
    assert c.glob_regex is None
    assert compile_filters(Filters(tag='say "hi"')).expr == 'array_contains(tags, "say \\"hi\\"")'


def test_bad_uris_are_coded():
    for bad in ("milvus-lite:/tmp/x", "milvus-lite:", "milvus://host:19530/", "milvus://host:19530/9bad",
                "milvus://:19530/x"):
        with pytest.raises(UsageError) as e:
            open_store(bad)
        assert e.value.code == "store.bad_uri"


# -- milvus-lite behaviour ------------------------------------------------------------------------------------------


def test_hnsw_build_parameters_reach_milvus_lite(uri):
    """pymilvus flattens a plain params dict into top-level keys, which milvus-lite ignores: they go nested."""
    spec = StoreSpec("m@1:8", "m", {"image": DIM}, "HNSW16")
    with open_writer(uri, create=spec) as w:
        for i in range(20):
            add(w, f"/h/{i}.png", unit(i))
        desc = w._db.c.describe_index(w._coll("image"), "vector")
        assert desc["index_type"] == "HNSW" and desc["params"] == {"M": 16, "efConstruction": 80}
    with open_store(uri) as s:
        assert s.search_files("image", unit(7), 1)[0][0].path == "/h/7.png"
        assert "HNSW16" in s.stats()["modalities"]["image"]["index"]


def test_many_windows_of_one_file_do_not_hide_other_files(any_uri):
    """milvus-lite's group_by looks at 10×limit items: a file with 40 close windows fills them all. The store
    notices and groups an over-fetch itself."""
    q = unit(1)[0]
    near = q[None, :] + 0.01 * unit(2, 40)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    with open_writer(any_uri, create=SPEC) as w:
        add(w, "/w/long.wav", near, "audio", duration=400.0)
        for i in range(5):
            add(w, f"/w/short{i}.wav", unit(10 + i), "audio", duration=2.0)
    with open_store(any_uri) as s:
        hits = s.search_files("audio", q[None, :], 3)[0]
        assert len(hits) == 3 and hits[0].path == "/w/long.wav" and len({h.path for h in hits}) == 3
        short = [h.path for h in s.search_files("audio", q[None, :], 2, filters=Filters(max_duration=3))[0]]
        assert short == [h.path for h in s.search_files("audio", q[None, :], 2, exclude_paths=["/w/long.wav"])[0]]
        assert len(short) == 2 and "/w/long.wav" not in short


def test_post_filtered_globs_and_the_writer_sees_its_own_changes(any_uri):
    with open_writer(any_uri, create=SPEC) as w:
        for i in range(6):
            add(w, f"/g/my_{i}.png", unit(i))
        add(w, "/g/myX1.png", unit(1))
        w.commit()
        assert sorted(h.path for h in w.search_files("image", unit(1), 10, filters=Filters(path_glob="my_[12]*"))[0]) \
            == ["/g/my_1.png", "/g/my_2.png"]
        add(w, "/g/new.png", unit(99))
        w.remove_files([w.file("/g/my_0.png").id])
        hits = w.search_files("image", unit(99), 2)[0]
        assert hits[0].path == "/g/new.png" and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert "/g/my_0.png" not in [h.path for h in w.search_files("image", unit(0), 7)[0]]
        np.testing.assert_allclose(w.file_vectors(w.file("/g/new.png").id), unit(99), atol=1e-6)
        with open_store(any_uri) as r:  # not committed: a reader does not see it
            assert r.file("/g/new.png") is None and r.search_files("image", unit(99), 1)[0][0].path != "/g/new.png"


def test_auto_switches_to_hnsw_with_growth(uri, monkeypatch):
    monkeypatch.setattr(factory, "FLAT_MAX_VECTORS", 20)
    with open_writer(uri, create=StoreSpec("m@1:8", "m", {"image": DIM}, "auto")) as w:
        for i in range(25):
            add(w, f"/r/{i}.png", unit(i))
        w.commit()
        assert w.maybe_reindex() == {"image": ("Flat", "HNSW32")}
    with open_store(uri) as s:
        assert s.stats()["modalities"]["image"]["index"].startswith("HNSW32")
        assert s.search_files("image", unit(3), 1)[0][0].path == "/r/3.png"


# -- crashes during commit ------------------------------------------------------------------------------------------


def _crash_on(monkeypatch, method: str, nth: int):
    real = getattr(Db, method)
    calls = {"n": 0}

    def crashing(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == nth:
            raise RuntimeError("power cut")
        return real(self, *a, **kw)

    monkeypatch.setattr(Db, method, crashing)


def test_opening_loads_the_released_collections(uri):
    """milvus-lite reopens indexed collections released; a reader or writer loads them when it opens, so no later
    call meets a released collection (and milvus-lite's lock-free delete-by-filter toggle cannot race a load)."""
    with open_writer(uri, create=SPEC) as w:
        add(w, "/a.png", unit(1))
        w.commit()
    client = Connection.acquire(parse_uri(uri), wait_s=5)
    try:
        names = [n for n in client.client.list_collections() if n.startswith(client.target.name + "__")]
        for name in names:
            client.client.release_collection(name)
        assert {str(client.client.get_load_state(n)["state"]) for n in names} != {"Loaded"}
        with open_store(uri) as s:
            assert {str(client.client.get_load_state(n)["state"]) for n in names} == {"Loaded"}
            assert s.search_files("image", unit(1)[0], 1)[0][0].path == "/a.png"
    finally:
        client.release()


def test_a_call_that_meets_a_released_collection_loads_and_retries():
    class Client:
        loads = 0
        failures = 2

        def load_collection(self, name):
            Client.loads += 1

        def search(self, name):
            if Client.failures:
                Client.failures -= 1
                raise RuntimeError(f"Collection {name!r} is in state 'released'; call load() before search")
            return "hits"

    class Conn:
        target = parse_uri("milvus-lite:/tmp/x.db")
        client = Client()

    db = Db(Conn())
    assert db.call("search", Conn.client.search, "c__image") == "hits" and Client.loads == 2
    Client.failures = LOAD_RETRIES + 1
    with pytest.raises(XsearchError) as e:
        db.call("search", Conn.client.search, "c__image")
    assert e.value.code == "store.milvus_error" and "released" in str(e.value)


def test_crash_before_publishing_is_undone(any_uri, monkeypatch):
    with open_writer(any_uri, create=SPEC) as w:
        for i in range(4):
            add(w, f"/c/{i}.png", unit(i))
    w = open_writer(any_uri)
    add(w, "/c/new.png", unit(50))
    w.replace_items(w.file("/c/1.png").id, {"image": ([0.0], unit(51), None)})
    _crash_on(monkeypatch, "state_put", 2)  # 1: pending, 2: publish
    with pytest.raises(RuntimeError):
        w.commit()
    w.close()
    monkeypatch.undo()
    with open_store(any_uri) as s:  # nothing of the batch is visible to search
        assert s.search_files("image", unit(50), 1)[0][0].path != "/c/new.png"
        assert s.search_files("image", unit(1), 1)[0][0].path == "/c/1.png"
    with open_writer(any_uri) as w:
        assert w.repair_report.rolled_back_files == 2 and "embedded again" in str(w.repair_report)
        assert w.file("/c/new.png") is None and w.file("/c/1.png") is None and w.file("/c/2.png") is not None
    with open_store(any_uri) as s:
        assert s.counts() == {"image": {"files": 3, "items": 3}}
        assert sorted(h.path for h in s.search_files("image", unit(1), 3)[0]) == ["/c/0.png", "/c/2.png", "/c/3.png"]
        assert s._db.count(s._coll("image")) == 3


def test_crash_after_publishing_is_completed(any_uri, monkeypatch):
    with open_writer(any_uri, create=SPEC) as w:
        for i in range(3):
            add(w, f"/d/{i}.png", unit(i))
    w = open_writer(any_uri)
    w.replace_items(w.file("/d/0.png").id, {"image": ([0.0], unit(60), None)})
    w.remove_files([w.file("/d/2.png").id])
    _crash_on(monkeypatch, "meta_delete", 3)  # 1, 2: old state rows; 3: after publishing, before clearing the journal
    with pytest.raises(RuntimeError):
        w.commit()
    w.close()
    monkeypatch.undo()
    with open_writer(any_uri) as w:
        assert w.repair_report.completed_commit
    with open_store(any_uri) as s:
        assert s.counts() == {"image": {"files": 2, "items": 2}} and s._db.count(s._coll("image")) == 2
        assert s.search_files("image", unit(60), 1)[0][0].path == "/d/0.png" and s.file("/d/2.png") is None


# -- writers --------------------------------------------------------------------------------------------------------


def test_server_lease_on_lite(uri, monkeypatch):
    """The lease a Milvus server's writer takes, exercised on milvus-lite: a second writer is refused until the
    first releases it, and an expired lease (a writer that died) is taken over."""
    monkeypatch.setattr(writer_lock, "USE_LEASE_ON_LITE", True)
    monkeypatch.setattr(Lease, "SETTLE_S", 0.01)
    with open_writer(uri, create=SPEC) as w:
        add(w, "/l/a.png", unit(1))
        with pytest.raises(CollectionLockedError) as e:
            open_writer(uri)
        assert e.value.code == "collection.locked" and "lease until" in str(e.value)
    w = open_writer(uri)
    w._wlock._stop.set()  # the writer "dies": no renewal, no release
    w._db.meta_put("lease", {**w._db.meta_get("lease"), "expires": 0})
    with open_writer(uri) as w2:
        assert w2.file("/l/a.png") is not None
    w._conn.release()


def test_second_process_gets_one_coded_line(uri, tmp_path):
    """milvus-lite serves a .db to one process: `xsearch search` while another process (an `xsearch index`) has
    the .db open is refused at once with one coded line (exit 3), never hangs."""
    with open_writer(uri, create=SPEC) as w:
        add(w, "/p/a.png", unit(1))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from xsearch.index import open_store
        s = open_store({uri!r}); print("ready", flush=True); sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        code = subprocess.run([sys.executable, "-m", "xsearch.cli.main", "search", "a red circle", "-c", uri, "--json"],
                              capture_output=True, text=True, timeout=120)
        assert code.returncode == 3, code.stderr
        assert code.stderr.count("\n") == 1 and "open in another process" in code.stderr
        assert '"code": "collection.in_use"' in code.stdout
    finally:
        holder.communicate("", timeout=60)
    with open_store(uri) as s:  # free again once that process is gone
        assert s.file("/p/a.png") is not None


def test_missing_pymilvus_is_one_coded_error(uri, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    monkeypatch.setattr(Connection, "_open", {})
    with pytest.raises(XsearchError) as e:
        open_writer(uri, create=SPEC)
    assert getattr(e.value, "code", "") == "store.missing_dependency" and "xsearch[milvus]" in str(e.value)


# -- a real Milvus server (2.3.5 from the PyPI package `milvus`; slow) ----------------------------------------------


def _calls(monkeypatch) -> list[tuple[str, dict]]:
    """Every pymilvus call the store makes through Db.call: (method name, keyword arguments)."""
    seen: list[tuple[str, dict]] = []
    real = Db.call

    def counting(self, doing, fn, *a, **kw):
        seen.append((getattr(fn, "__name__", str(fn)), dict(kw)))
        return real(self, doing, fn, *a, **kw)

    monkeypatch.setattr(Db, "call", counting)
    return seen


@pytest.mark.slow
def test_server_search_is_one_state_read_and_one_search_without_strong_waits(server_uri, monkeypatch):
    """Strong consistency waits for the server's 200 ms time tick on every call (~1.3 s per Engine.search on
    2.3.5); a search is now one state query and the searches it needs, at Session level, and no has_collection.
    2.3.5 ignores group_by_field: the store knows (features.py) and groups an over-fetch itself."""
    with open_writer(server_uri, create=SPEC) as w:
        for i in range(12):
            add(w, f"/s/{i}.png", np.concatenate([unit(i), unit(100 + i)]), duration=1.0)
    with open_store(server_uri) as s:
        assert s._db.features.version.startswith("v2.3") and not s._db.features.group_by
        sent: list[tuple[str, dict]] = []  # what reaches pymilvus, after Db.call's defaults
        for name in ("query", "search"):
            real = getattr(s._db.c, name)
            monkeypatch.setattr(s._db.c, name,
                                lambda *a, _n=name, _r=real, **kw: sent.append((_n, kw)) or _r(*a, **kw))
        seen = _calls(monkeypatch)
        hits = s.search_files("image", unit(5), 3)[0]
        assert hits[0].path == "/s/5.png" and len({h.path for h in hits}) == 3
        assert [name for name, _ in sent].count("query") == 1, sent  # the state, read once
        assert not any("has_collection" in name for name, _ in seen), seen
        assert sent and all(kw.get("consistency_level") == "Session" for _, kw in sent), sent
        assert not any("group_by_field" in kw for _, kw in sent)
        began = time.perf_counter()
        for _ in range(5):
            s.search_files("image", unit(5), 3)
        assert (time.perf_counter() - began) / 5 < 0.2  # a Strong read alone waits ~200 ms


@pytest.mark.slow
def test_server_globs_match_the_local_store(server_uri):
    """2.3.5's like takes prefixes only: '*.png' was "unsupported pattern" and 'g00015?.png' found nothing."""
    with open_writer(server_uri, create=SPEC) as w:
        for i, name in enumerate(["g000151.png", "g000152.jpg", "g0001512.png", "h1.png"]):
            add(w, f"/g/{name}", unit(i))
    with open_store(server_uri) as s:
        def names(glob):
            return sorted(h.path.rsplit("/", 1)[1] for h in
                          s.search_files("image", unit(0), 10, filters=Filters(path_glob=glob))[0])

        assert names("*.png") == ["g000151.png", "g0001512.png", "h1.png"]
        assert names("g00015?.png") == ["g000151.png"]
        assert names("/g/h*") == ["h1.png"]
        assert names("g000152.jpg") == ["g000152.jpg"]


@pytest.mark.slow
def test_server_refuses_an_index_it_lacks_before_creating_anything(server_uri):
    """HNSW_SQ is not in 2.3.5: said before anything is created (it left orphan collections behind)."""
    target = parse_uri(server_uri)
    spec = StoreSpec("m@1:8", "m", {"image": DIM}, "HNSW32_SQ8")
    with pytest.raises(UsageError) as e:
        open_writer(server_uri, create=spec)
    assert e.value.code == "store.unsupported_index" and "HNSW32_SQ8" in str(e.value) and "v2.3" in str(e.value)
    conn = Connection.acquire(target)
    try:
        assert not [n for n in conn.client.list_collections() if n.startswith(target.name + "__")]
    finally:
        conn.release()


@pytest.mark.slow
def test_server_ivf_pq_is_really_built_and_searched(server_uri):
    """300 rows stay in a growing segment (searched brute force): 3,000 rows and a flush make Milvus build the
    IVF-PQ index over them, which the searches then go through."""
    n, dim = 3000, 16
    spec = StoreSpec("m@1:16", "m", {"image": dim}, "IVF16,PQ4")
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with open_writer(server_uri, create=spec) as w:
        for i in range(n):
            fid = w.upsert_file(f"/q/{i}.png", modality="image", size=1, mtime_ns=1, hash=str(i))
            w.replace_items(fid, {"image": ([0.0], vecs[i:i + 1], None)})
        w.commit()
        coll = w._coll("image")
        w._db.c.flush(coll)
        deadline = time.monotonic() + 120
        while True:
            desc = w._db.c.describe_index(coll, "vector")
            if int(desc.get("indexed_rows", 0)) >= n or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert desc["index_type"] == "IVF_PQ" and int(desc["indexed_rows"]) == n, desc
    with open_store(server_uri) as s:
        top = [s.search_files("image", vecs[i:i + 1], 1, params={"nprobe": 16})[0][0].path for i in range(0, n, 300)]
        assert sum(p == f"/q/{i}.png" for p, i in zip(top, range(0, n, 300))) >= 8  # PQ is approximate
