"""Hostile writes to `xsearch serve` (issue #26 items 2, 3, 8, 9, 15): a page of another site posting uploads or
searches (a browser sends a form or ``no-cors`` POST anywhere and only hides the answer), uploads that would fill
the disk, a search with more files than it may use, refused uploads naming server paths, HTTP Range errors,
tagging with unbounded labels, and validation errors that echo megabytes back."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402

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
