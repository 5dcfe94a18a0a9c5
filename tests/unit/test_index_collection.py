"""Collection: manifest, model checks, durability order, repair, writer lock, readers, crashes, reindexing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from tests.helpers.index import unit_rows
from xsearch.core.errors import CollectionError, CollectionLockedError
from xsearch.index import factory as factory_module
from xsearch.index.local import Collection
from xsearch.index.local import vectors as vectors_module
from xsearch.index.local.gpu import gpu_available

DIM = 16
MODEL = "builtin:test-v1"


def unit(rows: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return unit_rows(rows, dim, seed)


def make(path, **kw):
    kw.setdefault("dims", {"image": DIM, "audio": DIM})
    return Collection.create(path, model_id=MODEL, model_spec="builtin", **kw)


def add_file(coll, path, vecs, modality="image", **kw):
    fid = coll.catalog.upsert_file(path, modality=modality, size=len(vecs), mtime_ns=1, model_id=coll.model_id,
                                   **kw)
    ids = coll.add(modality, fid, list(range(len(vecs))), vecs)
    return fid, ids


def assert_consistent(coll):
    for modality in coll.modalities:
        assert np.array_equal(coll.index(modality).ids(), coll.catalog.item_ids(modality)), modality


def test_create_add_commit_reopen_search(tmp_path):
    root = tmp_path / "coll"
    with make(root) as coll:
        v = unit(20)
        _, img_ids = add_file(coll, "/a.jpg", v[:10])
        _, aud_ids = add_file(coll, "/b.wav", v[10:], modality="audio")
        assert not set(img_ids) & set(aud_ids)  # one id space across modalities
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["model_id"] == MODEL and manifest["dims"] == {"image": DIM, "audio": DIM}
    assert manifest["factory"] == {"image": "auto", "audio": "auto"} and manifest["format_version"] == 1
    assert {p.name for p in root.iterdir()} >= {"manifest.json", "catalog.sqlite", "image.000001.faiss",
                                               "audio.000001.faiss", "lock"}
    with Collection.open(root) as reader:
        scores, ids = reader.search("audio", v[12], 3)
        assert ids[0, 0] == aud_ids[2] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
        rows = reader.catalog.items(ids[0])
        assert rows[aud_ids[2]].path == "/b.wav" and rows[aud_ids[2]].offset == 2.0
        assert np.allclose(reader.reconstruct("image", img_ids[:2]), v[:2], atol=1e-6)
        stats = reader.stats()
        assert stats["model_id"] == MODEL
        image = stats["modalities"]["image"]
        assert (image["files"], image["items"], image["vectors"], image["index"]) == (1, 10, 10, "Flat")
        assert image["policy"] == "auto" and image["memory_bytes"] >= 10 * DIM * 4
        assert stats["modalities"]["audio"]["gpu"] is False or gpu_available()


def test_context_manager_discards_on_exception(tmp_path):
    root = tmp_path / "coll"
    make(root).close()
    with pytest.raises(RuntimeError), Collection.open(root, writer=True) as coll:
        add_file(coll, "/a.jpg", unit(3))
        raise RuntimeError("boom")
    with Collection.open(root) as coll:
        assert coll.catalog.files() == [] and coll.index("image").ntotal == 0


def test_remove_and_clear_files(tmp_path):
    with make(tmp_path / "c") as coll:
        f1, i1 = add_file(coll, "/a.jpg", unit(4, seed=1))
        f2, _ = add_file(coll, "/b.jpg", unit(4, seed=2))
        coll.commit()
        assert coll.remove_files([f1]) == {"image": 4}
        assert coll.catalog.get_file("/a.jpg") is None and not np.isin(i1, coll.index("image").ids()).any()
        assert coll.clear_files([f2]) == {"image": 4}
        assert coll.catalog.get_file("/b.jpg") is not None and coll.index("image").ntotal == 0
        new = coll.add("image", f2, [0.0], unit(1, seed=3))  # re-embedded changed file keeps its row
        assert_consistent(coll)
        coll.rollback()  # back to the last commit: both files, 8 vectors
        assert coll.index("image").ntotal == 8 and new[0] not in coll.index("image")
        assert_consistent(coll)


def test_missing_collection_for_read(tmp_path):
    with pytest.raises(CollectionError, match=r"no collection at ") as info:
        Collection.open(tmp_path / "nothing")
    assert info.value.code == "collection.missing"
    with pytest.raises(CollectionError, match="already exists") as info:
        make(tmp_path / "c").close()
        make(tmp_path / "c")
    assert info.value.code == "collection.exists"


def test_delete_collection(tmp_path):
    root = tmp_path / "c"
    with make(root) as coll:
        add_file(coll, "/a.jpg", unit(3))
    (root / "notes.txt").write_text("mine")
    holder = Collection.open(root, writer=True)
    with pytest.raises(CollectionLockedError):
        Collection.delete(root)
    holder.close()
    Collection.delete(root)
    assert not Collection.exists(root)
    assert sorted(p.name for p in root.iterdir()) == ["lock", "notes.txt"]
    with make(root) as coll:  # a fresh collection can take its place
        assert coll.catalog.files() == [] and coll.index("image").ntotal == 0


def test_model_mismatch(tmp_path):
    root = tmp_path / "c"
    make(root).close()
    with pytest.raises(CollectionError, match=r"built with model 'builtin:test-v1', not 'openclip:x'") as info:
        Collection.open_or_create(root, model_id="openclip:x", model_spec="openclip:x", dims={"image": DIM})
    assert info.value.code == "collection.model_mismatch"
    # the failed open released the lock
    Collection.open(root, writer=True).close()
    with Collection.open(root) as coll:
        coll.check_model(MODEL)
        with pytest.raises(CollectionError, match="not 'other'"):
            coll.check_model("other")


def test_newer_format_and_damaged_manifest(tmp_path):
    root = tmp_path / "c"
    make(root).close()
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["format_version"] = 99
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CollectionError, match="newer than this xsearch supports") as info:
        Collection.open(root)
    assert info.value.code == "collection.newer_format"
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(CollectionError, match="manifest .* is damaged") as info:
        Collection.open(root)
    assert info.value.code == "collection.damaged"


def vector_file(root, modality="image"):
    with Collection.open(root) as coll:
        return root / coll.catalog.vector_files()[modality]


def test_commit_writes_a_new_file_and_deletes_the_old_one(tmp_path):
    root = tmp_path / "c"
    with make(root, dims={"image": DIM}) as coll:
        add_file(coll, "/a.jpg", unit(3, seed=1))
    assert vector_file(root).name == "image.000001.faiss"
    with Collection.open(root, writer=True) as coll:
        add_file(coll, "/b.jpg", unit(3, seed=2))
    assert vector_file(root).name == "image.000002.faiss"
    assert sorted(p.name for p in root.glob("*.faiss")) == ["image.000002.faiss"]


def test_failed_commit_keeps_the_previous_commit(tmp_path, monkeypatch):
    root = tmp_path / "c"
    with make(root, dims={"image": DIM}) as coll:
        _, kept = add_file(coll, "/a.jpg", unit(3, seed=1))
    coll = Collection.open(root, writer=True)
    f_a = coll.catalog.get_file("/a.jpg").id
    add_file(coll, "/b.jpg", unit(3, seed=2))
    coll.remove_files([f_a])

    def power_cut():
        raise OSError("power cut")

    monkeypatch.setattr(coll.catalog, "commit", power_cut)  # vectors saved, catalog commit fails
    with pytest.raises(OSError, match="power cut"):
        coll.commit()
    monkeypatch.undo()
    coll.close()
    with Collection.open(root, writer=True) as coll:
        assert not coll.repair_report.changed
        assert [f.path for f in coll.catalog.files()] == ["/a.jpg"]
        assert np.array_equal(coll.index("image").ids(), kept)
    assert sorted(p.name for p in root.glob("*.faiss")) == ["image.000001.faiss"]


def test_corrupt_index_file_is_a_clear_error(tmp_path):
    root = tmp_path / "c"
    with make(root) as coll:
        add_file(coll, "/a.jpg", unit(50))
    path = vector_file(root)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    with Collection.open(root) as reader:
        with pytest.raises(CollectionError, match=r"image.000001.faiss is damaged ") as info:
            reader.search("image", unit(1), 1)
        assert info.value.code == "collection.vectors_damaged"
    # Following the advice (index again) works: the writer replaces the file and re-queues its files.
    with Collection.open(root, writer=True) as coll:
        assert coll.repair_report.files_to_reembed == ["/a.jpg"]
        assert "image" in coll.repair_report.vector_files_replaced
        assert coll.catalog.files() == []
    with Collection.open(root) as reader:
        assert reader.search("image", unit(1), 1)[1][0, 0] == -1
    # So does a lost file.
    with make(tmp_path / "d") as coll:
        add_file(coll, "/a.jpg", unit(50))
    path = vector_file(tmp_path / "d")
    path.unlink()
    with Collection.open(tmp_path / "d") as reader:
        with pytest.raises(CollectionError, match=r"image.000001.faiss is missing") as info:
            reader.search("image", unit(1), 1)
        assert info.value.code == "collection.vectors_missing"
    with Collection.open(tmp_path / "d", writer=True) as coll:
        assert coll.repair_report.files_to_reembed == ["/a.jpg"]
        assert coll.catalog.files() == []


def test_repair_drops_orphan_vectors(tmp_path):
    root = tmp_path / "c"
    with make(root) as coll:
        add_file(coll, "/kept.jpg", unit(5, seed=1))
    # Damage the commit protocol cannot produce (e.g. an index file copied from elsewhere): the committed
    # vector file holds vectors the catalog never committed.
    coll = Collection.open(root, writer=True)
    add_file(coll, "/lost.jpg", unit(7, seed=2))
    coll.index("image").save(root / coll.catalog.vector_files()["image"])
    coll.close()  # the catalog was never committed
    with Collection.open(root, writer=True) as coll:
        report = coll.repair_report
        assert report.orphan_vectors_dropped == {"image": 7} and report.files_to_reembed == []
        assert "dropped vectors" in str(report)
        assert_consistent(coll)
        assert coll.index("image").ntotal == 5
    with Collection.open(root, writer=True) as coll:
        assert not coll.repair_report.changed and str(coll.repair_report) == "collection is consistent"


def test_repair_reembeds_files_whose_vectors_are_missing(tmp_path):
    root = tmp_path / "c"
    with make(root) as coll:
        add_file(coll, "/a.jpg", unit(3, seed=1))
        _, b_ids = add_file(coll, "/b.jpg", unit(3, seed=2))
        add_file(coll, "/c.wav", unit(2, seed=3), modality="audio")
    # Damage: the committed vector file lost a vector (e.g. replaced by an older copy).
    coll = Collection.open(root, writer=True)
    coll.index("image").remove(b_ids[:1])
    coll.index("image").save(root / coll.catalog.vector_files()["image"])
    coll.close()
    (root / ".image.000002.faiss.12345.tmp").write_bytes(b"half a file")  # leftovers of an interrupted commit
    (root / "image.000002.faiss").write_bytes(b"never committed")
    with Collection.open(root, writer=True) as coll:
        report = coll.repair_report
        assert report.items_without_vectors == {"image": 1}
        assert report.files_to_reembed == ["/b.jpg"]
        assert sorted(report.stale_files_removed) == [".image.000002.faiss.12345.tmp", "image.000002.faiss"]
        assert coll.catalog.get_file("/b.jpg") is None  # the next `xsearch index` embeds it again
        assert coll.catalog.get_file("/a.jpg") is not None and coll.index("audio").ntotal == 2
        assert_consistent(coll)


def test_second_writer_fails_fast_then_waits(tmp_path):
    root = tmp_path / "c"
    first = make(root)
    start = time.monotonic()
    with pytest.raises(CollectionLockedError, match=rf"being written by another process \(pid {os.getpid()}\)"):
        Collection.open(root, writer=True, wait_s=0)
    assert time.monotonic() - start < 1.0

    threading.Timer(0.4, first.close).start()
    start = time.monotonic()
    second = Collection.open(root, writer=True, wait_s=10)
    waited = time.monotonic() - start
    assert 0.3 <= waited < 5
    second.close()


def test_reader_searches_while_writer_works(tmp_path):
    root = tmp_path / "c"
    writer = make(root)
    _, first_ids = add_file(writer, "/a.jpg", unit(5, seed=1))
    writer.commit()
    _, pending = add_file(writer, "/b.jpg", unit(5, seed=2))  # not committed yet
    reader = Collection.open(root)  # no lock needed
    _, ids = reader.search("image", unit(5, seed=2), 1)
    assert np.isin(ids, first_ids).all()  # sees the last commit only
    assert reader.catalog.get_file("/b.jpg") is None
    writer.commit()
    _, ids = reader.search("image", unit(5, seed=2), 1)  # reloads the replaced index file
    assert np.array_equal(ids[:, 0], pending)
    assert reader.catalog.get_file("/b.jpg") is not None
    with pytest.raises(CollectionError, match="read-only"):
        reader.add("image", 1, [0.0], unit(1))
    reader.close()
    writer.close()


def test_maybe_reindex_switches_type_and_keeps_every_id(tmp_path, monkeypatch):
    monkeypatch.setattr(factory_module, "FLAT_MAX_VECTORS", 300)
    root = tmp_path / "c"
    vecs = unit(400, seed=7)
    with make(root, dims={"image": DIM}) as coll:
        _, ids = add_file(coll, "/few.jpg", vecs[:100])
        assert coll.maybe_reindex() == {}
        _, more = add_file(coll, "/many.jpg", vecs[100:])
        ids = np.concatenate([ids, more])
        assert coll.maybe_reindex() == {"image": ("Flat", "HNSW32")}
        assert coll.maybe_reindex() == {}
    with Collection.open(root) as coll:
        index = coll.index("image")
        assert index.factory == "HNSW32" and np.array_equal(index.ids(), ids)
        _, found = coll.search("image", vecs, 1)
        assert np.array_equal(found[:, 0], ids)


def test_maybe_reindex_to_ivf_under_a_memory_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(factory_module, "FLAT_MAX_VECTORS", 1000)
    n = 25_000  # enough to train the IVF choose_factory picks (39 points per list)
    root = tmp_path / "c"
    vecs = unit(n, seed=8)
    budget = int(n * (4 * DIM + 60))  # too small for HNSW32, enough for IVF,Flat
    with make(root, dims={"image": DIM}, memory_budget_bytes=budget) as coll:
        _, ids = add_file(coll, "/big.bin", vecs)
        switched = coll.maybe_reindex()
        assert switched["image"][0] == "Flat" and switched["image"][1].startswith("IVF512,")  # IVF-Flat or SQ8
        index = coll.index("image")
        assert index.is_trained and np.array_equal(index.ids(), ids)
        sample = np.arange(0, n, 25)
        _, found = coll.search("image", vecs[sample], 1)
        assert np.array_equal(found[:, 0], ids[sample])


def test_explicit_factory_is_kept(tmp_path):
    with make(tmp_path / "c", dims={"image": DIM}, factory="HNSW32") as coll:
        add_file(coll, "/a.jpg", unit(10))
        assert coll.maybe_reindex() == {} and coll.index("image").factory == "HNSW32"
    with pytest.raises(Exception, match="not a FAISS index-factory string"):
        make(tmp_path / "d", factory="NotAnIndex")


# ---------------------------------------------------------------------------------------------------------
# Crash safety: a real process killed with SIGKILL at random points, then reopened.

BATCH = 150
TOTAL_BATCHES = 16

CRASH_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from xsearch.index.local import Collection

    root, factory, total, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    coll = Collection.open_or_create(root, model_id="m", model_spec="m", dims={"image": 32}, factory=factory,
                                     wait_s=10)
    # The newest batch's file is never removed, so the highest file number is the last committed batch.
    b = max([int(f.path.rsplit("_", 1)[1]) for f in coll.catalog.files()] + [-1]) + 1
    while b < total:
        fid = coll.catalog.upsert_file(f"/data/f_{b:03d}", modality="image", size=b, mtime_ns=b, model_id="m")
        vecs = np.random.default_rng(b).standard_normal((batch, 32)).astype("float32")
        coll.add("image", fid, list(range(batch)), vecs)
        if b % 4 == 3:  # also remove an earlier file, so crashes hit removals too
            old = coll.catalog.get_file(f"/data/f_{b - 2:03d}")
            if old is not None:
                coll.remove_files([old.id])
        coll.commit()
        print(f"committed {b}", flush=True)
        b += 1
    coll.close()
    print("done", flush=True)
    """
)


def expected_vectors(b: int) -> np.ndarray:
    v = np.random.default_rng(b).standard_normal((BATCH, 32)).astype("float32")
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def check_after_crash(root, last_printed: int):
    """Every batch up to the last one reported committed is there, with its exact vectors; the batch after it
    may or may not have committed (killed between commit and print), but never half."""
    with Collection.open(root, writer=True) as coll:
        assert_consistent(coll)
        paths = {f.path for f in coll.catalog.files()}
        last_committed = last_printed + 1 if f"/data/f_{last_printed + 1:03d}" in paths else last_printed
        assert not any(f"/data/f_{b:03d}" in paths for b in range(last_committed + 1, TOTAL_BATCHES))
        for b in range(last_committed + 1):
            removed_by = b + 2 if (b + 2) % 4 == 3 else None
            name = f"/data/f_{b:03d}"
            if removed_by is not None and removed_by <= last_committed:
                assert name not in paths, f"{name} was removed by committed batch {removed_by}"
                continue
            assert name in paths, f"committed batch {b} lost"
            ids = coll.catalog.filter_ids("image", path_glob=name)
            assert ids.size == BATCH
            assert np.allclose(coll.reconstruct("image", ids), expected_vectors(b), atol=1e-5)


@pytest.mark.parametrize("factory", ["Flat", "HNSW32"])
def test_crash_at_random_points_loses_only_the_uncommitted_batch(tmp_path, factory):
    root = str(tmp_path / "c")
    rng = np.random.default_rng(20240601)
    cmd = [sys.executable, "-c", CRASH_SCRIPT, root, factory, str(TOTAL_BATCHES), str(BATCH)]
    last = -1
    for _ in range(3):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_lines = int(rng.integers(1, 4))
        for _ in range(wait_lines):
            line = proc.stdout.readline()
            if not line:
                break
            assert line.startswith("committed "), line
            last = max(last, int(line.split()[1]))
        time.sleep(float(rng.uniform(0, 0.03)))  # land anywhere: embedding, saving, renaming, committing
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
        for line in rest.splitlines():  # lines printed before the kill landed
            if line.startswith("committed "):
                last = max(last, int(line.split()[1]))
        assert proc.returncode in (-signal.SIGKILL, 0)
        check_after_crash(root, last)

    finished = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip().endswith("done")
    check_after_crash(root, TOTAL_BATCHES - 1)


def test_a_newer_commit_is_loaded_beside_the_index_in_use(tmp_path, monkeypatch):
    """While one search thread reads a writer's new vector file, other searches keep answering from the index
    already loaded instead of waiting for the load; once loaded, the new commit is what they see."""
    from xsearch.index import open_store, open_writer
    from xsearch.index.store import StoreSpec

    def unit(seed):
        v = np.random.default_rng(seed).standard_normal((1, 8)).astype(np.float32)
        return v / np.linalg.norm(v)

    uri = str(tmp_path / "c")
    with open_writer(uri, create=StoreSpec("m@x:8", "m", {"image": 8}, "Flat")) as w:
        fid = w.upsert_file("/a.png", modality="image", size=1, mtime_ns=1, hash="a")
        w.replace_items(fid, {"image": ([0.0], unit(1), None)})
    with open_store(uri) as reader:
        assert [h.path for h in reader.search_files("image", unit(1), 5)[0]] == ["/a.png"]
        with open_writer(uri) as w:
            fid = w.upsert_file("/b.png", modality="image", size=1, mtime_ns=1, hash="b")
            w.replace_items(fid, {"image": ([0.0], unit(2), None)})
        started, release = threading.Event(), threading.Event()
        real_load = vectors_module.VectorIndex.load

        def slow_load(path, *a, **kw):
            started.set()
            assert release.wait(30)
            return real_load(path, *a, **kw)

        monkeypatch.setattr(vectors_module.VectorIndex, "load", staticmethod(slow_load))
        loaded: list = []
        loader = threading.Thread(target=lambda: loaded.append(reader.search_files("image", unit(2), 5)[0]))
        loader.start()
        assert started.wait(30)
        t0 = time.monotonic()
        during = reader.search_files("image", unit(2), 5)[0]  # the previous commit's index, without waiting
        assert time.monotonic() - t0 < 5 and [h.path for h in during] == ["/a.png"]
        release.set()
        loader.join(30)
        assert [h.path for h in loaded[0]] == ["/b.png", "/a.png"]
        assert [h.path for h in reader.search_files("image", unit(2), 5)[0]] == ["/b.png", "/a.png"]
