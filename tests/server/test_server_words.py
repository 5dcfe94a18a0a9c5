"""`mode=` on the search API and the words a hit was found by (xsearch/engine/hybrid.py, docs/ocr.md)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("multipart", reason="the serve extra is not installed: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402

from xsearch.server import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(indexed, tmp_path_factory):
    app = create_app({"world": str(indexed)}, thumbs_dir=tmp_path_factory.mktemp("thumbs"))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def _search(client, **params):
    return client.get("/api/collections/world/search", params=params)


def test_keyword_mode_returns_the_matched_words(client):
    body = _search(client, q="g000004", mode="keyword").json()
    assert body["mode"] == "keyword"
    hits = body["results"]["image"]
    assert [h["name"] for h in hits] == ["g000004.png"]
    assert hits[0]["words"] == [{"track": "name", "text": "g000004.png", "offset": 0.0}]
    assert hits[0]["thumb_url"]  # the item found by its words is served like any other


def test_default_mode_is_the_vector_order_when_no_words_match(client):
    default = _search(client, q="zzzz qqqq", limit=5).json()["results"]["image"]
    vector = _search(client, q="zzzz qqqq", limit=5, mode="vector").json()["results"]["image"]
    assert [(h["path"], h["score"]) for h in default] == [(h["path"], h["score"]) for h in vector]


def test_bad_mode_is_a_coded_error(client):
    r = _search(client, q="x", mode="words")
    assert r.status_code in (400, 422) and r.json()["error"]["code"] == "usage.bad_mode"
    r = _search(client, like=1, mode="keyword")
    assert r.status_code in (400, 422) and r.json()["error"]["code"] == "usage.keyword_needs_text"
