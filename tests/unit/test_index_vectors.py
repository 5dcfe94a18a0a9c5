"""VectorIndex: ids, add / remove / replace, filtered search, persistence, recall of the default parameters."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.helpers.index import clustered_vectors, exact_top_k, recall_at_k, unit_rows
from xsearch.core.errors import CollectionError, UsageError
from xsearch.index.local import VectorIndex, choose_factory, selection
from xsearch.index.local.gpu import gpu_available

# "IVF16,PQ8x4" trains on 624 vectors (39 per centroid, 16 centroids; 4-bit codes) so the tests stay small.
FACTORIES = ["Flat", "HNSW32", "IVF16,Flat", "IVF16,PQ8x4"]
DIM = 16


def unit(rows: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return unit_rows(rows, dim, seed)


def filled(factory: str, n: int = 2000, seed: int = 0):
    vecs = unit(n, seed=seed)
    ids = np.arange(n, dtype=np.int64) * 3 + 7  # sparse ids: positions must never leak out as ids
    index = VectorIndex.create(DIM, factory)
    index.add(ids, vecs)
    return index, ids, vecs


def exact_codes(factory: str) -> bool:
    return "PQ" not in factory


@pytest.mark.parametrize("factory", FACTORIES)
def test_add_search_returns_own_ids(factory):
    index, ids, vecs = filled(factory)
    assert index.is_trained and index.ntotal == len(ids)
    assert np.array_equal(index.ids(), ids)
    scores, found = index.search(vecs[:50], 5)
    assert found.shape == (50, 5) and scores.dtype == np.float32
    top1 = np.mean(found[:, 0] == ids[:50])
    assert top1 == 1.0 if exact_codes(factory) else top1 >= 0.8
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # sorted best first
    if exact_codes(factory):
        assert np.allclose(scores[:, 0], 1.0, atol=1e-4)  # cosine of a vector with itself


@pytest.mark.parametrize("factory", FACTORIES)
def test_remove_then_replace_by_id(factory):
    index, ids, vecs = filled(factory)
    gone = ids[:100]
    assert index.remove(gone) == 100
    assert index.remove(gone) == 0  # absent ids are ignored
    assert index.ntotal == len(ids) - 100
    assert not np.isin(gone, index.ids()).any()
    _, found = index.search(vecs[:100], 10)
    assert not np.isin(found, gone).any()
    with pytest.raises(KeyError):
        index.reconstruct(gone[:1])

    # replace: the same ids come back with new vectors, and searches find the new vectors under them
    new = unit(100, seed=99)
    index.add(gone, new)
    assert index.ntotal == len(ids)
    _, found = index.search(new, 1)
    hit = np.mean(found[:, 0] == gone)
    assert hit == 1.0 if exact_codes(factory) else hit >= 0.8
    if exact_codes(factory):
        assert np.allclose(index.reconstruct(gone), new, atol=1e-5)


def test_duplicate_ids_rejected():
    index, ids, vecs = filled("Flat", 100)
    with pytest.raises(ValueError, match="already in the index"):
        index.add(ids[:1], vecs[:1])
    with pytest.raises(ValueError, match="distinct"):
        index.add([5000, 5000], vecs[:2])


def test_bad_vectors_rejected():
    index = VectorIndex.create(DIM, "Flat")
    with pytest.raises(ValueError, match="shape"):
        index.add([1], np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="zero"):
        index.add([1], np.zeros((1, DIM), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.add([1], np.full((1, DIM), np.nan, dtype=np.float32))
    assert index.ntotal == 0


def test_vectors_are_normalised_on_add_and_search():
    index = VectorIndex.create(DIM, "Flat")
    v = unit(3)
    index.add([1, 2, 3], v * np.array([[5.0], [0.1], [30.0]], dtype=np.float32))
    scores, found = index.search(v[1] * 7.0, 1)
    assert found[0, 0] == 2 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_hnsw_removal_tombstones_then_compacts():
    index, ids, vecs = filled("HNSW32", 1000)
    index.remove(ids[:50])  # 5 %: kept as tombstones, searches skip them
    assert index.describe()["tombstones"] == 50
    _, found = index.search(vecs[:50], 3)
    assert not np.isin(found, ids[:50]).any()
    index.remove(ids[50:150])  # 15 % > TOMBSTONE_COMPACT_FRACTION: rebuilt without them
    assert "tombstones" not in index.describe()
    assert np.array_equal(index.ids(), ids[150:])
    _, found = index.search(vecs[150:200], 1)
    assert np.array_equal(found[:, 0], ids[150:200])


@pytest.mark.parametrize("factory", FACTORIES)
def test_search_with_allowed_ids(factory, monkeypatch):
    index, ids, vecs = filled(factory, 3000)
    allowed = ids[1::2]
    # Force the FAISS IDSelector path (not the exact path used for tight filters) through IndexIDMap2.
    monkeypatch.setattr(selection, "EXACT_FILTER_MIN", 0)
    monkeypatch.setattr(selection, "EXACT_FILTER_FRACTION", 0.0)
    _, found = index.search(vecs[:40], 10, allowed_ids=allowed)
    assert np.isin(found[found >= 0], allowed).all()
    assert (found[:, 0] >= 0).all()
    # Query with an allowed vector: it must come first when the codes are exact.
    _, found = index.search(vecs[1:41:2], 1, allowed_ids=allowed)
    if exact_codes(factory):
        assert np.array_equal(found[:, 0], ids[1:41:2])


@pytest.mark.parametrize("factory", FACTORIES)
def test_tight_filter_is_exact_and_padded(factory):
    index, ids, vecs = filled(factory, 3000)
    allowed = ids[[5, 500, 2500]]
    scores, found = index.search(vecs[:4], 5, allowed_ids=list(allowed) + [10**9])  # unknown id ignored
    assert set(found[:, :3].ravel().tolist()) <= set(allowed.tolist())
    assert (found[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    truth = np.argsort(-(vecs[:4] @ index.reconstruct(allowed).T), axis=1)
    assert np.array_equal(found[:, :3], allowed[truth])
    _, none = index.search(vecs[:2], 3, allowed_ids=[10**9])
    assert (none == -1).all()


def test_search_arguments():
    index, _, vecs = filled("Flat", 10)
    with pytest.raises(UsageError):
        index.search(vecs[:1], 0)
    with pytest.raises(ValueError, match="unknown search parameters"):
        index.search(vecs[:1], 1, params={"nprob": 4})
    _, found = index.search(vecs[:1], 25)  # k larger than the index: padded
    assert (found[0, :10] >= 0).all() and (found[0, 10:] == -1).all()
    _, empty = VectorIndex.create(DIM, "HNSW32").search(vecs[:2], 3)
    assert (empty == -1).all()


def test_search_params_change_ivf_results():
    db, queries = clustered_vectors(5000, DIM, n_queries=100, seed=3)
    index = VectorIndex.create(DIM, "IVF64,Flat")
    index.add(np.arange(len(db)), db)
    truth = exact_top_k(db, queries, 10)
    _, one = index.search(queries, 10, params={"nprobe": 1})
    _, all_lists = index.search(queries, 10, params={"nprobe": 64, "efSearch": 7})  # efSearch: not IVF, ignored
    assert recall_at_k(all_lists, truth) == 1.0
    assert recall_at_k(one, truth) < 0.95


def test_ivf_stages_until_enough_training_points():
    index = VectorIndex.create(DIM, "IVF16,Flat")
    vecs = unit(700)
    index.add(np.arange(300), vecs[:300])
    assert not index.is_trained and "staging" in index.describe()
    _, found = index.search(vecs[:5], 1)  # exact while staging
    assert np.array_equal(found[:, 0], np.arange(5))
    index.add(np.arange(300, 700), vecs[300:])  # 700 >= 39 * 16: trains and moves the staged vectors in
    assert index.is_trained and index.ntotal == 700
    _, found = index.search(vecs[:5], 1)
    assert np.array_equal(found[:, 0], np.arange(5))


def test_explicit_train():
    index = VectorIndex.create(DIM, "IVF16,Flat")
    index.add([1, 2], unit(2))
    index.train(unit(1000, seed=5))
    assert index.is_trained and np.array_equal(index.ids(), [1, 2])


@pytest.mark.parametrize("factory", FACTORIES + ["IVF64,Flat"])
def test_save_load_roundtrip(tmp_path, factory):
    index, ids, vecs = filled(factory, 1500)  # IVF64 stays in staging: 1500 < 39 * 64
    index.remove(ids[:10])
    path = tmp_path / "image.faiss"
    index.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.factory == factory and loaded.dim == DIM and loaded.is_trained == index.is_trained
    assert np.array_equal(loaded.ids(), index.ids())
    assert loaded.search_defaults() == index.search_defaults()
    a = index.search(vecs[:20], 5)
    b = loaded.search(vecs[:20], 5)
    assert np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0])
    assert np.allclose(loaded.reconstruct(ids[10:20]), index.reconstruct(ids[10:20]))
    assert not list(tmp_path.glob(".*.tmp"))


def test_failed_save_leaves_old_file_intact(tmp_path, monkeypatch):
    import faiss

    index, _, _ = filled("Flat", 200)
    path = tmp_path / "image.faiss"
    index.save(path)
    before = path.read_bytes()
    index.add([10**6], unit(1, seed=4))

    def broken_write_index(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken_write_index)
    with pytest.raises(OSError, match="disk full"):
        index.save(path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
    assert VectorIndex.load(path).ntotal == 200


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage", "trailing"])
def test_damaged_file_is_a_clear_error(tmp_path, damage):
    index, _, _ = filled("HNSW32", 300)
    path = tmp_path / "image.faiss"
    index.save(path)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "empty":
        data = bytearray()
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    else:
        data += b"junk"
    path.write_bytes(bytes(data))
    with pytest.raises(CollectionError, match=r"image.faiss is damaged ") as info:
        VectorIndex.load(path)
    assert "\n" not in str(info.value) and info.value.code == "collection.vectors_damaged"


def test_bad_factory_string():
    with pytest.raises(UsageError, match="not a FAISS index-factory string"):
        VectorIndex.create(DIM, "Bogus12")
    with pytest.raises(UsageError, match="IDMap"):
        VectorIndex.create(DIM, "IDMap2,Flat")


def test_choose_factory_rules():
    assert choose_factory(10, 512).factory == "Flat"
    assert choose_factory(49_999, 512).factory == "Flat"
    assert choose_factory(100_000, 512).factory == "HNSW32"
    n = 1_000_000
    assert choose_factory(n, 512, memory_budget_bytes=10 * 2**30).factory == "HNSW32"
    # below HNSW32's memory: IVF-PQ fast scan re-ranked with float16 exact vectors on disk (index/local/budget.py)
    assert choose_factory(n, 512, memory_budget_bytes=int(2.1e9)).factory == "IVF4096,PQ128x4fs,Refine(SQfp16)"
    assert choose_factory(n, 512, memory_budget_bytes=int(0.08e9)).factory == "IVF4096,PQ64x4fs,Refine(SQfp16)"
    # 64 B/vector: only the dim/16 codes fit (their measured resident size at 1M: 49 B/vector)
    assert choose_factory(n, 512, memory_budget_bytes=int(0.064e9)).factory == "IVF4096,PQ32x4fs,Refine(SQfp16)"
    assert choose_factory(n, 512, memory_budget_bytes=1).factory == "IVF4096,PQ32x4fs,Refine(SQfp16)"  # most compact
    assert choose_factory(100_000, 512, memory_budget_bytes=10**8).factory.startswith("IVF1024,")


def test_memory_estimate_tracks_type():
    flat, _, _ = filled("Flat", 2000)
    pq, _, _ = filled("IVF16,PQ8x4", 2000)
    hnsw, _, _ = filled("HNSW32", 2000)
    assert pq.memory_bytes() < flat.memory_bytes() < hnsw.memory_bytes()
    assert flat.memory_bytes() >= 2000 * DIM * 4


@pytest.mark.parametrize("factory", ["HNSW32", "IVF512,Flat"])
def test_default_params_recall_on_clustered_data(factory):
    """Default efSearch / nprobe reach recall@10 >= 0.95 against exact search on clustered 20k x 64 data."""
    db, queries = clustered_vectors(20_000, 64, n_queries=300, seed=1)
    index = VectorIndex.create(64, factory)
    index.add(np.arange(len(db)), db)
    _, found = index.search(queries, 10)
    recall = recall_at_k(found, exact_top_k(db, queries, 10))
    assert recall >= 0.95, f"{factory} recall@10 = {recall:.3f} with {index.search_defaults()}"


def test_describe_reports_cpu_without_gpu():
    index, _, _ = filled("Flat", 10)
    info = index.describe()
    if not gpu_available():
        assert info["gpu"] is False and "not available" in info["gpu_note"]


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU and faiss with GPU support")
@pytest.mark.parametrize("factory", ["Flat", "IVF64,Flat"])
def test_gpu_matches_cpu(tmp_path, factory):
    """The same saved index searched on GPU and on CPU gives the same results within float tolerance."""
    db, queries = clustered_vectors(5000, 64, n_queries=50, seed=2)
    built = VectorIndex.create(64, factory, use_gpu=False)
    built.add(np.arange(len(db)), db)
    built.save(tmp_path / "v.faiss")
    gpu = VectorIndex.load(tmp_path / "v.faiss", use_gpu=True)
    cpu = VectorIndex.load(tmp_path / "v.faiss", use_gpu=False)
    g_scores, g_ids = gpu.search(queries, 10)
    assert gpu.describe()["gpu"] is True, gpu.describe()["gpu_note"]
    c_scores, c_ids = cpu.search(queries, 10)
    assert np.allclose(g_scores, c_scores, atol=1e-4)
    assert np.mean(g_ids == c_ids) >= 0.99  # near-ties may swap places
    gpu.save(tmp_path / "back.faiss")  # what is persisted is the CPU index
    assert np.array_equal(VectorIndex.load(tmp_path / "back.faiss", use_gpu=False).ids(), cpu.ids())


_RSS_AFTER_LOAD = """
import sys
import numpy as np
from xsearch.index.local import VectorIndex

def anon():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))

VectorIndex.create(4, "Flat", use_gpu=False).search(np.ones((1, 4), np.float32), 1)  # libraries warm
before = anon()
index = VectorIndex.load(sys.argv[1], use_gpu=False)
print(anon() - before, index.memory_bytes())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RssAnon from /proc")
def test_a_loaded_compressed_index_holds_about_its_estimate(tmp_path):
    """Resident memory a fresh process gains by loading an IVF-PQ + exact re-ranking index stays near
    memory_bytes(): the reader's freed buffers go back to the system (they were about as much again)."""
    import subprocess
    import sys

    n, d = 100_000, 256
    index = VectorIndex.create(d, "IVF256,PQ32x4fs,Refine(SQfp16)", use_gpu=False)
    index.add(np.arange(n), np.random.default_rng(0).standard_normal((n, d)).astype(np.float32))
    index.save(tmp_path / "v.faiss")
    out = subprocess.run([sys.executable, "-c", _RSS_AFTER_LOAD, str(tmp_path / "v.faiss")], capture_output=True,
                         text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    grown, estimate = map(int, out.split())
    assert estimate > 3_000_000 and 0.8 * estimate < grown < 1.5 * estimate, (grown, estimate)
