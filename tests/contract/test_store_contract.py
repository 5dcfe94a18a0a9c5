"""The storage protocol's contract (index/store.py): what any store must do, run against every implementation."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pytest

from tests.helpers.index import unit_rows
from xsearch.core.errors import CollectionError, CollectionLockedError
from xsearch.core.types import Filters
from xsearch.index import delete_store, open_store, open_writer, store_exists
from xsearch.index.store import StoreSpec

DIM = 16
SPEC = StoreSpec("test-model@abc:16", "test-model", {"image": DIM, "audio": DIM, "text": DIM, "video": DIM}, "Flat")
DAY = 86_400 * 10**9


def unit(seed: int, n: int = 1) -> np.ndarray:
    return unit_rows(n, DIM, seed)


def add_file(writer, path: str, modality: str, vectors: np.ndarray, *, size: int = 100, mtime_ns: int = DAY,
             hash: str | None = None, duration: float | None = None, snippets=None) -> int:
    file_id = writer.upsert_file(path, modality=modality, size=size, mtime_ns=mtime_ns, hash=hash or path,
                                 duration=duration)
    writer.replace_items(file_id, {modality: ([float(i) for i in range(len(vectors))], vectors, snippets)})
    return file_id


@pytest.fixture
def filled(store_uri):
    """Ten images (/a/img0..9.png, vectors unit(i)), two audio files with three windows each, one text."""
    with open_writer(store_uri, create=SPEC) as w:
        for i in range(10):
            add_file(w, f"/a/img{i}.png", "image", unit(i), size=100 + i, mtime_ns=(i + 1) * DAY)
        add_file(w, "/b/long.wav", "audio", unit(100, 3), duration=30.0, size=5000)
        add_file(w, "/b/short.wav", "audio", unit(200, 3), duration=3.0, size=500)
        add_file(w, "/c/notes.txt", "text", unit(300, 2), snippets=["first passage", "second passage"])
    return store_uri


def test_create_then_read(filled):
    assert store_exists(filled)
    with open_store(filled) as s:
        assert s.model_id == SPEC.model_id and s.model_spec == SPEC.model_spec
        assert s.dims == SPEC.dims and s.modalities == ["audio", "image", "text", "video"]
        assert s.counts() == {"image": {"files": 10, "items": 10}, "audio": {"files": 2, "items": 6},
                              "text": {"files": 1, "items": 2}}
        assert s.file_count("image") == 10 and s.file_count("video") == 0
        row = s.file("/a/img3.png")
        assert row.modality == "image" and row.size == 103 and s.file_by_id(row.id).path == "/a/img3.png"
        assert [f.path for f in s.files(under="/b")] == ["/b/long.wav", "/b/short.wav"]
        assert [f.path for f in s.files(modality="text")] == ["/c/notes.txt"]
        assert s.files_by_hash("/a/img3.png", 103)[0].path == "/a/img3.png"
        assert {103, 5000, 500} <= s.file_sizes()


def test_missing_store_is_a_coded_error(store_uri):
    assert not store_exists(store_uri)
    with pytest.raises(CollectionError) as e:
        open_store(store_uri)
    assert e.value.code == "collection.missing"
    with pytest.raises(CollectionError) as e:
        open_writer(store_uri)
    assert e.value.code == "collection.missing"


def test_search_returns_best_item_per_file(filled):
    with open_store(filled) as s:
        query = unit(100, 3)[1]  # window 1 of /b/long.wav
        hits = s.search_files("audio", query[None, :], 2)[0]
        assert [h.path for h in hits] == ["/b/long.wav", "/b/short.wav"]
        assert hits[0].offset == 1.0 and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert [h.rank for h in hits] == [1, 2] and hits[0].score >= hits[1].score
        assert hits[0].duration == 30.0 and hits[0].modality == "audio"
        text = s.search_files("text", unit(300, 2)[1][None, :], 1)[0][0]
        assert text.snippet == "second passage" and text.offset == 1.0


def test_batched_queries_and_exact_match(filled):
    with open_store(filled) as s:
        res = s.search_files("image", unit(0, 1).repeat(2, 0) * [[1], [1]], 3)
        assert len(res) == 2 and res[0][0].path == "/a/img0.png"
        for i in (4, 7):
            assert s.search_files("image", unit(i), 1)[0][0].path == f"/a/img{i}.png"


def test_filters(filled):
    with open_store(filled) as s:
        q = unit(5)

        def paths(**kw):
            return sorted(h.path for h in s.search_files("image", q, 10, filters=Filters(**kw))[0])

        assert paths(path_glob="img[12].png") == ["/a/img1.png", "/a/img2.png"]
        assert paths(path_glob="/a/*") == [f"/a/img{i}.png" for i in range(10)]
        assert paths(min_size=108) == ["/a/img8.png", "/a/img9.png"]
        assert paths(max_size=100) == ["/a/img0.png"]
        assert paths(since=9 * DAY / 1e9) == ["/a/img8.png", "/a/img9.png"]
        assert paths(until=dt.datetime.fromtimestamp(2 * DAY / 1e9)) == ["/a/img0.png"]
        audio = s.search_files("audio", unit(200, 3)[0], 2, filters=Filters(min_duration=10))[0]
        assert [h.path for h in audio] == ["/b/long.wav"]
        assert s.search_files("audio", unit(200, 3)[0], 2, filters=Filters(max_duration=1))[0] == []


def test_exclude_and_threshold(filled):
    with open_store(filled) as s:
        hits = s.search_files("image", unit(3), 3, exclude_paths=["/a/img3.png"])[0]
        assert len(hits) == 3 and "/a/img3.png" not in [h.path for h in hits]
        strict = s.search_files("image", unit(3), 10, threshold=0.99)[0]
        assert [h.path for h in strict] == ["/a/img3.png"]


def test_replace_rename_touch_remove(filled):
    with open_writer(filled) as w:
        img2 = w.file("/a/img2.png")
        w.replace_items(img2.id, {"image": ([0.0], unit(999), None)})
        w.rename_file(w.file("/a/img5.png").id, "/z/moved.png", 7 * DAY)
        w.touch_file(w.file("/a/img6.png").id, mtime_ns=42)
        w.remove_files([w.file("/a/img9.png").id, w.file("/b/short.wav").id])
    with open_store(filled) as s:
        assert s.search_files("image", unit(999), 1)[0][0].path == "/a/img2.png"
        assert s.search_files("image", unit(2), 1)[0][0].path != "/a/img2.png"
        assert s.file("/a/img5.png") is None and s.search_files("image", unit(5), 1)[0][0].path == "/z/moved.png"
        assert s.file("/a/img6.png").mtime_ns == 42
        assert s.file("/a/img9.png") is None and s.file_count("image") == 9 and s.file_count("audio") == 1
        assert "/a/img9.png" not in [h.path for h in s.search_files("image", unit(9), 9)[0]]
        np.testing.assert_allclose(s.file_vectors(s.file("/z/moved.png").id), unit(5), atol=1e-5)


def test_tags_and_tag_filter(filled):
    with open_writer(filled) as w:
        w.set_tags(w.file("/a/img1.png").id, [("dog", 0.9), ("grass", 0.4)])
        w.set_tags(w.file("/a/img2.png").id, [("dog", 0.7)])
    with open_store(filled) as s:
        assert s.tags_of(s.file("/a/img1.png").id) == [("dog", pytest.approx(0.9)), ("grass", pytest.approx(0.4))]
        assert s.tag_counts() == {"dog": 2, "grass": 1}
        hits = s.search_files("image", unit(5), 10, filters=Filters(tag="dog"))[0]
        assert sorted(h.path for h in hits) == ["/a/img1.png", "/a/img2.png"]
    with open_writer(filled) as w:
        w.set_tags(w.file("/a/img1.png").id, [])
        w.remove_files([w.file("/a/img2.png").id])
    with open_store(filled) as s:
        assert s.tag_counts() == {}


def test_video_metadata(store_uri):
    with open_writer(store_uri, create=SPEC) as w:
        fid = w.upsert_file("/v/a.mp4", modality="video", size=10, mtime_ns=1, hash="h", width=64, height=48,
                            duration=12.5, fps=25.0, has_audio=True)
        w.replace_items(fid, {"video": ([0.0, 1.0], unit(1, 2), None), "audio": ([0.0], unit(2), None)})
    with open_store(store_uri) as s:
        row = s.file("/v/a.mp4")
        assert (row.fps, bool(row.has_audio), row.duration, row.width) == (25.0, True, 12.5, 64)
        np.testing.assert_allclose(s.file_vectors(row.id, "audio"), unit(2), atol=1e-5)


def test_item_lookup(filled):
    with open_store(filled) as s:
        hit = s.search_files("audio", unit(100, 3)[2], 1)[0][0]
        item = s.item(hit.item_id)
        assert (item.path, item.modality, item.offset, item.duration) == ("/b/long.wav", "audio", 2.0, 30.0)
        assert s.item(10**9) is None


def test_file_vectors_and_iter_items(filled):
    with open_store(filled) as s:
        np.testing.assert_allclose(s.file_vectors(s.file("/b/long.wav").id), unit(100, 3), atol=1e-5)
        seen = {}
        for item_ids, file_ids, vectors in s.iter_items("image", batch=4):
            assert len(item_ids) == len(file_ids) == len(vectors) <= 4
            for fid, v in zip(file_ids.tolist(), vectors):
                seen[s.file_by_id(fid).path] = v
        assert len(seen) == 10
        np.testing.assert_allclose(seen["/a/img7.png"], unit(7)[0], atol=1e-5)


def test_uncommitted_changes_are_invisible_then_published(filled):
    reader = open_store(filled)
    try:
        before = reader.generation
        w = open_writer(filled)
        add_file(w, "/a/new.png", "image", unit(500))
        assert reader.file("/a/new.png") is None
        assert reader.search_files("image", unit(500), 1)[0][0].path != "/a/new.png"
        w.commit()
        w.close()
        assert reader.generation != before
        assert reader.file("/a/new.png") is not None  # the same long-lived reader follows the commit
        assert reader.search_files("image", unit(500), 1)[0][0].path == "/a/new.png"
    finally:
        reader.close()


def test_error_inside_writer_rolls_back(filled):
    with pytest.raises(RuntimeError):
        with open_writer(filled) as w:
            add_file(w, "/a/lost.png", "image", unit(600))
            raise RuntimeError("crash")
    with open_store(filled) as s:
        assert s.file("/a/lost.png") is None and s.file_count("image") == 10


def test_one_writer_at_a_time(filled):
    with open_writer(filled):
        with pytest.raises(CollectionLockedError) as e:
            open_writer(filled)
        assert e.value.code == "collection.locked"
    open_writer(filled).close()  # free again


def test_model_check(filled):
    with open_store(filled) as s:
        s.check_model(SPEC.model_id)
        with pytest.raises(CollectionError) as e:
            s.check_model("other@1:16")
        assert e.value.code == "collection.model_mismatch"


def test_delete(filled):
    delete_store(filled)
    assert not store_exists(filled)


def test_readers_in_threads_during_commits(filled):
    """Many searches from many threads on one reader while a writer commits: no error, every answer valid."""
    errors: list[BaseException] = []
    with open_store(filled) as reader:
        def search_loop():
            try:
                for i in range(40):
                    hits = reader.search_files("image", unit(i % 10), 3)[0]
                    assert len(hits) == 3 and hits[0].rank == 1  # never empty or short mid-commit
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=search_loop) for _ in range(4)]
        for t in threads:
            t.start()
        for j in range(5):
            with open_writer(filled, wait_s=5) as w:
                add_file(w, f"/d/extra{j}.png", "image", unit(700 + j))
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert reader.file_count("image") == 15


def test_file_items_round_trip(filled):
    """file_items gives back what replace_items took (what `xsearch copy` moves between stores)."""
    with open_store(filled) as s:
        ids = {p: s.file(p).id for p in ("/b/long.wav", "/c/notes.txt", "/a/img4.png")}
        got = s.file_items([*ids.values(), 10**9])
        assert set(got) == set(ids.values())
        offsets, vectors, snippets = got[ids["/b/long.wav"]]["audio"]
        assert offsets == [0.0, 1.0, 2.0] and snippets is None
        np.testing.assert_allclose(vectors, unit(100, 3), atol=1e-6)
        offsets, vectors, snippets = got[ids["/c/notes.txt"]]["text"]
        assert snippets == ["first passage", "second passage"]
        np.testing.assert_allclose(vectors, unit(300, 2), atol=1e-6)
        assert list(got[ids["/a/img4.png"]]) == ["image"]
