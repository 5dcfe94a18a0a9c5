"""Hostile changes to an indexed folder while `xsearch serve` serves it (issue #26 item 1): a file swapped for a
symlink after indexing, or a folder swapped for a link, is never read through the link — media, thumbnails,
passages, "more like this" — and the next `xsearch index` drops it instead of keeping the old entry."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

from fastapi.testclient import TestClient  # noqa: E402

from xsearch.server import create_app  # noqa: E402

BASE = "http://127.0.0.1"
SECRET = "root:secret-hash:19000:0:99999:7:::\n"


@pytest.fixture
def swapped(world, tmp_path):
    """A folder with a text file, an image and a sub-folder image, indexed; then each swapped for a link to a
    'secret' file outside the folder. Returns (folder, collection)."""
    from xsearch.engine import Engine

    folder, outside = tmp_path / "SW", tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    outside.mkdir()
    (folder / "a.txt").write_text("a note about a red circle\n")
    png = sorted((world / "image").glob("*.png"))[0]
    shutil.copy(png, folder / "b.png")
    shutil.copy(png, folder / "sub" / "c.png")
    col = tmp_path / "CSW"
    engine = Engine(col, model="builtin")
    assert engine.index_folder(folder, workers=0).added == 3
    engine.close()
    secret = outside / "shadow"
    secret.write_text(SECRET)
    (outside / "sub").mkdir()
    (outside / "sub" / "c.png").write_text(SECRET)
    for name in ("a.txt", "b.png"):
        (folder / name).unlink()
        os.symlink(secret, folder / name)
    shutil.rmtree(folder / "sub")
    os.symlink(outside / "sub", folder / "sub")  # a folder on the way swapped for a link
    return folder, col


def _items(client) -> dict[str, dict]:
    out = {}
    for i in range(0, 64):
        r = client.get(f"/api/collections/c/items/{i}")
        if r.status_code == 200:
            out.setdefault(r.json()["name"], r.json())
    return out


def test_files_swapped_for_links_after_indexing_are_never_served(swapped):
    folder, col = swapped
    with TestClient(create_app({"c": str(col)}, warm=False), base_url=BASE, raise_server_exceptions=False) as c:
        items = _items(c)
        assert set(items) == {"a.txt", "b.png", "c.png"}
        for name, item in items.items():
            for url in filter(None, (item["media_url"], item["thumb_url"], item["passage_url"])):
                r = c.get(url)
                assert r.status_code == 404, (name, url, r.status_code, r.text[:200])
                assert "secret-hash" not in r.text and r.json()["error"]["code"] == "media.replaced"
        r = c.get("/api/collections/c/search", params={"like": items["b.png"]["item_id"], "to": "text"})
        assert r.status_code in (200, 404) and "secret-hash" not in r.text


def test_an_edited_file_without_links_is_still_served(world, tmp_path):
    from xsearch.engine import Engine

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("first words\n")
    col = tmp_path / "col"
    Engine(col, model="builtin").index_folder(folder, workers=0)
    (folder / "a.txt").write_text("second words, edited in place\n")
    with TestClient(create_app({"c": str(col)}, warm=False), base_url=BASE) as c:
        item = _items(c)["a.txt"]
        assert c.get(item["media_url"]).status_code == 200


def test_a_link_indexed_on_purpose_is_served_while_it_leads_to_the_same_file(world, tmp_path):
    from xsearch.engine import Engine

    folder, outside = tmp_path / "f", tmp_path / "o"
    folder.mkdir(), outside.mkdir()
    (outside / "a.txt").write_text("a note reached through a link\n")
    os.symlink(outside / "a.txt", folder / "a.txt")
    col = tmp_path / "col"
    assert Engine(col, model="builtin").index_folder(folder, workers=0, follow_links=True).added == 1
    with TestClient(create_app({"c": str(col)}, warm=False), base_url=BASE) as c:
        item = _items(c)["a.txt"]
        assert "reached through a link" in c.get(item["media_url"]).text


def test_reindexing_drops_files_that_became_links_leaving_the_folder(cli, swapped):
    folder, col = swapped
    r = cli("index", folder, "-c", col, "--workers", "0")
    assert r.code == 0 and "Traceback" not in r.err, r.err
    assert "not removing" not in r.err and "dropped 3" in r.err, r.err
    from xsearch.engine import Engine

    paths = {Path(f.path).name for f in Engine(col).store().files()}
    assert not paths & {"a.txt", "b.png", "c.png"}


def test_similar_by_path_does_not_read_a_swapped_link(swapped):
    from xsearch.core.errors import UsageError
    from xsearch.engine import Engine

    folder, col = swapped
    engine = Engine(col)
    with pytest.raises(UsageError) as e:
        engine.similar(folder / "b.png", to="all")
    assert e.value.code == "media.replaced"


# -- item 5: `xsearch remove` with an empty path, or most of the collection ------------------------------------------

@pytest.fixture
def three(world, tmp_path):
    """Three text files indexed: (folder, collection)."""
    from xsearch.engine import Engine

    folder = tmp_path / "t"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.txt").write_text(f"note {name} about a red circle\n")
    col = tmp_path / "col"
    assert Engine(col, model="builtin").index_folder(folder, workers=0).added == 3
    return folder, col


def _files(col) -> int:
    from xsearch.engine import Engine

    return len(Engine(col).store().files())


@pytest.mark.parametrize("path", ["", " ", "\t"])
def test_remove_of_an_empty_path_is_a_usage_error(cli, three, monkeypatch, path):
    folder, col = three
    monkeypatch.chdir(folder)  # "" would be this folder: everything
    r = cli("remove", path, "-c", col)
    assert r.code == 2 and "empty path" in r.err and "Traceback" not in r.err, r.err
    assert _files(col) == 3


def test_removing_most_of_a_collection_needs_force(cli, three, monkeypatch):
    folder, col = three
    monkeypatch.chdir(folder.parent)
    r = cli("remove", folder.name, "-c", col)
    assert r.code == 2 and "3 of the 3" in r.err and "--force" in r.err and r.err.count("\n") == 1, r.err
    r = cli("remove", folder / "a.txt", folder / "b.txt", "-c", col)
    assert r.code == 2 and "--force" in r.err
    assert _files(col) == 3
    assert cli("remove", folder / "a.txt", "-c", col).code == 0  # a third: no flag needed
    r = cli("remove", folder, "-c", col, "--force")
    assert r.code == 0 and "removed 2" in r.out and _files(col) == 0
