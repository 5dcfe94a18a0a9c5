"""Hostile writes to `xsearch serve` (issue #26 items 2, 3, 8, 9, 15): a page of another site posting uploads or
searches (a browser sends a form or ``no-cors`` POST anywhere and only hides the answer), uploads that would fill
the disk, a search with more files than it may use, refused uploads naming server paths, HTTP Range errors,
tagging with unbounded labels, and validation errors that echo megabytes back."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402

from tests.helpers.media import png_claiming_size  # noqa: E402
from xsearch.server import Limits, create_app  # noqa: E402

BASE = "http://127.0.0.1"


def _client(indexed, **kwargs) -> TestClient:
    return TestClient(create_app({"world": str(indexed)}, warm=False, **kwargs), base_url=BASE,
                      raise_server_exceptions=False)


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture(scope="module")
def png(world) -> bytes:
    return sorted((world / "image").glob("*.png"))[0].read_bytes()


def _kept(client) -> list:
    return list(client.app.state.xs.uploads._kept.values())


# -- item 2: cross-site writes are refused before anything is stored -----------------------------------------------

@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:9999"},  # another port is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1"},
])
def test_cross_site_uploads_and_searches_are_refused(indexed, png, headers):
    with _client(indexed) as c:
        _error(c.post("/api/uploads", files={"file": ("a.png", png)}, headers=headers), 403, "http.cross_origin")
        _error(c.post("/api/collections/world/search", files={"file": ("a.png", png)}, headers=headers), 403,
               "http.cross_origin")
        assert _kept(c) == [] and not any(c.app.state.xs.uploads.dir.iterdir())


def test_same_origin_and_non_browser_writes_still_work(indexed, png):
    with _client(indexed) as c:
        for headers in ({}, {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}):
            r = c.post("/api/uploads", files={"file": ("a.png", png)}, headers=headers)
            assert r.status_code == 200, r.text
        assert c.get("/api/collections/world/search", params={"q": "red"},
                     headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # reading is not a write


def test_a_search_with_too_many_files_stores_none_of_them(indexed, png):
    with _client(indexed) as c:
        keep = c.post("/api/uploads", files={"file": ("mine.png", png)}).json()["id"]
        files = [("file", (f"{i}.png", png)) for i in range(20)]
        _error(c.post("/api/collections/world/search", files=files), 400, "usage.too_many_queries")
        assert [u.id for u in _kept(c)] == [keep]
        assert c.get(f"/api/uploads/{keep}").status_code == 200


def test_the_upload_area_is_capped_in_bytes(indexed, png):
    limits = Limits(uploads_total_bytes=3 * len(png) + 10)
    with _client(indexed, limits=limits) as c:
        ids = [c.post("/api/uploads", files={"file": (f"{i}.png", png)}).json()["id"] for i in range(6)]
        kept = _kept(c)
        assert sum(u.size for u in kept) <= limits.uploads_total_bytes
        assert [u.id for u in kept] == ids[-3:]
        assert len(list(c.app.state.xs.uploads.dir.iterdir())) == 3
        _error(c.get(f"/api/uploads/{ids[0]}"), 404, "upload.missing")


# -- item 8: an upload the engine cannot read is refused when uploaded, under the client's own name -----------------

def _wav(sample_rate: int, channels: int = 1, frames: int = 800) -> bytes:
    import struct

    data = b"\x01\x00" * channels * frames
    block = channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, min(sample_rate * block, 2**32 - 1), block, 16)
    return b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + \
        struct.pack("<I", len(data)) + data


def _gif_polyglot(png: bytes) -> bytes:
    """A GIF header glued to another file's bytes (a polyglot): sniffed as a GIF, undecodable as one."""
    return b"GIF89a" + b"\x10\x00\x10\x00\x80\x00\x00" + png


@pytest.mark.parametrize("name, make", [
    ("bomb.png", lambda png: png_claiming_size(100_000, 100_000)),
    ("rate0.wav", lambda png: _wav(0)),
    ("nochannels.wav", lambda png: _wav(16000, channels=0)),
    ("4ghz.wav", lambda png: _wav(4_000_000_000)),
    ("poly.gif", _gif_polyglot),
])
def test_unreadable_uploads_are_refused_at_upload_naming_the_clients_file(indexed, png, name, make):
    with _client(indexed) as c:
        for url in ("/api/uploads", "/api/collections/world/search"):
            r = c.post(url, files={"file": (name, make(png))})
            assert r.status_code in (413, 415, 422), (url, r.status_code, r.text[:300])
            err = r.json()["error"]
            assert name in err["message"], err
            text = json.dumps(err)
            assert "xsearch-uploads" not in text and "/tmp" not in text and ".part" not in text, text
        assert _kept(c) == [] and not any(c.app.state.xs.uploads.dir.iterdir())


def test_a_search_time_error_names_the_upload_not_its_server_path(indexed, png, monkeypatch):
    from xsearch.core.errors import MediaError
    from xsearch.engine import Engine

    def failing(self, queries, **kwargs):
        path = queries[-1].value
        raise MediaError(f"{path}: cannot decode", code="media.unreadable", path=str(path))

    monkeypatch.setattr(Engine, "search", failing)
    with _client(indexed) as c:
        up = c.post("/api/uploads", files={"file": ("holiday.png", png)}).json()
        err = _error(c.get("/api/collections/world/search", params={"upload": up["id"], "q": "x"}), 422,
                     "media.unreadable")
        assert err["message"].startswith("holiday.png") and err["params"]["path"] == "holiday.png", err


# -- items 4 and 7: `serve` settings that would silently mean "no authentication" or "no limit" ---------------------

@pytest.fixture
def no_serving(monkeypatch):
    """uvicorn's server loop replaced by a recorder, so a setting that is wrongly accepted fails the test at once
    instead of serving forever."""
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: started.append(True))
    return started


@pytest.mark.parametrize("args, env", [
    (["--token", ""], {}),
    (["--token", "   "], {}),
    ([], {"XSEARCH_TOKEN": ""}),
    (["--max-upload-mb", "inf"], {}),
    (["--max-upload-mb", "1e300"], {}),
    (["--max-upload-mb", "nan"], {}),
    (["--max-upload-mb", "0"], {}),
    (["--max-upload-seconds", "inf"], {}),
    (["--max-upload-seconds", "nan"], {}),
])
def test_serve_refuses_an_empty_token_and_unbounded_limits(cli, indexed, no_serving, monkeypatch, args, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    r = cli("serve", "-c", indexed, "--port", "59317", *args)
    assert r.code == 2 and not no_serving, (r.code, r.err)
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.err, r.err
    assert ("--token" in r.err) if "token" in str(args) + str(env).lower() else (args[0] in r.err), r.err


def test_create_app_refuses_an_empty_token(indexed):
    from xsearch.core.errors import UsageError

    with pytest.raises(UsageError) as e:
        create_app({"world": str(indexed)}, token="", warm=False)
    assert e.value.code == "serve.empty_token"


# -- item 9: HTTP Range errors in the JSON error shape ---------------------------------------------------------------

@pytest.mark.parametrize("header, status", [("bytes=999999999-", 416), ("bytes=-5-3", 400), ("bytes=abc", 400),
                                            ("pages=1-2", 400)])
def test_range_errors_are_json_errors(indexed, header, status):
    with _client(indexed) as c:
        hit = c.get("/api/collections/world/search", params={"q": "red", "to": "image", "limit": 1}).json()
        url = hit["results"]["image"][0]["media_url"]
        size = len(c.get(url).content)
        r = c.get(url, headers={"Range": header})
        err = _error(r, status, f"http.{status}")
        assert err["message"] and "Traceback" not in r.text
        if status == 416:
            assert r.headers["content-range"] == f"bytes */{size}" and str(size) in err["message"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert c.get(url, headers={"Range": "bytes=0-3"}).status_code == 206  # a good range still works


# -- item 3: tagging is bounded in labels and stops when its client goes away -----------------------------------

def test_tagging_with_too_many_labels_is_refused_before_any_work(indexed, monkeypatch):
    from xsearch.engine import Engine

    monkeypatch.setattr(Engine, "_reader", lambda self: pytest.fail("the model was loaded for a refused request"))
    with _client(indexed) as c:
        for labels in ([f"label {i}" for i in range(1001)], ",".join(f"l{i}" for i in range(1001))):
            err = _error(c.post("/api/collections/world/tags", json={"labels": labels}), 400, "tag.too_many_labels")
            assert err["params"] == {"count": 1001, "max": 1000}


def test_the_engine_bounds_labels_too():
    from xsearch.core.errors import UsageError
    from xsearch.engine.tagging import MAX_LABELS, check_labels

    assert len(check_labels([f"l{i}" for i in range(MAX_LABELS)])) == MAX_LABELS
    with pytest.raises(UsageError) as e:
        check_labels([f"l{i}" for i in range(MAX_LABELS + 1)])
    assert e.value.code == "tag.too_many_labels"


def test_tagging_stops_when_the_client_goes_away(world, tmp_path, monkeypatch):
    import asyncio
    import shutil
    import time

    from xsearch.engine import Engine

    folder = tmp_path / "f"
    folder.mkdir()
    for src in sorted((world / "image").glob("*.png"))[:3]:
        shutil.copy(src, folder / src.name)
    col = tmp_path / "col"
    Engine(col, model="builtin").index_folder(folder, workers=0)
    real, calls = Engine.tag, []

    def slow(self, *args, on_progress=None, **kwargs):
        def progress(done, total):
            calls.append(time.monotonic())
            time.sleep(0.4)  # a long run: each step takes a while
            on_progress(done, total)
        return real(self, *args, on_progress=progress, **kwargs)

    monkeypatch.setattr(Engine, "tag", slow)
    app = create_app({"c": str(col)}, warm=False)
    body = json.dumps({"labels": ["red", "green", "blue"]}).encode()
    path = "/api/collections/c/tags"
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80),
             "client": ("127.0.0.1", 1), "root_path": "", "asgi": {"version": "3.0"}}
    sent = []

    async def run():
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            if time.monotonic() - t0 > 0.2:  # the client closed the connection by now
                return {"type": "http.disconnect"}
            await asyncio.Event().wait()  # nothing yet (starlette cancels this wait when it only peeks)

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    t0 = time.monotonic()
    asyncio.run(run())
    took = time.monotonic() - t0
    assert calls and len(calls) <= 3 and took < 3, (len(calls), took)
    assert sent[0]["status"] != 200
    assert Engine(col).store().tag_counts() == {}  # nothing stored


# -- item 15: validation errors do not echo megabytes back -----------------------------------------------------------

def test_validation_errors_truncate_what_they_echo(indexed):
    big = "x" * 1_000_000
    with _client(indexed) as c:
        for r in (c.post("/api/uploads", data={"file": big}),  # a form part with no filename: not a file
                  c.get("/api/collections/world/search", params={"q": "red", "limit": big[:30000]}),
                  c.post("/api/collections/world/tags", json={"labels": ["a"], "top": big})):
            assert r.status_code == 422, r.text[:200]
            assert len(r.content) < 2000, len(r.content)
            assert r.json()["error"]["code"] == "usage.bad_request"
