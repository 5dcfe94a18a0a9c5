"""Past one machine, in one run: local FAISS vs milvus-lite, Ray vs local encoding, and a 100 M paper estimate.

    python -m bench.scale_out                                   # 20k x 256 HNSW32, 100-group world: ~1 min
    python -m bench.scale_out --vectors 100000 --groups 1000    # the saved run (results/): ~5 min on 2 cores
    python -m bench.scale_out --vectors 2000 --groups 8 --no-photo --out ''    # a quick look, nothing saved

Measured, in this process, one after the other on the same cores (the two benchmarks' own functions):

- ``bench.milvus.run``: the same clustered vectors written through each store's writer into a local collection
  (FAISS + SQLite) and a milvus-lite ``.db``, one index type for both (``--factory``, default HNSW32: what a
  large collection gets); build time until searchable, recall@10 against exact search, single-query p50; the
  bytes per vector of each store's vector index file.
- ``bench.ray_encoding.run``: the local executor and the Ray executor (a local Ray with ``--ray-cpus`` CPUs,
  fractional actor CPUs) over the same generated world with the builtin model, items/s; with ``--photo``
  (default) the one-core costs of decoding a 12 MP JPEG and of a CLIP ViT-B/32 image forward.

Printed as one table of ratios (milvus-lite / FAISS: build, recall@10, p50; Ray / local: items/s), then a paper
estimate for 100 M items on a Milvus cluster and N Ray GPU workers computed from the per-item costs just
measured; every assumption is a named constant below (and a flag), printed with the estimate. Writes
``OUT.json`` and ``OUT.md`` (default ``bench/results/scale-out-cpu-2core``; ``--out ''`` writes nothing). Load
average at start and end is recorded: above the core count, every number is slowed, and not uniformly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench import milvus, ray_encoding
from bench.encoding import PUBLISHED
from bench.machine import load_average, machine_info
from bench.measure import ratio
from bench.report import fmt, table

ITEMS = ray_encoding.ITEMS_ESTIMATE  # 100 M
DEFAULT_OUT = Path(__file__).parent / "results" / "scale-out-cpu-2core"

#: GPU worker speed, published, not measured: clip-retrieval's README, "clip inference allows you to quickly
#: (1500 sample/s on a 3080) compute image and text embeddings" (its default model is CLIP ViT-B/32, fed
#: pre-resized images from img2dataset webdatasets) and "100M text+image embeddings can be processed in 20h
#: using a 3080".
GPU_SOURCE = "clip-retrieval (RTX 3080)"
GPU_ITEMS_PER_S = PUBLISHED[GPU_SOURCE]
CORES_PER_WORKER = 16  # decode cores beside each GPU (assumed)
WORKERS = (1, 8, 32, 64)
TARGET_DIM = 512  # CLIP ViT-B/32's embedding size: what 100 M photos would be stored as
NODE_RAM_GB = 64.0  # RAM of one Milvus query node (assumed)
RAM_FILL = 0.5  # share of a query node's RAM given to loaded segments (headroom: growing segments, compaction)
REPLICAS = 1  # Milvus in-memory replicas (more for query throughput or availability multiply the RAM)


def ratios(mil: dict, ray: dict) -> dict:
    """The headline ratios of the two measurements: milvus-lite / FAISS and Ray / local."""
    (loc, lite) = (next(r for r in mil["rows"] if r["store"] == s) for s in ("local", "milvus-lite"))
    m = ray["measured"]
    return {
        "milvus_lite_over_faiss": {key: ratio(lite[key], loc[key]) for key in ("build_s", "recall@10", "p50_ms")},
        "ray_over_local": {"items_per_s": m["ray_over_local"], "steady_items_per_s": m["ray_over_local_steady"]},
    }


def per_item_costs(mil: dict, ray: dict) -> dict:
    """What the estimate is computed from, all measured in this run."""
    (loc, lite) = (next(r for r in mil["rows"] if r["store"] == s) for s in ("local", "milvus-lite"))
    server = next((r for r in mil["rows"] if r["store"] == "milvus-server"), None)
    dim = loc["dim"]
    e, photo = ray["estimate"], ray.get("photo")
    out = {
        "dim": dim,
        "faiss_hnsw_bytes_per_vector": loc["index_bytes_per_vector"],
        "milvus_lite_index_bytes_per_vector": lite["index_bytes_per_vector"],
        "milvus_lite_data_bytes_per_vector": lite["data_bytes_per_vector"],
        "faiss_write_index_items_per_s": loc["n"] / loc["build_s"],
        "milvus_lite_write_index_items_per_s": lite["n"] / lite["build_s"],
        "milvus_server_write_index_items_per_s": server["n"] / server["build_s"] if server else None,
        "milvus_server_p50_ms": server["p50_ms"] if server else None,
        "milvus_server_engine_p50_ms": server.get("engine_p50_ms") if server else None,
        "milvus_server_recall@10": server["recall@10"] if server else None,
        "builtin_encode_core_s_per_item": e["builtin_core_s_per_item"],
        "ray_items_per_s": ray["measured"]["ray"]["items_per_s"],
        "local_items_per_s": ray["measured"]["local"]["items_per_s"],
        "photo_decode_core_s": photo["decode_core_s"] if photo else None,
        "vitb32_cpu_core_s": photo["vitb32_cpu_core_s"] if photo else None,
        "vitb32_gflops": photo["vitb32_flops"] / 1e9 if photo else None,
    }
    return out


def estimate(costs: dict, *, gpu_items_per_s: float = GPU_ITEMS_PER_S, cores_per_worker: int = CORES_PER_WORKER,
             workers=WORKERS, target_dim: int = TARGET_DIM, node_ram_gb: float = NODE_RAM_GB,
             ram_fill: float = RAM_FILL, replicas: int = REPLICAS, items: int = ITEMS) -> dict:
    """Paper estimate (arithmetic on ``costs``, nothing run) for ``items`` items.

    Encoding: a Ray GPU worker embeds at ``gpu_items_per_s`` (published) unless its ``cores_per_worker`` decode
    cores are slower at the measured per-core JPEG cost; N workers scale linearly; the one writer must then take
    N times that. Milvus: an HNSW M=32 segment holds the float32 vectors plus a dimension-independent graph, so
    bytes/vector at ``target_dim`` = 4·target_dim + (measured index bytes/vector − 4·measured dim); plus the
    row data (measured milvus-lite Parquet bytes/vector minus the vectors: file ids and metadata, compressed, so
    a floor); × ``replicas``; query nodes of ``node_ram_gb`` filled to ``ram_fill``.
    """
    dim = costs["dim"]
    index_bpv = costs["milvus_lite_index_bytes_per_vector"] or costs["faiss_hnsw_bytes_per_vector"]
    graph = index_bpv - 4 * dim
    rows_bpv = max(0.0, (costs["milvus_lite_data_bytes_per_vector"] or 4 * dim) - 4 * dim)
    bpv = (4 * target_dim + graph + rows_bpv) * replicas
    ram_gb = items * bpv / 1e9
    milvus = {"index_bytes_per_vector_measured": index_bpv, "graph_bytes_per_vector": graph,
              "row_bytes_per_vector": rows_bpv, "target_dim": target_dim, "replicas": replicas,
              "bytes_per_vector": bpv, "ram_gb_per_million": 1e6 * bpv / 1e9, "ram_gb": ram_gb,
              "node_ram_gb": node_ram_gb, "ram_fill": ram_fill,
              "query_nodes": int(-(-ram_gb // (node_ram_gb * ram_fill)))}

    encode_rows = []
    decode_s = costs.get("photo_decode_core_s")
    cases = [("pre-resized images (GPU-bound)", None)]
    if decode_s:
        cases.append(("12 MP JPEG photos", cores_per_worker / decode_s))
    for label, decode_rate in cases:
        per_worker = gpu_items_per_s if decode_rate is None else min(gpu_items_per_s, decode_rate)
        bound = "GPU" if decode_rate is None or gpu_items_per_s <= decode_rate else "decode"
        for n in workers:
            encode_rows.append({"workload": label, "workers": n, "worker_items_per_s": per_worker, "bound": bound,
                                "hours": items / (n * per_worker) / 3600, "writer_items_per_s": n * per_worker})
    cpu = {"builtin_core_hours": items * costs["builtin_encode_core_s_per_item"] / 3600}
    speedup = None
    if costs.get("vitb32_cpu_core_s"):
        cpu["vitb32_photo_core_hours"] = items * (costs["vitb32_cpu_core_s"] + decode_s) / 3600
        speedup = gpu_items_per_s * costs["vitb32_cpu_core_s"]  # one GPU vs one CPU core here, model only
    writer = {"faiss": costs["faiss_write_index_items_per_s"],
              "milvus-lite": costs["milvus_lite_write_index_items_per_s"]}
    if costs.get("milvus_server_write_index_items_per_s"):
        writer["milvus-server"] = costs["milvus_server_write_index_items_per_s"]
    return {"items": items, "gpu_items_per_s": gpu_items_per_s, "gpu_source": GPU_SOURCE,
            "gpu_over_cpu_core_vitb32": speedup, "cores_per_worker": cores_per_worker, "milvus": milvus,
            "encoding": encode_rows, "cpu_only": cpu, "writer_measured_items_per_s": writer,
            # GPU-bound workers one writer at the rate measured here could keep up with
            "workers_fed_by_measured_writer": {k: v / gpu_items_per_s for k, v in writer.items()}}


def run(vectors: int = 20_000, dim: int = 256, queries: int = 200, factory: str = "HNSW32", groups: int = 100,
        files_per_batch: int = 32, workers: int = 2, ray_cpus: int = 2, ray_options: dict | None = None,
        photo: bool = True, workdir: Path | None = None, log=print, server: str | None = None,
        **assumptions) -> dict:
    load_start = load_average()
    t0 = time.perf_counter()
    log(f"== local FAISS vs milvus-lite{' vs a Milvus server' if server else ''}: {vectors:,} x {dim}, {factory}")
    mil = milvus.run([vectors], dim, queries, log=log, factory=factory, server=server)
    log(f"== Ray vs local encoding: {groups}-group world")
    ray = ray_encoding.run(groups, files_per_batch, workers, ray_cpus, ray_options or {}, photo,
                           ray_encoding.GPU_TFLOPS, assumptions.get("cores_per_worker", CORES_PER_WORKER),
                           workdir, log=log)
    costs = per_item_costs(mil, ray)
    return {"config": {"vectors": vectors, "dim": dim, "queries": queries, "factory": factory, "groups": groups,
                       "files_per_batch": files_per_batch, "workers": workers, "ray_cpus": ray_cpus,
                       "ray_options": ray_options or {}, "photo": photo},
            "machine": machine_info(), "load_average": {"start": load_start, "end": load_average()},
            "total_s": time.perf_counter() - t0, "ratios": ratios(mil, ray), "per_item": costs,
            "estimate": estimate(costs, **assumptions), "milvus": mil, "ray": ray}


def _g4(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _load(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values) if values else "n/a"


def to_markdown(r: dict, command: str = "python -m bench.scale_out") -> str:
    c, q, p, e = r["config"], r["ratios"], r["per_item"], r["estimate"]
    loc, lite = (next(x for x in r["milvus"]["rows"] if x["store"] == s) for s in ("local", "milvus-lite"))
    m = r["ray"]["measured"]
    mr = q["milvus_lite_over_faiss"]
    mach = r["machine"]
    measured = [
        [f"build s, {c['vectors']:,} x {c['dim']} {c['factory']}: milvus-lite / FAISS", lite["build_s"],
         loc["build_s"], mr["build_s"]],
        ["recall@10: milvus-lite / FAISS", lite["recall@10"], loc["recall@10"], mr["recall@10"]],
        [f"p50 ms (one query, {r['milvus']['queries']} queries): milvus-lite / FAISS", lite["p50_ms"],
         loc["p50_ms"], mr["p50_ms"]],
        [f"items/s end to end, {m['files']} files, builtin model: Ray / local", m["ray"]["items_per_s"],
         m["local"]["items_per_s"], q["ray_over_local"]["items_per_s"]],
        ["items/s after the first batch: Ray / local", m["ray"]["steady_items_per_s"],
         m["local"]["items_per_s"], q["ray_over_local"]["steady_items_per_s"]],
    ]
    lines = [
        "# Past one machine: measured ratios and a 100 M estimate", "",
        f"`{command}` — {mach['cpu']} ({mach['cores']} usable cores), load average at start / end: "
        f"{_load(r['load_average']['start'])} / {_load(r['load_average']['end'])}; {r['total_s']:.0f} s in all.", "",
        "## Measured in this run", "",
        table(["comparison", "milvus-lite or Ray", "FAISS or local", "ratio"],
              [[row[0], *map(_g4, row[1:])] for row in measured]), "",
        f"Ray: a local instance with {c['ray_cpus']} CPUs on the same cores as the local executor "
        f"(first batch after {m['ray']['first_batch_s']:.1f} s: actors load the model); milvus-lite's index: "
        f"{lite['index']}.", "",
        "## Per-item costs (measured here)", "",
        f"- vector index bytes per {p['dim']}-d vector: FAISS HNSW32 `.faiss` {fmt(p['faiss_hnsw_bytes_per_vector'])}"
        f", milvus-lite HNSW index file {fmt(p['milvus_lite_index_bytes_per_vector'])}; milvus-lite row data "
        f"(Parquet, vectors included) {fmt(p['milvus_lite_data_bytes_per_vector'])}",
        f"- write + index through the store's writer: FAISS {p['faiss_write_index_items_per_s']:,.0f} items/s, "
        f"milvus-lite {p['milvus_lite_write_index_items_per_s']:,.0f} items/s"
        + (f", Milvus server {p['milvus_server_write_index_items_per_s']:,.0f} items/s (search p50 "
           f"{p['milvus_server_p50_ms']:.1f} ms, Engine.search p50 {fmt(p['milvus_server_engine_p50_ms'])} ms)"
           if p.get("milvus_server_write_index_items_per_s") else ""),
        f"- encoding, builtin model, whole pipeline: {p['builtin_encode_core_s_per_item'] * 1e3:.2f} ms of CPU per "
        f"item (local executor, 2 cores)",
    ]
    if p["vitb32_cpu_core_s"]:
        lines.append(f"- one core: decode + shrink of a 12 MP JPEG {p['photo_decode_core_s'] * 1e3:.0f} ms; CLIP "
                     f"ViT-B/32 image forward {p['vitb32_cpu_core_s'] * 1e3:.0f} ms ({p['vitb32_gflops']:.1f} GFLOP)")
    mv = e["milvus"]
    lines += [
        "", f"## Estimate (paper, not measured): {e['items'] / 1e6:.0f} M items", "",
        "Assumptions:", "",
        f"- a GPU worker embeds {e['gpu_items_per_s']:,.0f} images/s: {e['gpu_source']}'s published figure for CLIP "
        "inference (its default ViT-B/32, pre-resized images; its README: 100 M embeddings in ~20 h on one 3080)"
        + (f"; that is {e['gpu_over_cpu_core_vitb32']:.0f}x one CPU core here on the ViT-B/32 forward"
           if e["gpu_over_cpu_core_vitb32"] else ""),
        f"- {e['cores_per_worker']} decode cores per GPU worker at the measured per-core JPEG cost; workers scale "
        "linearly; the one writer (the Ray driver) must take N times a worker's rate",
        f"- Milvus HNSW (M=32) holds float32 vectors + a graph whose size does not depend on the dimension: "
        f"{mv['index_bytes_per_vector_measured']:.0f} B measured at {p['dim']}-d → "
        f"{mv['graph_bytes_per_vector']:.0f} B of graph; + {mv['row_bytes_per_vector']:.0f} B of row data "
        "(measured, compressed: a floor); at "
        f"{mv['target_dim']}-d (ViT-B/32), {mv['replicas']} replica: {mv['bytes_per_vector']:,.0f} B per vector",
        f"- query nodes of {mv['node_ram_gb']:.0f} GB filled to {mv['ram_fill']:.0%}", "",
        table(["Milvus cluster", "value"], [
            ["RAM per million vectors", f"{mv['ram_gb_per_million']:.2f} GB"],
            [f"RAM for {e['items'] / 1e6:.0f} M", f"{mv['ram_gb']:,.0f} GB"],
            [f"query nodes of {mv['node_ram_gb']:.0f} GB", mv["query_nodes"]],
        ]), "",
        table(["workload", "GPU workers", "items/s per worker", "bound by", "hours", "writer items/s"],
              [[x["workload"], x["workers"], x["worker_items_per_s"], x["bound"], x["hours"], x["writer_items_per_s"]]
               for x in e["encoding"]]), "",
        f"For comparison, on CPU only: {e['cpu_only']['builtin_core_hours']:,.0f} core-hours with the builtin model"
        + (f", {e['cpu_only']['vitb32_photo_core_hours']:,.0f} core-hours for 12 MP photos with ViT-B/32"
           if "vitb32_photo_core_hours" in e["cpu_only"] else "")
        + f". The one writer measured here took {e['writer_measured_items_per_s']['faiss']:,.0f} items/s into FAISS "
        f"and {e['writer_measured_items_per_s']['milvus-lite']:,.0f} into milvus-lite (write + index build, 2 "
        f"cores): that would feed {e['workers_fed_by_measured_writer']['faiss']:.1f} / "
        f"{e['workers_fed_by_measured_writer']['milvus-lite']:.1f} GPU-bound workers. "
        + (f"Into a Milvus server (standalone 2.3.5 on the same cores) it took "
           f"{e['writer_measured_items_per_s']['milvus-server']:,.0f} items/s, enough for "
           f"{e['workers_fed_by_measured_writer']['milvus-server']:.1f} workers; a cluster's index nodes build the "
           "index off the writer's path, so this is a floor for one driver."
           if "milvus-server" in e["writer_measured_items_per_s"] else
           "A Milvus server's insert rate was not measured in this run (`--server HOST:PORT` adds it)."),
        "", "## Details", "", milvus.to_markdown(r["milvus"]), "",
        ray_encoding.to_markdown(r["ray"], with_estimate=False),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=20_000, help="vectors for the FAISS / milvus-lite comparison")
    ap.add_argument("--dim", type=int, default=256, help="vector dimension (the builtin model's is 256)")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--factory", default="HNSW32", help="index type for both stores")
    ap.add_argument("--groups", type=int, default=100, help="world groups for the encoding comparison (3 files each)")
    ap.add_argument("--batch-files", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="local decode workers")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--no-photo", action="store_true", help="skip the 12 MP JPEG / ViT-B/32 per-item costs")
    ap.add_argument("--gpu-items-per-s", type=float, default=GPU_ITEMS_PER_S,
                    help=f"assumed images/s of one GPU worker (default: {GPU_SOURCE}, published)")
    ap.add_argument("--cores-per-worker", type=int, default=CORES_PER_WORKER, help="decode cores per GPU worker")
    ap.add_argument("--target-dim", type=int, default=TARGET_DIM, help="vector dimension of the 100 M estimate")
    ap.add_argument("--node-ram-gb", type=float, default=NODE_RAM_GB, help="RAM of one Milvus query node")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--server", default=os.environ.get("XSEARCH_TEST_MILVUS_URI") or None,
                    help="HOST:PORT of a Milvus server to measure beside them (default $XSEARCH_TEST_MILVUS_URI)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="write OUT.json and OUT.md ('' writes nothing)")
    args = ap.parse_args(argv)
    r = run(args.vectors, args.dim, args.queries, args.factory, args.groups, args.batch_files, args.workers,
            args.ray_cpus, {}, not args.no_photo, args.workdir, log=lambda s: print(s, file=sys.stderr),
            gpu_items_per_s=args.gpu_items_per_s, cores_per_worker=args.cores_per_worker,
            target_dim=args.target_dim, node_ram_gb=args.node_ram_gb, server=args.server)
    command = "python -m bench.scale_out " + " ".join(argv if argv is not None else sys.argv[1:])
    text = to_markdown(r, command.strip())
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(r, indent=2, default=str) + "\n")
        out.with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
