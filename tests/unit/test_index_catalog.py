"""Catalog: files and items in SQLite, filters, explicit transactions, schema versions."""

from __future__ import annotations

import datetime as dt
import sqlite3

import numpy as np
import pytest

from xsearch.core.errors import CollectionError
from xsearch.index.local import Catalog
from xsearch.index.local.catalog import SCHEMA_VERSION

DAY_NS = 86_400 * 10**9
T0 = int(dt.datetime(2024, 1, 1).timestamp() * 1e9)


@pytest.fixture
def catalog(tmp_path):
    cat = Catalog.open(tmp_path / "catalog.sqlite")
    yield cat
    cat.close()


def add_file(cat, path, modality="image", size=1000, mtime_ns=T0, duration=None, items=1, **kw):
    fid = cat.upsert_file(path, modality=modality, size=size, mtime_ns=mtime_ns, model_id="m1",
                          duration=duration, **kw)
    ids = cat.add_items(fid, modality, [float(i) for i in range(items)])
    return fid, ids


def test_new_catalog_is_wal_and_versioned(catalog):
    mode = catalog._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert catalog.schema_version == SCHEMA_VERSION


def test_upsert_get_and_items_join(catalog):
    fid, ids = add_file(catalog, "/photos/cat.jpg", width=640, height=480, hash="abc")
    wid = catalog.upsert_file("/texts/a.txt", modality="text", size=10, mtime_ns=T0, model_id="m1")
    tids = catalog.add_items(wid, "text", [0, 1], snippets=["hello", "world"])
    row = catalog.get_file("/photos/cat.jpg")
    assert row.id == fid and row.width == 640 and row.height == 480 and row.model_id == "m1"
    assert catalog.get_file("/nope") is None
    got = catalog.items(ids + tids + [123456, -1])
    assert set(got) == set(ids + tids)
    assert got[tids[1]].snippet == "world" and got[tids[1]].offset == 1.0 and got[tids[1]].path == "/texts/a.txt"
    assert got[ids[0]].width == 640 and got[ids[0]].modality == "image"
    # updating keeps the id and the items
    again = catalog.upsert_file("/photos/cat.jpg", modality="image", size=2000, mtime_ns=T0 + 1, model_id="m1")
    assert again == fid and catalog.get_file("/photos/cat.jpg").size == 2000
    assert np.array_equal(catalog.item_ids("image"), ids)


def test_ids_increase_and_are_never_reused(catalog):
    fid, ids = add_file(catalog, "/a.jpg", items=3)
    catalog.commit()
    catalog.delete_files([fid])
    catalog.commit()
    _, new = add_file(catalog, "/b.jpg", items=1)
    assert new[0] > max(ids)


def test_find_by_hash_rename_touch(catalog):
    fid, _ = add_file(catalog, "/old/x.wav", modality="audio", hash="h1", size=5)
    assert [r.id for r in catalog.find_by_hash("h1", 5)] == [fid]
    assert catalog.find_by_hash("h1", 6) == []
    catalog.rename_file(fid, "/new/x.wav", T0 + 5)
    assert catalog.get_file("/old/x.wav") is None
    assert catalog.get_file("/new/x.wav").mtime_ns == T0 + 5
    catalog.touch_file(fid, mtime_ns=T0 + 9, size=7)
    row = catalog.get_file("/new/x.wav")
    assert (row.mtime_ns, row.size) == (T0 + 9, 7)
    add_file(catalog, "/other.wav", modality="audio")
    with pytest.raises(ValueError, match="already in the catalog"):
        catalog.rename_file(fid, "/other.wav", T0)


def test_files_by_modality_and_folder(catalog):
    add_file(catalog, "/lib/a.jpg")
    add_file(catalog, "/lib/sub/b.wav", modality="audio")
    add_file(catalog, "/library/c.jpg")  # shares the prefix "/lib" but is not under /lib/
    assert [f.path for f in catalog.files(under="/lib")] == ["/lib/a.jpg", "/lib/sub/b.wav"]
    assert [f.path for f in catalog.files(under="/lib/", modality="audio")] == ["/lib/sub/b.wav"]
    assert len(catalog.files()) == 3 and len(catalog.files(modality="image")) == 2


def test_delete_files_and_items_report_item_ids(catalog):
    f1, i1 = add_file(catalog, "/a.jpg", items=2)
    f2, i2 = add_file(catalog, "/b.wav", modality="audio", items=3)
    assert {m: v.tolist() for m, v in catalog.item_ids_of_files([f1, f2]).items()} == {"image": i1, "audio": i2}
    removed = catalog.delete_items_of([f2])
    assert np.array_equal(removed["audio"], i2)
    assert catalog.get_file("/b.wav") is not None and catalog.item_ids("audio").size == 0
    removed = catalog.delete_files([f1, f2])
    assert set(removed) == {"image"} and np.array_equal(removed["image"], i1)
    assert catalog.items(i1) == {} and catalog.files() == []


def test_counts_and_file_ids_of_items(catalog):
    f1, i1 = add_file(catalog, "/a.jpg", items=2)
    f2, i2 = add_file(catalog, "/b.wav", modality="audio", items=3)
    add_file(catalog, "/c.wav", modality="audio", items=1)
    assert catalog.counts() == {"image": {"files": 1, "items": 2}, "audio": {"files": 2, "items": 4}}
    assert catalog.file_ids_of_items([i1[0], i2[1], i2[2]]).tolist() == [f1, f2]
    assert catalog.modalities() == ["audio", "image"]


def test_filter_ids(catalog):
    _, cat_jpg = add_file(catalog, "/photos/holiday/cat.jpg", size=500, mtime_ns=T0)
    _, dog_png = add_file(catalog, "/photos/dog.png", size=5000, mtime_ns=T0 + 10 * DAY_NS)
    _, short = add_file(catalog, "/sounds/short.wav", modality="audio", duration=1.5, items=1)
    _, long = add_file(catalog, "/sounds/long.wav", modality="audio", duration=30.0, items=2)

    def f(modality="image", **kw):
        return catalog.filter_ids(modality, **kw).tolist()

    assert f() == cat_jpg + dog_png
    assert f(path_glob="*.jpg") == cat_jpg
    assert f(path_glob="dog*") == dog_png  # no slash: matches the file name
    assert f(path_glob="*/holiday/*") == cat_jpg  # slash: matches the whole path
    assert f(path_glob="*.JPG") == []  # GLOB is case-sensitive
    assert f(min_size=1000) == dog_png and f(max_size=500) == cat_jpg
    assert f(since=dt.date(2024, 1, 5)) == dog_png
    assert f(until=dt.datetime(2024, 1, 5)) == cat_jpg
    assert f(since=(T0 + DAY_NS) / 1e9) == dog_png  # epoch seconds
    assert f("audio", min_duration=10) == long
    assert f("audio", max_duration=10) == short
    assert f(min_duration=0) == []  # images have no duration
    assert f("audio", path_glob="*.wav", min_duration=1, max_duration=2) == short
    assert f("text") == []
    assert catalog.filter_ids("image").dtype == np.int64


def test_nothing_is_committed_until_commit(tmp_path):
    path = tmp_path / "catalog.sqlite"
    writer = Catalog.open(path)
    add_file(writer, "/a.jpg")
    reader = Catalog.open(path, readonly=True)
    assert reader.files() == []  # WAL: the reader sees the last commit only
    writer.commit()
    assert [f.path for f in reader.files()] == ["/a.jpg"]
    add_file(writer, "/b.jpg")
    assert writer.in_transaction
    writer.rollback()
    assert [f.path for f in writer.files()] == ["/a.jpg"]
    add_file(writer, "/c.jpg")
    writer.close()  # closing discards uncommitted work
    again = Catalog.open(path, readonly=True)
    assert [f.path for f in again.files()] == ["/a.jpg"]
    with pytest.raises(CollectionError, match="read-only"):
        again.upsert_file("/d.jpg", modality="image", size=1, mtime_ns=1, model_id="m")
    again.close()
    reader.close()


def test_migrates_an_empty_database_and_refuses_a_newer_one(tmp_path):
    path = tmp_path / "catalog.sqlite"
    sqlite3.connect(path).close()  # version 0: an empty database
    cat = Catalog.open(path)
    assert cat.schema_version == SCHEMA_VERSION
    cat.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CollectionError, match="newer than this xsearch"):
        Catalog.open(path)


def test_missing_or_garbage_catalog(tmp_path):
    with pytest.raises(CollectionError, match="missing") as info:
        Catalog.open(tmp_path / "none.sqlite", readonly=True)
    assert info.value.code == "collection.damaged"
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CollectionError, match="is damaged") as info:
        Catalog.open(bad)
    assert info.value.code == "collection.damaged"
