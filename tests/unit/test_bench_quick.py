"""The benchmark suite runs end to end on a tiny configuration and returns every field (no timing checks)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from bench import data, index, run, scaling
from bench.encoding import EncodingBenchConfig
from bench.incremental import IncrementalBenchConfig
from bench.index import IndexBenchConfig
from bench.measure import loglog_slope, recall_at_k

WORLD = 8  # groups: 8 images, 8 sounds, 8 caption files


def _tiny_preset() -> run.Preset:
    return run.Preset(
        "test",
        encoding=EncodingBenchConfig(world_groups=WORLD, workers=0, files_per_batch=4, rounds=2),
        index=IndexBenchConfig(sizes=(1200, 2400), dim=32, n_queries=40, n_single=5, world_groups=WORLD),
        incremental=IncrementalBenchConfig(world_groups=WORLD, workers=0, cli_second_run=True),
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bench")
    ran = run.run_all(_tiny_preset(), run.BENCHMARKS, workdir, "cpu", log=lambda msg: None)
    return {"preset": "test", "only": list(run.BENCHMARKS), "machine": {
        "cpu": "x", "cores": 2, "load_average": None, "python": "3", "torch": "t", "torch_threads": 2, "faiss": "f",
        "faiss_omp_threads": 2, "numpy": "n", "hnswlib": None, "usearch": None, "device": "cpu"},
        "load_average_end": None, "total_s": 1.0, **ran}


def test_clustered_vectors_are_unit_clustered_and_reproducible():
    a = data.clustered_vectors(2000, 64, seed=3, stream=1)
    assert a.shape == (2000, 64) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, data.clustered_vectors(2000, 64, seed=3, stream=1))
    b = data.clustered_vectors(2000, 64, seed=3, stream=2)
    assert not np.array_equal(a, b)
    # clustered: a vector's nearest neighbour is far closer than a typical pair (uniform noise would not be)
    sims = a[:200] @ a.T
    np.fill_diagonal(sims[:, :200], -1)
    assert np.median(sims.max(axis=1)) > 0.3 > abs(float(np.median(sims)))


def test_measure_helpers():
    truth = np.array([[1, 2, 3, 4]])
    assert recall_at_k(np.array([[4, 3, 9, -1]]), truth) == 0.5
    assert loglog_slope([10, 100, 1000], [2, 20, 200]) == pytest.approx(1.0)
    assert loglog_slope([10], [1]) is None


def test_factories_and_training_minimum():
    assert index.factory_for("Flat", 10_000, 512) == "Flat"
    assert index.factory_for("HNSW32", 10_000, 512) == "HNSW32"
    assert index.factory_for("IVF-Flat", 100_000, 512) == "IVF1024,Flat"
    assert index.factory_for("IVF-PQ", 100_000, 512) == "IVF1024,PQ64"
    assert index.min_training_vectors("IVF16,PQ4") == 256
    assert index.min_training_vectors("Flat") == 0
    with pytest.raises(ValueError):
        index.factory_for("LSH", 10, 8)


def test_encoding_fields(report):
    enc = report["results"]["encoding"]
    assert set(enc["modalities"]) == {"image", "audio"}
    for m in enc["modalities"].values():
        assert m["files"] == WORLD and m["pipeline"]["items"] == WORLD
        for part in ("decode", "pipeline", "raw"):
            assert m[part]["items_per_s"] > 0
        assert m["pipeline_over_raw"] > 0 and 0 <= m["pipeline"]["wait_fraction"] <= 1
        assert m["pipeline"]["embed_items_per_s"] >= m["pipeline"]["items_per_s"]
        assert len(m["pipeline_over_raw_rounds"]) == 2 and m["pipeline_over_raw"] in m["pipeline_over_raw_rounds"]


def test_index_fields(report):
    datasets = report["results"]["index"]["datasets"]
    assert [d["label"] for d in datasets] == ["clustered-1200", "clustered-2400", f"world-{WORLD}"]
    for ds in datasets[:2]:
        ours = {r["kind"]: r for r in ds["rows"] if r["library"] == "xsearch"}
        assert set(ours) == {"Flat", "HNSW32", "IVF-Flat", "IVF-PQ"}
        assert ours["Flat"]["recall"] == pytest.approx(1.0)
        assert ours["HNSW32"]["recall"] > 0.8 and ours["HNSW32"]["params"] == {"efSearch": 128}
        for r in ours.values():
            for key in ("build_s", "p50_ms", "p99_ms", "batch_ms_per_query", "bytes_per_vector"):
                assert r[key] > 0, (r["factory"], key)
            assert r["p99_ms"] >= r["p50_ms"] and r["p99_ms_1thread"] >= r["p50_ms_1thread"] > 0
        assert ours["IVF-PQ"]["bytes_per_vector"] < ours["Flat"]["bytes_per_vector"]
        assert len(ds["ratios"]["vs_exact"]) == 4
        for peer in ("hnswlib", "usearch"):
            row = next(r for r in ds["rows"] if r["library"] == peer)
            if importlib.util.find_spec(peer) is None:
                assert "not installed" in row["skipped"]
                continue
            assert row["recall"] >= ours["HNSW32"]["recall"] - index.MATCH_TOLERANCE or "never" in row["matched"]
            assert row["bytes_per_vector"] > 0 and row["params"]["ef"] in index.EF_GRID
        assert len(ds["ratios"]["vs_peers"]) == sum(importlib.util.find_spec(p) is not None
                                                    for p in ("hnswlib", "usearch"))
    world = datasets[2]
    assert world["dim"] == 256 and world["source"]["n"] == world["n"] + world["n_queries"]
    pq = next(r for r in world["rows"] if r["kind"] == "IVF-PQ")
    assert "too few" in pq["skipped"]  # 3·WORLD vectors cannot train 256-entry PQ codebooks


def test_scaling_fields(report):
    fits = {(f["library"], f["kind"]): f for f in report["results"]["scaling"]["fits"]}
    flat = fits[("xsearch", "Flat")]
    assert flat["sizes"] == [1200, 2400]
    assert flat["memory_bytes"] == pytest.approx(1.0, abs=0.1)  # Flat memory is linear in n
    for key in scaling.METRICS:
        assert flat[key] is not None


def test_incremental_fields(report):
    inc = report["results"]["incremental"]
    assert inc["files"] == 3 * WORLD and inc["first"]["added"] == 3 * WORLD
    assert inc["second"]["unchanged"] == 3 * WORLD and inc["second"]["added"] == 0
    assert 0 < inc["second_over_first"]
    assert inc["cli_second"]["exit_code"] == 0 and inc["cli_second"]["unchanged"] == 3 * WORLD


def test_markdown_and_json(report):
    text = run.to_markdown(report)
    for title in ("Encoding pipeline", "Vector index", "Scaling exponents", "Incremental re-index"):
        assert f"## {title}" in text
    assert "| xsearch | HNSW32 |" in text
    json.dumps(report)


def test_cli_rejects_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as exc:
        run.main(["--only", "encoding,nope"])
    assert exc.value.code == 2 and "nope" in capsys.readouterr().err


def test_scale_out_estimate_is_arithmetic_on_the_measured_costs():
    from bench import scale_out

    costs = {"dim": 256, "faiss_hnsw_bytes_per_vector": 1310.0, "milvus_lite_index_bytes_per_vector": 1300.0,
             "milvus_lite_data_bytes_per_vector": 1100.0, "faiss_write_index_items_per_s": 3000.0,
             "milvus_lite_write_index_items_per_s": 750.0, "builtin_encode_core_s_per_item": 0.01,
             "photo_decode_core_s": 0.25, "vitb32_cpu_core_s": 0.1}
    e = scale_out.estimate(costs, workers=(1, 4), target_dim=512, node_ram_gb=64, ram_fill=0.5)
    m = e["milvus"]
    assert m["graph_bytes_per_vector"] == 1300 - 4 * 256 and m["row_bytes_per_vector"] == 1100 - 4 * 256
    assert m["bytes_per_vector"] == 4 * 512 + 276 + 76 and m["ram_gb"] == pytest.approx(240.0)
    assert m["query_nodes"] == 8  # 240 GB over 32 usable GB per node
    rows = {(r["workload"], r["workers"]): r for r in e["encoding"]}
    assert rows[("pre-resized images (GPU-bound)", 4)]["bound"] == "GPU"
    photo = rows[("12 MP JPEG photos", 1)]
    assert photo["bound"] == "decode" and photo["worker_items_per_s"] == pytest.approx(16 / 0.25)
    assert photo["hours"] == pytest.approx(1e8 / 64 / 3600)
    assert e["gpu_over_cpu_core_vitb32"] == pytest.approx(150.0)
    assert e["workers_fed_by_measured_writer"] == {"faiss": 2.0, "milvus-lite": 0.5}


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("ray", "pymilvus", "milvus_lite")),
                    reason="needs the ray and milvus extras")
@pytest.mark.slow  # ~13 s: starts Ray and milvus-lite
def test_scale_out_fields(tmp_path):
    from bench import scale_out

    r = scale_out.run(vectors=600, dim=16, queries=10, groups=2, files_per_batch=3, photo=False, workdir=tmp_path,
                      log=lambda msg: None)
    assert [row["store"] for row in r["milvus"]["rows"]] == ["local", "milvus-lite"]
    assert all(row["factory"] == "HNSW32" and row["index_bytes_per_vector"] > 4 * 16 for row in r["milvus"]["rows"])
    q = r["ratios"]
    assert set(q["milvus_lite_over_faiss"]) == {"build_s", "recall@10", "p50_ms"}
    assert all(v > 0 for v in q["milvus_lite_over_faiss"].values()) and q["ray_over_local"]["items_per_s"] > 0
    assert r["ray"]["measured"]["ray"]["items"] == r["ray"]["measured"]["local"]["items"] > 0
    assert len(r["load_average"]["start"]) == 3 and len(r["load_average"]["end"]) == 3
    assert r["estimate"]["milvus"]["ram_gb"] > 0 and r["estimate"]["encoding"]
    text = scale_out.to_markdown(r)
    for title in ("## Measured in this run", "## Per-item costs", "## Estimate (paper, not measured)"):
        assert title in text
    json.dumps(r)


def test_compressed_kinds_build_variants_and_the_budget_row(tmp_path):
    cfg = IndexBenchConfig(sizes=(3000,), dim=32, n_queries=30, n_single=3, world_groups=0, peers=(),
                           kinds=("Flat", "HNSW32", "IVF-PQfs+refine", "budget", "HNSW32-efC20"),
                           rows_log=str(tmp_path / "rows.jsonl"))
    out = index.run(cfg, tmp_path, log=lambda msg: None)
    ds = out["datasets"][0]
    assert ds["load_average_start"] is None or len(ds["load_average_start"]) == 3
    rows = {r["kind"]: r for r in ds["rows"]}
    refined = rows["IVF-PQfs+refine"]
    assert refined["factory"].endswith(",Refine(SQfp16)") and refined["calibration"]["nprobe"] >= 1
    assert any(s["nprobe"] == refined["params"]["nprobe"] for s in refined["nprobe_sweep"])
    assert [s["k_factor"] for s in refined["refine_sweep"]] == [5, 10, 20, 40]
    assert rows["budget"]["factory"] == "Flat" and rows["budget"]["same_build_as"] == "Flat"  # below 50k: Flat
    assert rows["HNSW32-efC20"]["params"]["efConstruction"] == 20
    variant = next(v for v in ds["ratios"]["build_variants"] if v["kind"] == "HNSW32-efC20")
    assert variant["build_over_hnsw"] > 0 and variant["hnsw_recall"] == rows["HNSW32"]["recall"]
    logged = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in logged] == [r["kind"] for r in ds["rows"]]
    text = index.to_markdown(out)
    assert "IVF lists probed" in text and "Faster builds vs our HNSW32" in text
