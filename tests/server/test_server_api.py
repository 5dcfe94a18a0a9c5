"""`xsearch serve`'s HTTP API through FastAPI's test client: every endpoint, every error status, hostile media
requests (path traversal, removed items, bad ids), upload limits, and searches while an index run commits."""

from __future__ import annotations

import io
import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("multipart", reason="the serve extra is not installed: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402

from xsearch.server import Limits, create_app  # noqa: E402

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def thumbs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("thumbs")


@pytest.fixture(scope="module")
def client(indexed, thumbs):
    app = create_app({"world": str(indexed)}, thumbs_dir=thumbs)
    with TestClient(app, base_url=BASE) as c:
        yield c


def _app_client(collections, **kwargs) -> TestClient:
    return TestClient(create_app(collections, warm=False, **kwargs), base_url=BASE, raise_server_exceptions=False)


def _error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "params"} <= set(body["error"])
    assert "Traceback" not in response.text and 'File "' not in response.text
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def _search(client, **params):
    return client.get("/api/collections/world/search", params=params)


def _group(path: str) -> str:
    return Path(path).stem


# -- collections --------------------------------------------------------------------------------------------------


def test_collections_list_and_info(client):
    body = client.get("/api/collections").json()
    [entry] = body["collections"]
    assert entry["name"] == "world" and entry["exists"] and entry["model_spec"] == "builtin"
    assert entry["files"] == {"audio": 90, "image": 90, "text": 90}
    info = client.get("/api/collections/world").json()
    assert info["name"] == "world" and info["modalities"]["image"]["files"] == 90


def test_missing_and_unknown_collections(world, tmp_path):
    with _app_client({"gone": str(tmp_path / "nothing")}) as c:
        [entry] = c.get("/api/collections").json()["collections"]
        assert entry == {"name": "gone", "exists": False, "files": {}, "model_spec": None, "error": None}
        _error(c.get("/api/collections/gone/search", params={"q": "a red circle"}), 404, "collection.missing")
        _error(c.get("/api/collections/gone"), 404, "collection.missing")
        _error(c.get("/api/collections/other/search", params={"q": "x"}), 404, "collection.unknown")


def test_openapi_page_and_static(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/collections", "/api/collections/{name}", "/api/collections/{name}/search",
                 "/api/collections/{name}/items/{item_id}", "/api/collections/{name}/items/{item_id}/media",
                 "/api/collections/{name}/items/{item_id}/thumb", "/api/collections/{name}/items/{item_id}/passage",
                 "/api/collections/{name}/duplicates", "/api/uploads", "/api/uploads/{upload_id}"):
        assert path in spec["paths"], path
    assert set(spec["paths"]["/api/collections/{name}/search"]) == {"get", "post"}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<input id="q"' in page.text
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        r = client.get(asset)
        assert r.status_code == 200 and kind in r.headers["content-type"]
    assert client.get("/api/collections").headers["x-content-type-options"] == "nosniff"


def test_api_docs_load_nothing_from_elsewhere(client):
    """/docs works offline: every script, style and icon it names is served by xsearch itself."""
    import re

    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text) + re.findall(r"(?:src|href)='([^']+)'", r.text)
    assert assets and all(a.startswith("/static/api-docs/") for a in assets), assets
    assert "cdn." not in r.text and "fonts.googleapis" not in r.text
    served = set()
    for a in assets:
        got = client.get(a)
        assert got.status_code == 200 and len(got.content) > 1000, a
        served.add(got.headers["content-type"].split(";")[0])
    assert all(any(k in t for t in served) for k in ("javascript", "text/css", "image/png")), served


# -- search -------------------------------------------------------------------------------------------------------


def test_text_to_image(client, manifest_records):
    record = next(r for r in manifest_records if r["split"] == "test")
    body = _search(client, q=record["text"][0], limit=5).json()
    assert body["to"] == ["image"] and body["offset"] == 0 and body["limit"] == 5 and body["has_more"]["image"]
    hits = body["results"]["image"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert _group(record["image"]) in [_group(h["path"]) for h in hits]
    h = hits[0]
    assert h["modality"] == "image" and h["name"] == Path(h["path"]).name and h["width"] == 128
    assert h["media_url"] == f"/api/collections/world/items/{h['item_id']}/media"
    assert h["thumb_url"] == f"/api/collections/world/items/{h['item_id']}/thumb" and h["passage_url"] is None
    assert body["queries"] == [{"kind": "text", "modality": "text", "value": record["text"][0], "upload": None,
                                "item_id": None, "weight": 1.0}]


def test_to_all_and_audio_fields(client):
    body = _search(client, q="two large blue stars", to="all", limit=3).json()
    assert body["to"] == ["image", "audio", "text"]
    audio = body["results"]["audio"][0]
    assert audio["offset"] == 0.0 and audio["duration"] == pytest.approx(2.0, abs=0.05)
    assert audio["thumb_url"] is None and audio["passage_url"] is None
    text = body["results"]["text"][0]
    assert text["snippet"] and text["passage_url"].endswith("/passage")


def test_pagination_is_one_ranking(client):
    whole = _search(client, q="a green square", limit=30).json()["results"]["image"]
    pages = []
    for offset in (0, 10, 20):
        body = _search(client, q="a green square", limit=10, offset=offset).json()
        assert body["has_more"]["image"]
        pages += body["results"]["image"]
    assert [h["item_id"] for h in pages] == [h["item_id"] for h in whole]
    assert [h["rank"] for h in pages] == list(range(1, 31))
    last = _search(client, q="a green square", limit=20, offset=80).json()
    assert len(last["results"]["image"]) == 10 and not last["has_more"]["image"]
    assert _search(client, q="a green square", limit=20, offset=90).json()["results"]["image"] == []
    _error(_search(client, q="x", limit=500), 400, "usage.bad_limit")
    _error(_search(client, q="x", limit=100, offset=950), 400, "usage.bad_window")
    _error(_search(client, q="x", limit=0), 422, "usage.bad_request")
    _error(_search(client, q="x", offset=-1), 422, "usage.bad_request")


def test_upload_image_then_search_audio(client, world, manifest_records):
    record = next(r for r in manifest_records if r["split"] == "test")
    data = (world / record["image"]).read_bytes()
    up = client.post("/api/uploads", files={"file": ("holiday.wav", data, "audio/wav")})  # the name lies
    assert up.status_code == 200, up.text
    body = up.json()
    assert body["modality"] == "image" and body["content_type"] == "image/png" and body["name"] == "holiday.wav"
    assert client.get(body["url"]).content == data
    res = _search(client, upload=body["id"], to="audio", limit=5).json()
    assert res["queries"][0] == {"kind": "upload", "modality": "image", "upload": body["id"], "value": "holiday.wav",
                                 "item_id": None, "weight": 1.0}
    assert _group(record["audio"]) in [_group(h["path"]) for h in res["results"]["audio"]]


def test_post_audio_file_to_image(client, world, manifest_records):
    record = next(r for r in manifest_records if r["split"] == "test")
    data = (world / record["audio"]).read_bytes()
    r = client.post("/api/collections/world/search", params={"to": "image", "limit": 5},
                    files={"file": ("clip.png", data, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queries"][0]["modality"] == "audio"
    assert _group(record["image"]) in [_group(h["path"]) for h in body["results"]["image"]]


def test_several_queries_weights_and_fusion(client, world, manifest_records):
    record = manifest_records[3]
    up = client.post("/api/uploads", files={"file": ("q.png", (world / record["image"]).read_bytes())}).json()
    for fusion in ("mean", "weighted", "rrf", "vote"):
        body = _search(client, q=["a red circle", "stars"], upload=up["id"], weights="1,-0.5,2", fusion=fusion,
                       to="text", limit=4).json()
        assert body["fusion"] == fusion and len(body["results"]["text"]) == 4
        assert [q["weight"] for q in body["queries"]] == [1.0, -0.5, 2.0]
    _error(_search(client, q=["a", "b"], weights="1"), 400, "usage.weights_count")
    _error(_search(client, q="a", weights="x,y"), 400, "usage.bad_weights")
    _error(_search(client, q="a", fusion="median"), 400, "usage.bad_fusion")
    _error(_search(client, q=["t"] * 9), 400, "usage.too_many_queries")


def test_more_like_this(client):
    first = _search(client, q="three small yellow triangles", limit=1).json()["results"]["image"][0]
    body = _search(client, like=first["item_id"], to="image", limit=5).json()
    assert body["queries"][0]["kind"] == "like" and body["queries"][0]["item_id"] == first["item_id"]
    assert first["path"] not in [h["path"] for h in body["results"]["image"]]
    assert len(body["results"]["image"]) == 5
    every = _search(client, like=first["item_id"], to="all", limit=5).json()
    assert set(every["to"]) == {"image", "audio", "text"}
    assert _group(first["path"]) in [_group(h["path"]) for h in every["results"]["audio"]]  # its own sound
    filtered = _search(client, like=first["item_id"], to="image", path_glob="*/image/*", limit=5).json()
    assert first["path"] not in [h["path"] for h in filtered["results"]["image"]]
    assert [h["rank"] for h in filtered["results"]["image"]] == [1, 2, 3, 4, 5]
    text_item = _search(client, q="a red circle", to="text", limit=1).json()["results"]["text"][0]
    mixed = _search(client, like=text_item["item_id"], q="stars", to="image", limit=3).json()
    assert len(mixed["results"]["image"]) == 3
    _error(_search(client, like=10**12), 404, "item.missing")
    _error(_search(client, like=2**70), 400, "usage.bad_value")
    _error(_search(client, like="abc"), 422, "usage.bad_request")


def test_filters_and_threshold(client):
    body = _search(client, q="a circle", path_glob="g00000*", limit=20).json()
    assert body["results"]["image"] and all(h["name"].startswith("g00000") for h in body["results"]["image"])
    body = _search(client, q="a circle", to="all", min_duration=1.5, limit=5).json()
    assert body["results"]["image"] == [] and body["results"]["audio"]
    assert _search(client, q="a circle", since="2999-01-01").json()["results"]["image"] == []
    assert _search(client, q="a circle", until="9999-01-01", limit=3).json()["results"]["image"]
    assert _search(client, q="a circle", min_size=10**9).json()["results"]["image"] == []
    high = _search(client, q="a circle", threshold=0.99).json()["results"]["image"]
    assert all(h["score"] >= 0.99 for h in high)
    _error(_search(client, q="a circle", since="last tuesday"), 400, "usage.bad_filter")
    _error(_search(client, q="a circle", min_duration=-1), 422, "usage.bad_request")
    _error(_search(client, q="a circle", threshold="nan"), 400, "usage.bad_threshold")
    _error(_search(client, q="a circle", nprobe=0), 400, "usage.bad_search_param")


def test_query_errors(client):
    _error(client.get("/api/collections/world/search"), 400, "query.none")
    _error(_search(client, q="   "), 400, "query.empty")
    _error(_search(client, q="x", to="smell"), 400, "usage.bad_target")
    _error(_search(client, q="x", to="video"), 404, "collection.no_items")
    _error(_search(client, upload="AAAAAAAAAAAAAAAAAAAA"), 404, "upload.missing")
    _error(_search(client, upload="../../../etc/passwd"), 404, "upload.missing")


# -- items and media ----------------------------------------------------------------------------------------------


def _first(client, to: str) -> dict:
    return _search(client, q="two large red circles", to=to, limit=1).json()["results"][to][0]


def test_item_metadata_and_passage(client, world):
    text = _first(client, "text")
    item = client.get(f"/api/collections/world/items/{text['item_id']}").json()
    assert item["path"] == text["path"] and item["modality"] == "text" and item["rank"] == 0
    passage = client.get(text["passage_url"]).json()
    assert passage["index"] == 0 and passage["passage"] == Path(text["path"]).read_text().strip()
    image = _first(client, "image")
    _error(client.get(f"/api/collections/world/items/{image['item_id']}/passage"), 404, "media.none")


def test_thumbnails_are_cached_jpegs(client, thumbs):
    from PIL import Image

    image = _first(client, "image")
    r = client.get(image["thumb_url"], params={"size": 64})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.format == "JPEG" and max(im.size) == 128  # the source is 128 px; thumbnails never upscale
    cached = list(thumbs.rglob(f"{image['item_id']}-*-128.jpg"))
    assert len(cached) == 1
    assert client.get(image["thumb_url"], params={"size": 100}).content == cached[0].read_bytes()
    audio = _first(client, "audio")
    _error(client.get(f"/api/collections/world/items/{audio['item_id']}/thumb"), 404, "media.none")
    _error(client.get(image["thumb_url"], params={"size": 5000}), 422, "usage.bad_request")


def test_media_content_types_and_range(client):
    audio = _first(client, "audio")
    data = Path(audio["path"]).read_bytes()
    full = client.get(audio["media_url"])
    assert full.status_code == 200 and full.headers["content-type"] == "audio/wav" and full.content == data
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(audio["media_url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(audio["media_url"], headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    assert client.get(audio["media_url"], headers={"Range": f"bytes={len(data) + 5}-"}).status_code == 416
    image = _first(client, "image")
    assert client.get(image["media_url"]).headers["content-type"] == "image/png"
    text = _first(client, "text")
    r = client.get(text["media_url"])
    assert r.headers["content-type"] == "text/plain; charset=utf-8" and r.content == Path(text["path"]).read_bytes()


@pytest.mark.parametrize("path", [
    "/api/collections/world/items/..%2F..%2F..%2Fetc%2Fpasswd/media",
    "/api/collections/world/items/../../../../etc/passwd",
    "/api/collections/world/items/%2Fetc%2Fpasswd/media",
    "/api/collections/world/items//etc/passwd/media",
    "/api/collections/..%2F..%2Fetc/items/1/media",
    "/api/collections/world/items/1%2F..%2F..%2Fpasswd/media",
    "/static/../pyproject.toml",
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/..%2F..%2Fpyproject.toml",
    "/api/uploads/..%2F..%2Fetc%2Fpasswd",
])
def test_path_traversal_is_refused(client, path):
    r = client.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert "root:" not in r.text and "[project]" not in r.text
    _error(r, r.status_code)


@pytest.mark.parametrize("item_id, status", [("abc", 422), ("1.5", 422), ("-1", 422), ("1e3", 422),
                                             (str(2**70), 422), ("999999999", 404)])
def test_bad_item_ids(client, item_id, status):
    for what in ("", "/media", "/thumb", "/passage"):
        _error(client.get(f"/api/collections/world/items/{item_id}{what}"), status)


def test_duplicates(client):
    body = client.get("/api/collections/world/duplicates", params={"threshold": 0.5, "limit": 3}).json()
    assert body["modality"] == "image" and len(body["pairs"]) <= 3 and body["total"] >= len(body["pairs"])
    assert all(p["score"] >= 0.5 and p["a"] != p["b"] for p in body["pairs"])
    _error(client.get("/api/collections/world/duplicates", params={"threshold": 1.5}), 422, "usage.bad_request")
    _error(client.get("/api/collections/world/duplicates", params={"modality": "smell"}), 400, "usage.bad_target")


def test_rerank(client, indexed):
    from xsearch.core.types import Query
    from xsearch.engine import Engine

    plain = _search(client, q="two large red circles", to="image", limit=5).json()
    assert plain["rerank"] is None and all("retrieval_score" not in h for h in plain["results"]["image"])
    body = _search(client, q="two large red circles", to="image", limit=5, rerank="true").json()
    assert body["rerank"]["parameters"] > 0 and "path" not in body["rerank"]
    hits = body["results"]["image"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5] and all("retrieval_score" in h for h in hits)
    want = Engine(indexed).search([Query("text", "two large red circles")], to="image", k=5, rerank=True)["image"]
    assert [h["path"] for h in hits] == [h.path for h in want]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in want], abs=1e-5)
    first = hits[0]  # "more like this" re-ranked takes the search path, not the plain similar-item one
    liked = _search(client, like=first["item_id"], to="image", limit=3, rerank="true").json()
    assert liked["rerank"] and first["path"] not in [h["path"] for h in liked["results"]["image"]]
    _error(_search(client, q="x", rerank="maybe"), 422, "usage.bad_request")


def test_tags_and_the_tag_filter(indexed, thumbs, tmp_path):
    from xsearch.core.types import Filters, Query
    from xsearch.engine import Engine

    col = tmp_path / "world"
    shutil.copytree(indexed, col)  # the session's collection stays untagged
    with TestClient(create_app({"world": str(col)}, thumbs_dir=thumbs), base_url=BASE) as client:
        url = "/api/collections/world/tags"
        labels = ["red", "green", "blue", "yellow"]
        report = client.post(url, json={"labels": labels, "top": 1}).json()
        assert report["labels"] == labels and report["files"] == report["tagged"] > 0
        assert sum(report["tag_counts"].values()) == report["tagged"]
        assert client.get("/api/collections/world").json()["tags"] == report["tag_counts"]
        label = max(report["tag_counts"], key=report["tag_counts"].get)
        body = _search(client, q="a circle", to="all", tag=label, limit=90).json()
        got = {t: [h["path"] for h in hits] for t, hits in body["results"].items()}
        assert sum(map(len, got.values())) == report["tag_counts"][label]
        want = Engine(col).search([Query("text", "a circle")], to="all", k=90, filters=Filters(tag=label))
        assert got == {t: [h.path for h in hits] for t, hits in want.items()}
        assert _search(client, q="a circle", tag="no such tag").json()["results"]["image"] == []
        again = client.post(url, json={"labels": "red, blue", "top": 2, "min_score": 2.0}).json()
        assert again["tagged"] == 0 and client.get("/api/collections/world").json()["tags"] == {}
        _error(client.post(url, json={"labels": " , "}), 400, "tag.no_labels")
        _error(client.post(url, json={"labels": ["red"], "top": 0}), 400)
        # a form or plain-text body (what another web page can send without asking) is not a tag request
        _error(client.post(url, content=b'{"labels": ["red"]}', headers={"content-type": "text/plain"}), 422)
        _error(client.post("/api/collections/nope/tags", json={"labels": ["red"]}), 404)


# -- uploads ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, what", [(b"just some words, not a picture\n", "text"), (b"", "empty"),
                                        (b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", "a PDF document")])
def test_uploads_are_sniffed(client, data, what):
    err = _error(client.post("/api/uploads", files={"file": ("photo.jpg", data, "image/jpeg")}), 415,
                 "upload.unsupported")
    assert what in err["message"] and "photo.jpg" in err["message"]


def test_uploads_follow_the_modality_registry(client):
    """An upload is any registered modality that has a content sniffer, and the refusal names them all: a modality
    registered later (a plugin) needs no server change."""
    from xsearch.media.modalities import Modality, register, unregister

    pdf = b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n"
    err = _error(client.post("/api/uploads", files={"file": ("doc.pdf", pdf)}), 415, "upload.unsupported")
    assert "is not an image, a sound or a video clip xsearch can read" in err["message"]
    from xsearch.media.types import Segment

    register(Modality("depthmap", extensions={".depth"}, decoder=lambda f, opts: [Segment(None, 0.0, {})],
                      sniff=lambda head: head.startswith(b"DEPTH")))
    try:
        up = client.post("/api/uploads", files={"file": ("scan.bin", b"DEPTH" + b"\0" * 64)})
        assert up.status_code == 200 and up.json()["modality"] == "depthmap", up.text
        err = _error(client.post("/api/uploads", files={"file": ("doc.pdf", pdf)}), 415, "upload.unsupported")
        assert "is not an image, a sound, a video clip or a depthmap file xsearch can read" in err["message"]
    finally:
        unregister("depthmap")


def test_corrupt_image_upload(client):
    """Refused when uploaded (decoded as a search would), not later at search time."""
    err = _error(client.post("/api/uploads", files={"file": ("bad.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)}), 422,
                 "query.bad_file")
    assert "bad.png" in err["message"] and "xsearch-uploads" not in str(err)


def test_oversized_uploads(indexed, world):
    limits = Limits(upload_bytes=100 * 1024, upload_seconds=1.0)
    with _app_client({"world": str(indexed)}, limits=limits) as c:
        big = b"\x89PNG\r\n\x1a\n" + b"\0" * 250_000
        err = _error(c.post("/api/uploads", files={"file": ("big.png", big)}), 413, "upload.too_large")
        assert err["message"] == "the upload is larger than the 100 KB limit"
        _error(c.post("/api/collections/world/search", files={"file": ("big.png", big)}), 413, "upload.too_large")

        def chunks():  # no Content-Length: the limit is counted as the body streams in
            yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\r\n"
            for _ in range(30):
                yield b"\0" * 10_000
            yield b"\r\n--b--\r\n"

        r = c.post("/api/uploads", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
        _error(r, 413, "upload.too_large")
        wav = next((world / "audio").iterdir()).read_bytes()  # 2 s of sound, over the 1 s limit
        err = _error(c.post("/api/uploads", files={"file": ("long.wav", wav)}), 413, "upload.too_long")
        assert "at most 1 s" in err["message"]
        small = next((world / "image").iterdir()).read_bytes()
        assert c.post("/api/uploads", files={"file": ("ok.png", small)}).status_code == 200
        r = c.post("/api/uploads", content=b"x" * 10, headers={"Content-Length": "banana",
                                                              "Content-Type": "multipart/form-data; boundary=b"})
        _error(r, 400, "usage.bad_request")


def test_uploads_stay_in_their_temp_folder(indexed, world):
    limits = Limits(uploads_kept=2)
    app = create_app({"world": str(indexed)}, limits=limits, warm=False)
    data = next((world / "image").iterdir()).read_bytes()
    with TestClient(app, base_url=BASE) as c:
        ids = [c.post("/api/uploads", files={"file": (name, data)}).json()["id"]
               for name in ("../../evil.png", "/etc/passwd.png", "a\\..\\b.png")]
        folder = app.state.xs.uploads.dir
        kept = sorted(p.name for p in folder.iterdir())
        assert kept == sorted(f"{i}.png" for i in ids[1:])  # the oldest went; names are ids, never the client's
        _error(c.get(f"/api/uploads/{ids[0]}"), 404, "upload.missing")
        assert c.get(f"/api/uploads/{ids[2]}").content == data
    assert not folder.exists()  # the folder goes with the server


# -- access -------------------------------------------------------------------------------------------------------


def test_token(indexed):
    with _app_client({"world": str(indexed)}, token="s3cret") as c:
        err = _error(c.get("/api/collections"), 401, "auth.required")
        assert "token" in err["message"]
        assert c.get("/api/collections").headers["www-authenticate"] == "Bearer"
        _error(c.get("/api/collections", headers={"Authorization": "Bearer nope"}), 401, "auth.bad_token")
        assert c.get("/api/collections", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        c.cookies.set("xsearch_token", "s3cret")
        assert c.get("/api/collections").status_code == 200
        c.cookies.clear()
        assert c.get("/").status_code == 200  # the page itself holds no data


def test_host_check(indexed):
    with _app_client({"world": str(indexed)}, hosts=["localhost", "127.0.0.1", "::1"]) as c:
        assert c.get("/api/collections").status_code == 200
        assert c.get("/api/collections", headers={"Host": "[::1]:8000"}).status_code == 200
        _error(c.get("/api/collections", headers={"Host": "attacker.example:8000"}), 400, "http.bad_host")


# -- failures -----------------------------------------------------------------------------------------------------


def test_unexpected_errors_are_500_without_a_traceback(indexed, monkeypatch):
    from xsearch.engine import Engine

    def boom(self, *args, **kwargs):
        raise RuntimeError("secret internals /etc/shadow")

    monkeypatch.setattr(Engine, "search", boom)
    with _app_client({"world": str(indexed)}) as c:
        err = _error(c.get("/api/collections/world/search", params={"q": "x"}), 500, "internal")
        assert "secret" not in err["message"]
        _error(c.post("/api/collections/world/items/1"), 405, "http.405")
        _error(c.get("/nowhere"), 404, "http.404")


def test_an_errors_hint_reaches_the_client(indexed, monkeypatch):
    """A hint from the layer that raised an error (a store naming its server) is in the body; other bodies have
    none."""
    from xsearch.core.errors import CollectionError
    from xsearch.engine import Engine

    def unreachable(self, *args, **kwargs):
        raise CollectionError("cannot reach the store", code="store.unreachable", hint="check that it runs")

    with _app_client({"world": str(indexed)}) as c:
        assert "hint" not in _error(c.get("/api/collections/nope"), 404, "collection.unknown")
        monkeypatch.setattr(Engine, "search", unreachable)
        err = _error(c.get("/api/collections/world/search", params={"q": "x"}), 500, "store.unreachable")
        assert err["hint"] == "check that it runs" and err["message"] == "cannot reach the store"


def test_busy_server_answers_503(indexed):
    app = create_app({"world": str(indexed)}, limits=Limits(concurrency=1, busy_wait_s=0.05), warm=False)
    with TestClient(app, base_url=BASE) as c:
        with app.state.xs.collections.slot():
            r = c.get("/api/collections/world/search", params={"q": "x"})
            err = _error(r, 503, "server.busy")
            assert r.headers["retry-after"] == "2" and "busy" in err["message"]
        assert c.get("/api/collections/world/search", params={"q": "x"}).status_code == 200


# -- a concurrent index run -----------------------------------------------------------------------------------------


def _copy_groups(world: Path, records: list[dict], folder: Path) -> None:
    for r in records:
        for key in ("image", "audio", "text_file"):
            target = folder / r[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(world / r[key], target)


def test_searches_while_an_index_run_commits(world, manifest_records, tmp_path):
    from xsearch.engine import Engine

    folder, col = tmp_path / "media", tmp_path / "col"
    _copy_groups(world, manifest_records[:12], folder)
    Engine(col, model="builtin").index_folder(folder, workers=0)
    app = create_app({"live": str(col)}, thumbs_dir=tmp_path / "thumbs")
    statuses, errors, done = [], [], threading.Event()
    with TestClient(app, base_url=BASE) as c:
        assert c.get("/api/collections").json()["collections"][0]["files"]["image"] == 12

        def hammer(i: int) -> None:
            while not done.is_set() or len(statuses) < 40:
                r = c.get("/api/collections/live/search", params={"q": f"a red circle {i}", "to": "all", "limit": 5})
                statuses.append(r.status_code)
                if r.status_code != 200:
                    errors.append(r.text)

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            _copy_groups(world, manifest_records[12:40], folder)
            report = Engine(col).index_folder(folder, workers=0, files_per_batch=8)  # commits batch by batch
        finally:
            done.set()
            for t in threads:
                t.join(timeout=60)
        assert report.added == 3 * 28
        assert not errors and len(statuses) >= 40
        deadline = time.monotonic() + 10
        while c.get("/api/collections").json()["collections"][0]["files"]["image"] != 40:
            assert time.monotonic() < deadline, "the server never saw the new commit"
            time.sleep(0.1)
        newest = manifest_records[39]
        body = c.get("/api/collections/live/search", params={"q": newest["text"][0], "limit": 40}).json()
        assert len(body["results"]["image"]) == 40

        # a file deleted from disk: its media is gone (404), and once the index prunes it, so is its item
        item = c.get("/api/collections/live/search", params={"q": "x", "path_glob": Path(newest["image"]).name}
                     ).json()["results"]["image"][0]
        (folder / newest["image"]).unlink()
        _error(c.get(item["media_url"]), 404, "media.gone")
        _error(c.get(item["thumb_url"]), 404, "media.gone")
        Engine(col).index_folder(folder, workers=0)
        for what in ("", "/media", "/thumb"):
            _error(c.get(f"/api/collections/live/items/{item['item_id']}{what}"), 404, "item.missing")
        _error(c.get("/api/collections/live/search", params={"like": item["item_id"]}), 404, "item.missing")


def test_content_type_and_audio_windows_of_a_long_file(world, manifest_records, tmp_path):
    import numpy as np
    import soundfile as sf

    from xsearch.engine import Engine

    folder, col = tmp_path / "media", tmp_path / "col"
    folder.mkdir()
    shutil.copy(world / manifest_records[0]["image"], folder / "really-a-png.jpg")
    waves = [sf.read(world / r["audio"], dtype="float32") for r in manifest_records[:4]]
    sf.write(folder / "long.wav", np.concatenate([w for w, _ in waves]), waves[0][1])  # 4 sounds, 8 s
    shutil.copy(world / manifest_records[2]["image"], folder / "third.png")
    Engine(col, model="builtin").index_folder(folder, workers=0)
    with _app_client({"c": str(col)}) as c:
        hit = c.get("/api/collections/c/search", params={"q": "x", "path_glob": "*.jpg"}).json()["results"]["image"][0]
        assert hit["name"] == "really-a-png.jpg"
        assert c.get(hit["media_url"]).headers["content-type"] == "image/png"
        third = c.get("/api/collections/c/search", params={"q": "x", "path_glob": "third.png"}).json()
        body = c.get("/api/collections/c/search", params={"like": third["results"]["image"][0]["item_id"],
                                                          "to": "audio"}).json()
        [sound] = body["results"]["audio"]  # the best window of the one sound: where the third group's sound is
        assert sound["name"] == "long.wav" and sound["duration"] == pytest.approx(8.0, abs=0.01)
        assert 3.0 <= sound["offset"] <= 5.0 and sound["end"] > sound["offset"]
        size = (folder / "long.wav").stat().st_size
        r = c.get(sound["media_url"], headers={"Range": f"bytes={size // 2}-"})
        assert r.status_code == 206 and len(r.content) == size - size // 2


# -- the command --------------------------------------------------------------------------------------------------


def test_serve_command_refuses_a_busy_port(cli, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("serve", "-c", tmp_path / "none", "--port", port)
    assert r.code == 1 and "cannot listen on 127.0.0.1" in r.err and "Traceback" not in r.err
    assert f"try --port {port + 1}" in r.err
    assert "no collection there yet" not in r.err  # the port is checked before any collection is loaded


def test_serve_command_warns_off_localhost(cli, tmp_path):
    from xsearch.cli.serve_cmd import _is_local

    assert _is_local("127.0.0.1") and _is_local("::1") and _is_local("localhost") and _is_local("127.0.0.2")
    assert not _is_local("0.0.0.0") and not _is_local("192.168.1.5")
    r = cli("serve", "-c", tmp_path / "none", "--host", "256.1.1.1", "--port", 8000)
    assert r.code == 1 and "warning: listening on 256.1.1.1" in r.err and "--token" in r.err
