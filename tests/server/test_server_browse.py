"""The page's data without a query: overview (model fit, examples), browse pages, item details, waveforms."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402

from xsearch.server import create_app  # noqa: E402

BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def client(indexed, tmp_path_factory):
    app = create_app({"world": str(indexed)}, thumbs_dir=tmp_path_factory.mktemp("thumbs"))
    with TestClient(app, base_url=BASE) as c:
        yield c


def test_overview_has_the_fit_and_examples_that_are_in_the_collection(client, world):
    body = client.get("/api/collections/world/overview").json()
    assert body["files"] == {"image": 90, "audio": 90, "text": 90}
    assert body["model_fit"]["world"] is True and body["model_fit"]["message"] == ""
    captions = {p.read_text().strip().rstrip(".") for p in (world / "text").glob("*.txt")}
    assert len(body["examples"]) == 4 and set(body["examples"]) <= captions


def test_browse_pages_newest_first_and_shuffled(client):
    first = client.get("/api/collections/world/browse", params={"modality": "image", "limit": 10}).json()
    assert first["total"] == 90 and first["has_more"] and len(first["items"]) == 10
    assert [h["rank"] for h in first["items"]] == list(range(1, 11)) and first["items"][0]["thumb_url"]
    rest = client.get("/api/collections/world/browse", params={"modality": "image", "limit": 85, "offset": 10}).json()
    assert not rest["has_more"] and len(rest["items"]) == 80
    names = [h["name"] for h in first["items"] + rest["items"]]
    assert len(set(names)) == 90  # every file once
    shuffled = [client.get("/api/collections/world/browse", params={"modality": "image", "order": "random",
                                                                    "seed": s, "limit": 5}).json()["items"]
                for s in (1, 1, 2)]
    assert [h["name"] for h in shuffled[0]] == [h["name"] for h in shuffled[1]] != [h["name"] for h in shuffled[2]]
    assert client.get("/api/collections/world/browse", params={"modality": "video"}).json()["total"] == 0
    assert client.get("/api/collections/world/browse", params={"modality": "nope"}).status_code == 422


def test_details_and_waveform(client):
    sound = client.get("/api/collections/world/browse", params={"modality": "audio", "limit": 1}).json()["items"][0]
    details = client.get(f"/api/collections/world/items/{sound['item_id']}/details").json()
    assert details["folder"] == str(Path(sound["path"]).parent) and details["mtime"] > 0 and details["tags"] == []
    wave = client.get(f"/api/collections/world/items/{sound['item_id']}/waveform", params={"points": 50}).json()
    assert len(wave["peaks"]) == 50 and max(wave["peaks"]) == 1.0 and abs(wave["duration"] - 2.0) < 0.01
    assert client.get("/api/collections/world/items/99999999/details").status_code == 404
