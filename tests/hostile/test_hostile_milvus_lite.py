"""milvus-lite collections in trouble (issue #26 items 10, 11): one of its Milvus collections dropped, and a .db on a
read-only folder. Each is one ``error: ...`` line that names the way out, never Milvus's own words alone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers.cli import one_line_error

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")


@pytest.fixture
def lite(cli, world, tmp_path):
    """Two text files indexed into a milvus-lite collection: (folder, uri, .db path)."""
    folder = tmp_path / "t"
    folder.mkdir()
    for src in sorted((world / "text").glob("*.txt"))[:2]:
        shutil.copy(src, folder / src.name)
    db = tmp_path / "c.db"
    uri = f"milvus-lite:{db}"
    r = cli("index", folder, "-c", uri, "--model", "builtin", "--workers", "0")
    assert r.code == 0, r.err
    return folder, uri, db


def test_a_lost_files_collection_names_rebuild(cli, lite):
    from xsearch.index.milvus.connection import Connection
    from xsearch.index.milvus.uri import parse_uri

    folder, uri, db = lite
    target = parse_uri(uri)
    conn = Connection.acquire(target)
    try:
        conn.client.drop_collection(target.coll("files"))
    finally:
        conn.release()
    for args in (("info", "-c", uri), ("index", folder, "-c", uri, "--workers", "0")):
        one_line_error(cli(*args), 1, "missing one of its parts", "--rebuild")
    r = cli("index", folder, "-c", uri, "--workers", "0", "--rebuild")
    assert r.code == 0, r.err
    assert cli("info", "-c", uri).code == 0


def test_a_read_only_lite_collection_says_so(cli, lite, monkeypatch):
    _, uri, db = lite
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if mode & os.W_OK and
                        Path(p).absolute().is_relative_to(db.parent) else real(p, mode, *a, **k))
    for args in (("search", "red", "-c", uri), ("info", "-c", uri)):
        one_line_error(cli(*args), 1, "read-only", "cp -r")
