"""The Milvus store's keyword index beyond the shared contract (test_keyword_contract.py): what the Milvus at the
other end supports, the words under the journaled commit's crash repair, and collections made before it."""

from __future__ import annotations

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from xsearch.core.errors import UsageError  # noqa: E402
from xsearch.index import open_store, open_writer  # noqa: E402
from xsearch.index.milvus.connection import Connection  # noqa: E402
from xsearch.index.milvus.db import Db  # noqa: E402
from xsearch.index.milvus.features import server_features  # noqa: E402
from xsearch.index.milvus.uri import parse_uri  # noqa: E402

from .test_keyword_contract import _paths, make_worded, ocr  # noqa: E402
from .test_milvus_store import _crash_on  # noqa: E402
from .test_store_contract import SPEC, add_file, unit  # noqa: E402


def test_full_text_from_milvus_2_5():
    assert not server_features("v2.3.5").full_text and not server_features("2.4.9").full_text
    assert server_features("v2.5.0").full_text and server_features("2.6.1").full_text
    assert "needs Milvus 2.5 or later" in server_features("v2.3.5").no_full_text("h:19530")


def test_words_of_an_unpublished_commit_are_undone(tmp_path, monkeypatch):
    uri = make_worded(f"milvus-lite:{tmp_path / 'm.db'}")
    w = open_writer(uri)
    fid = add_file(w, "/p/new.jpg", "image", unit(40))
    w.replace_text(fid, [ocr("PARCEL 5150")], ["ocr"])
    w.replace_text(w.file("/p/other.jpg").id, [ocr("OVERWRITTEN")], ["ocr"])
    _crash_on(monkeypatch, "state_put", 2)  # 1: pending, 2: publish
    with pytest.raises(RuntimeError):
        w.commit()
    w.close()
    monkeypatch.undo()
    with open_store(uri) as s:  # nothing of the batch is seen
        assert s.keyword_search("image", "parcel", 5) == [] and s.keyword_search("image", "overwritten", 5) == []
    with open_writer(uri) as w:
        assert w.repair_report.rolled_back_files == 2  # both files go: embedded (and read) again by the next run
        assert w.file("/p/new.jpg") is None and w.file("/p/other.jpg") is None
    with open_store(uri) as s:
        assert s.keyword_search("image", "parcel", 5) == [] and _paths(s.keyword_search("image", "2032", 5)) == []
        assert _paths(s.keyword_search("image", "invoice 2031", 5)) == ["receipt.jpg"]
        assert s._db.count(s._coll("words"), "file_id not in [1, 3, 4, 5]") == 0  # no rows of the undone files


def test_collection_from_before_keyword_search_opens_then_gains_words(tmp_path):
    uri = f"milvus-lite:{tmp_path / 'm.db'}"
    with open_writer(uri, create=SPEC) as w:
        add_file(w, "/q/invoice-scan.png", "image", unit(1))
        add_file(w, "/q/beach.png", "image", unit(2))
    conn = Connection.acquire(parse_uri(uri))  # make it look like a collection made before keyword search
    try:
        db = Db(conn)
        db.call("delete", db.c.drop_collection, db.t.coll("words"))
        db.meta_put("spec", {k: v for k, v in db.meta_get("spec").items() if k != "words"})
    finally:
        conn.release()
    reader = open_store(uri)  # a long-lived reader (xsearch serve) open across the upgrade
    with open_store(uri) as s:
        assert not s.supports_keywords and s.keyword_counts() == {} and s.text_settings() == {}
        assert s.search_files("image", unit(2), 1)[0][0].path == "/q/beach.png"  # vectors as before
        with pytest.raises(UsageError) as e:
            s.keyword_search("image", "invoice", 5)
        assert e.value.code == "store.keyword_index_missing" and "next `xsearch index`" in str(e.value)
    with open_writer(uri) as w:  # the next writer adds the words collection with every file's name
        assert w.supports_keywords and w.unread_files("ocr", ["image"]) == {1, 2}
    with open_store(uri) as s:
        assert _paths(s.keyword_search("image", "invoice", 5)) == ["invoice-scan.png"]
        assert s.keyword_counts() == {"name": {"lines": 2, "files": 2}}
    with reader:
        reader._words_checked = 0.0  # its next look (every SPEC_RECHECK_S) finds the words collection
        assert _paths(reader.keyword_search("image", "invoice", 5)) == ["invoice-scan.png"]
