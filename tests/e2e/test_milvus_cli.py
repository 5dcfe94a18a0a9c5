"""The real CLI on milvus-lite collections: a 30-group generated world indexed with the builtin model, searched in
every direction (compared with the same world in a local collection), similar, duplicates, info, remove, an
unchanged re-index, and `xsearch copy` local → milvus-lite → local. One .db is shared by the module (milvus-lite
starts in the test process once)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

MODS = ("image", "audio", "text")
FILE_KEY = {"image": "image", "audio": "audio", "text": "text_file"}


def _run(*args) -> tuple[int, str]:
    """The CLI in-process, for module fixtures (the ``cli`` fixture is per test)."""
    import contextlib
    import io

    from xsearch.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XSEARCH_HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def mworld(env, tmp_path_factory):
    world = tmp_path_factory.mktemp("mworld") / "w"
    code, _ = _run("world", "make", world, "--n", 30, "--seed", 1)
    assert code == 0
    return world


@pytest.fixture(scope="module")
def records(mworld):
    return [json.loads(line) for line in (mworld / "manifest.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def lite(mworld, tmp_path_factory):
    """(the milvus-lite collection, the index report)."""
    uri = f"milvus-lite:{tmp_path_factory.mktemp('lite') / 'world.db'}"
    code, out = _run("index", mworld, "-c", uri, "--model", "builtin", "--workers", 0, "--json")
    assert code == 0, out
    return uri, json.loads(out)


@pytest.fixture(scope="module")
def local(mworld, tmp_path_factory):
    col = tmp_path_factory.mktemp("local") / "world"
    code, out = _run("index", mworld, "-c", col, "--model", "builtin", "--workers", 0, "--json")
    assert code == 0, out
    return str(col)


def _search(cli, collection, *args) -> dict:
    """The vector channel on both sides: a local collection also has a keyword index (docs/ocr.md), Milvus not."""
    r = cli("search", *args, "--mode", "vector", "-c", collection, "--json")
    assert r.code == 0, r.err
    return json.loads(r.out)["results"]


def _same(a: list[dict], b: list[dict], tol: float = 1e-4) -> None:
    """Two result lists agree: files, ranks, offsets, snippets; scores within ``tol`` (item ids may differ)."""
    assert [(h["path"], h["rank"], h.get("offset"), h.get("snippet")) for h in a] == \
        [(h["path"], h["rank"], h.get("offset"), h.get("snippet")) for h in b]
    assert [h["score"] for h in a] == pytest.approx([h["score"] for h in b], abs=tol)


def test_index_report(lite):
    _, report = lite
    assert (report["added"], report["skipped"]) == (90, [])
    assert report["vectors_added"] == {"image": 30, "audio": 30, "text": 30}
    assert report["collection"] == lite[0]


def test_every_direction_matches_the_local_store(cli, lite, local, mworld, records):
    rec = next(r for r in records if r["split"] == "test")
    queries = {"text": [rec["text"][0]], "image": ["--image", mworld / rec["image"]],
               "audio": ["--audio", mworld / rec["audio"]]}
    for query, args in queries.items():
        for target in MODS:
            got = _search(cli, lite[0], *args, "--to", target, "-k", 5)[target]
            _same(got, _search(cli, local, *args, "--to", target, "-k", 5)[target])
            assert len(got) == 5 and all(h["modality"] == target for h in got)
    every = _search(cli, lite[0], rec["text"][0], "--to", "all", "-k", 3)
    assert {m: len(v) for m, v in every.items()} == {"image": 3, "audio": 3, "text": 3}
    filtered = _search(cli, lite[0], rec["text"][0], "--to", "audio", "--path-glob", "g00001[0-4].wav",
                       "--min-duration", 0.1)["audio"]
    assert sorted(h["path"].rsplit("/", 1)[1] for h in filtered) == [f"g00001{i}.wav" for i in range(5)]
    _same(filtered, _search(cli, local, rec["text"][0], "--to", "audio", "--path-glob", "g00001[0-4].wav",
                            "--min-duration", 0.1)["audio"])


def test_similar_duplicates_info(cli, lite, local, mworld, records):
    image = str(mworld / records[3]["image"])
    for target in ("image", "audio"):
        a = cli("similar", image, "--to", target, "-k", 4, "-c", lite[0], "--json")
        b = cli("similar", image, "--to", target, "-k", 4, "-c", local, "--json")
        assert a.code == 0 and b.code == 0, a.err + b.err
        _same(json.loads(a.out)["results"][target], json.loads(b.out)["results"][target])
        assert image not in [h["path"] for h in json.loads(a.out)["results"][target]]
    a = cli("duplicates", "--threshold", 0.9, "-c", lite[0], "--json")
    b = cli("duplicates", "--threshold", 0.9, "-c", local, "--json")
    assert a.code == 0 and b.code == 0
    assert [(p["a"], p["b"]) for p in json.loads(a.out)] == [(p["a"], p["b"]) for p in json.loads(b.out)]
    r = cli("info", "-c", lite[0], "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["collection_path"] == lite[0] and info["collection"]["store"] == "milvus-lite"
    assert {m: info["collection"]["modalities"][m]["files"] for m in MODS} == {m: 30 for m in MODS}
    r = cli("info", "-c", lite[0])
    assert r.code == 0 and "image: 30 files, 30 vectors, index Flat (Milvus FLAT)" in r.out


def test_unchanged_reindex_embeds_nothing(cli, lite, mworld):
    r = cli("index", mworld, "-c", lite[0], "--workers", 0, "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert (report["added"], report["updated"], report["unchanged"], report["vectors_added"]) == (0, 0, 90, {})


def test_copy_local_to_milvus_lite_and_back(cli, local, mworld, records, tmp_path):
    lite = f"milvus-lite:{tmp_path / 'copy.db'}"
    back = str(tmp_path / "back")
    r = cli("copy", local, lite, "--json")
    assert r.code == 0, r.err
    done = json.loads(r.out)
    assert done["files"] == 90 and done["items"] == {"image": 30, "audio": 30, "text": 30}
    again = cli("copy", local, lite)
    assert again.code == 1 and again.err.count("\n") == 1 and "--replace" in again.err
    assert cli("copy", local, lite, "--replace").code == 0
    assert cli("copy", lite, back).code == 0
    info = json.loads(cli("info", "-c", back, "--json").out)["collection"]
    assert info["model_spec"] == "builtin" and info["modalities"]["audio"]["items"] == 30
    rec = records[7]
    for args in ([rec["text"][1]], ["--audio", mworld / rec["audio"]]):
        for target in MODS:
            original = _search(cli, local, *args, "--to", target, "-k", 6)[target]
            _same(_search(cli, back, *args, "--to", target, "-k", 6)[target], original, tol=1e-6)
            _same(_search(cli, lite, *args, "--to", target, "-k", 6)[target], original)
    # nothing embedded again: an index run over the copy finds every file unchanged
    report = json.loads(cli("index", mworld, "-c", lite, "--workers", 0, "--json").out)
    assert (report["unchanged"], report["vectors_added"]) == (90, {})


def test_coded_errors(cli, mworld, tmp_path, monkeypatch):
    r = cli("index", mworld, "-c", f"milvus-lite:{tmp_path / 'pq.db'}", "--index-factory", "IVF64,PQ8",
            "--model", "builtin", "--workers", 0, "--json")
    assert r.code == 2 and json.loads(r.out)["error"]["code"] == "store.unsupported_index"
    assert r.err.count("\n") == 1 and "--index-factory" in r.err
    r = cli("search", "x", "-c", f"milvus-lite:{tmp_path / 'nodb'}")
    assert r.code == 2 and "must end in .db" in r.err
    r = cli("search", "x", "-c", f"milvus-lite:{tmp_path / 'none.db'}", "--json")
    assert r.code == 1 and json.loads(r.out)["error"]["code"] == "collection.missing"
    from xsearch.index.milvus import connection

    monkeypatch.setattr(connection, "CONNECT_TIMEOUT_S", 1.0)
    monkeypatch.setenv("XSEARCH_STORE_TOKEN", "")
    r = cli("info", "-c", "milvus://127.0.0.1:9/photos", "--milvus-token", "user:secret", "--json")
    assert r.code == 1 and json.loads(r.out)["error"]["code"] == "store.unreachable", r.out
    import os

    assert os.environ["XSEARCH_STORE_TOKEN"] == "user:secret"  # the old flag still works (test_cli_store_token.py)


def test_serve_api_on_milvus_lite(lite, local, records):
    """`xsearch serve -c milvus-lite:…`: the HTTP API answers from the Milvus store as from the local one."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from xsearch.server import create_app

    rec = next(r for r in records if r["split"] == "test")
    app = create_app({"m": lite[0], "l": local}, warm=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        got = {}
        for name in ("m", "l"):
            params = {"q": rec["text"][0], "to": "all", "mode": "vector", "limit": 5}  # vectors
            body = client.get(f"/api/collections/{name}/search", params=params)
            assert body.status_code == 200, body.text
            got[name] = {t: [h["path"] for h in hits] for t, hits in body.json()["results"].items()}
        assert got["m"] == got["l"] and set(got["m"]) == set(MODS)
        hit = client.get("/api/collections/m/search", params={"q": rec["text"][0], "limit": 1}).json()
        media = client.get(hit["results"]["image"][0]["media_url"])
        assert media.status_code == 200 and media.headers["content-type"] == "image/png"
        stats = client.get("/api/collections/m").json()
        assert {m: stats["modalities"][m]["files"] for m in MODS} == {m: 30 for m in MODS}


def test_tag_matches_the_local_store(cli, lite, local, tmp_path):
    """`xsearch tag` and `--tag` on milvus-lite give the local store's tags and filtered results."""
    import shutil

    own = tmp_path / "local"
    shutil.copytree(local, own)  # the module's local collection stays untagged
    reports = {}
    for name, uri in (("m", lite[0]), ("l", str(own))):
        r = cli("tag", "-c", uri, "--labels", "red, green, blue", "--top", 1, "--json")
        assert r.code == 0, r.err
        reports[name] = json.loads(r.out)
    assert reports["m"]["tag_counts"] == reports["l"]["tag_counts"] and reports["m"]["tagged"] == 90
    label = max(reports["m"]["tag_counts"], key=reports["m"]["tag_counts"].get)
    got = {name: _search(cli, uri, "a shape", "--to", "all", "--tag", label, "-k", 30)
           for name, uri in (("m", lite[0]), ("l", str(own)))}
    assert sum(map(len, got["m"].values())) == reports["m"]["tag_counts"][label]
    for target in MODS:
        assert [h["path"] for h in got["m"][target]] == [h["path"] for h in got["l"][target]]
    info = json.loads(cli("info", "-c", lite[0], "--json").out)["collection"]
    assert info["tags"] == reports["m"]["tag_counts"]


def test_remove(cli, lite, mworld, records):
    """Last: it changes the shared collection (and puts the file back)."""
    uri = lite[0]
    image = str(mworld / records[2]["image"])
    r = cli("remove", image, "-c", uri)
    assert r.code == 0 and "removed 1 file" in r.out
    hits = _search(cli, uri, "--image", image, "--to", "image", "-k", 29)["image"]
    assert image not in [h["path"] for h in hits]
    assert json.loads(cli("info", "-c", uri, "--json").out)["collection"]["modalities"]["image"]["files"] == 29
    assert cli("remove", image, "-c", uri).code == 2  # nothing left to remove
    report = json.loads(cli("index", mworld, "-c", uri, "--workers", 0, "--json").out)
    assert (report["added"], report["vectors_added"]) == (1, {"image": 1})
