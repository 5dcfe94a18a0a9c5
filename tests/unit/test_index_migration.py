"""A collection written by an older xsearch (catalog schema 1) is upgraded in place, by a writer or a reader."""

from __future__ import annotations

import sqlite3

import numpy as np

from xsearch.index import open_store, open_writer
from xsearch.index.local.catalog import SCHEMA_VERSION
from xsearch.index.store import StoreSpec

SPEC = StoreSpec("m@1:8", "m", {"image": 8}, "Flat")


def _downgrade_to_v1(catalog_path):
    conn = sqlite3.connect(catalog_path)
    conn.executescript("""
        DROP TABLE tags;
        ALTER TABLE files DROP COLUMN fps;
        ALTER TABLE files DROP COLUMN has_audio;
        PRAGMA user_version = 1;
    """)
    conn.close()


def test_reader_upgrades_a_schema_1_catalog(tmp_path):
    uri = str(tmp_path / "col")
    v = np.eye(8, dtype=np.float32)[:1]
    with open_writer(uri, create=SPEC) as w:
        w.replace_items(w.upsert_file("/a.png", modality="image", size=1, mtime_ns=1, hash="h"),
                        {"image": ([0.0], v, None)})
    _downgrade_to_v1(tmp_path / "col" / "catalog.sqlite")
    with open_store(uri) as s:
        assert s.file("/a.png").fps is None and s.tag_counts() == {}
        assert s.search_files("image", v, 1)[0][0].path == "/a.png"
    version = sqlite3.connect(tmp_path / "col" / "catalog.sqlite").execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 2
