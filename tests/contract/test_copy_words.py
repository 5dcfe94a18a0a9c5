"""`xsearch copy` carries the words (OCR lines with box, confidence and time; text passages) and the text settings
to a store with a keyword index, and says in one line that it left them behind where the destination has none."""

from __future__ import annotations

import pytest

from xsearch.index import open_store, open_writer
from xsearch.index.copy import copy_store

from .test_keyword_contract import QUERIES, make_worded

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

VIDEO_LINE = {"track": "ocr", "text": "EXIT 12B", "offset": 7.5, "confidence": 0.75,
              "box": [[1.0, 2.0], [3.0, 2.0], [3.0, 4.0], [1.0, 4.0]]}


def _answers(uri):
    """Per query: the files found with their offsets and lines, and the first one where it is first by the share of
    words held (ties — "jpg" is in every name — are ordered by file id, which a copy renumbers)."""
    out = []
    with open_store(uri) as s:
        for modality, text, filters in QUERIES:
            hits = s.keyword_search(modality, text, 5, filters=filters)
            first = hits[0].path if len(hits) == 1 or (hits and int(hits[0].score * 10) > int(hits[1].score * 10)) \
                else None
            out.append((first, sorted((h.path, h.offset, h.words) for h in hits)))
    return out


def _source(uri):
    make_worded(uri)
    with open_writer(uri) as w:
        from .test_store_contract import add_file, unit

        v = add_file(w, "/v/street.mp4", "video", unit(7, 2))
        w.replace_text(v, [VIDEO_LINE], ["ocr"])
        w.set_text_setting("text_tracks", ["ocr"])
    return uri


@pytest.mark.parametrize("src_kind, dst_kind", [("local", "local"), ("local", "lite"), ("lite", "local")])
def test_copy_carries_the_words(tmp_path, src_kind, dst_kind):
    def uri(kind, name):
        return str(tmp_path / name) if kind == "local" else f"milvus-lite:{tmp_path / (name + '.db')}"

    src, dst = _source(uri(src_kind, "src")), uri(dst_kind, "dst")
    done = copy_store(src, dst)
    assert done["lines"] == {"ocr": 5, "passage": 2} and done["words_left"] == {}
    assert _answers(dst) == _answers(src)
    with open_store(src) as a, open_store(dst) as b:
        assert b.keyword_counts() == a.keyword_counts() and b.text_settings() == {"text_tracks": ["ocr"]}
        hit = b.keyword_search("video", "exit 12b", 1)[0]
        assert hit.path == "/v/street.mp4" and hit.words == [VIDEO_LINE] and hit.offset == 1.0  # its nearest window
    with open_writer(dst) as w:
        assert w.unread_files("ocr", ["image", "video"]) == set()  # nothing is read again


def test_copy_to_a_store_without_keywords_leaves_the_words_behind(tmp_path, monkeypatch):
    from xsearch.index.milvus import features

    src = _source(str(tmp_path / "src"))
    older = features.Features("milvus-lite 2.4.0", True, True, features.LITE_INDEX_TYPES, full_text=False)
    monkeypatch.setattr(features, "_lite_features", lambda: older)  # as a Milvus server before 2.5
    dst = f"milvus-lite:{tmp_path / 'dst.db'}"
    done = copy_store(src, dst)
    assert done["lines"] == {} and done["words_left"] == {"ocr": 5, "passage": 2}
    assert done["items"]["image"] == 4
    with open_store(dst) as s:
        assert not s.supports_keywords and s.search_files("image", s.file_vectors(1), 1)[0][0].path == "/p/receipt.jpg"


@pytest.mark.slow  # a real Milvus server (2.3.5 here: no full-text search)
def test_copy_to_a_server_without_full_text_leaves_the_words_behind(tmp_path, milvus_server):
    import uuid

    src = _source(str(tmp_path / "src"))
    dst = f"milvus://{milvus_server}/t{uuid.uuid4().hex[:12]}"
    done = copy_store(src, dst)
    with open_store(dst) as s:
        if s._db.features.full_text:
            assert done["lines"] == {"ocr": 5, "passage": 2} and _answers(dst) == _answers(src)
        else:
            assert done["lines"] == {} and done["words_left"] == {"ocr": 5, "passage": 2}
            assert done["items"]["image"] == 4 and s.counts()["image"]["files"] == 4
    from xsearch.index import delete_store

    delete_store(dst)
