"""Ray vs local encoding throughput on this machine, and a paper estimate for 100 M items on N Ray GPU workers.

    python -m bench.ray_encoding                    # 400-group world (1,200 files), 2-CPU local Ray, ~2-3 min
    python -m bench.ray_encoding --groups 100 --no-photo --out r.json

Measured, in one run on the same cores: the local executor (2 DataLoader decode workers, model in this process)
and the ray executor (a local Ray with ``--ray-cpus`` CPUs: decode tasks + an actor pool) over the same files of a
generated world, with the builtin model; items/s end to end (Ray's includes starting its actors, each loading
the model) and in steady state (after the first batch), and the ratio ray / local. With ``--photo`` (default),
also the per-item costs of a realistic workload on one core: decoding a 12-megapixel JPEG and the forward pass of
a CLIP ViT-B/32 image tower (open_clip, random weights: the same compute as the trained one), with its FLOPs.

Estimated, not measured (no GPU here): hours to embed 100 M items on N Ray workers of one GPU + C decode cores
each, from those measured per-item costs and an assumed effective GPU throughput (``--gpu-tflops``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench.measure import ratio
from bench.report import table

#: Effective dense bf16 throughput assumed for one datacenter GPU in inference (an H100 SXM peaks at ~989
#: TFLOP/s dense bf16; a ViT-B at large batch reaches a fraction of that). An assumption, not a measurement.
GPU_TFLOPS = 250.0
ITEMS_ESTIMATE = 100_000_000


def _files(world: Path):
    from xsearch.media import MediaFile, discover

    return sorted((f for f in discover(world) if isinstance(f, MediaFile)), key=lambda f: str(f.path))


def _drain(batches) -> dict:
    """Consume an executor's batches: files, items (vectors), total seconds, seconds to the first batch."""
    t0 = time.perf_counter()
    first = None
    files = items = skipped = 0
    first_items = 0
    for embedded, bad in batches:
        if first is None:
            first = time.perf_counter() - t0
            first_items = sum(e.n_vectors for e in embedded)
        files += len(embedded)
        skipped += len(bad)
        items += sum(e.n_vectors for e in embedded)
    seconds = time.perf_counter() - t0
    steady_s = seconds - (first or 0.0)
    steady = (items - first_items) / steady_s if steady_s else None
    return {"files": files, "items": items, "skipped": skipped, "seconds": seconds, "first_batch_s": first,
            "items_per_s": items / seconds, "steady_items_per_s": steady}


def measure_executors(world: Path, files_per_batch: int, workers: int, ray_cpus: int, ray_options: dict) -> dict:
    import ray

    from xsearch.encoders.registry import load_encoder
    from xsearch.engine.embed import decode_options
    from xsearch.engine.executors.local import LocalExecutor
    from xsearch.engine.executors.ray import RayExecutor

    encoder = load_encoder("builtin", "cpu")
    opts = decode_options(encoder)
    files = _files(world)
    warm = files[:files_per_batch]
    list(LocalExecutor(0, files_per_batch).run(encoder, warm, opts))  # first-call allocations are not the pipeline
    local = _drain(LocalExecutor(workers, files_per_batch).run(encoder, files, opts))
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=ray_cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    init_s = time.perf_counter() - t0
    try:
        executor = RayExecutor(files_per_batch, **ray_options)
        remote = _drain(executor.run(encoder, files, opts))
        resources = executor.resources
    finally:
        ray.shutdown()
    return {"model_id": encoder.model_id, "files": len(files), "local": local, "ray": remote,
            "ray_init_s": init_s, "ray_resources": resources, "ray_version": ray.__version__,
            "ray_over_local": ratio(remote["items_per_s"], local["items_per_s"]),
            "ray_over_local_steady": ratio(remote["steady_items_per_s"], local["items_per_s"])}


def measure_photo_costs(workdir: Path, repeats: int = 5) -> dict:
    """One core: decode + shrink of a 12 MP JPEG (xsearch's image decoder), and a CLIP ViT-B/32 image forward."""
    import numpy as np
    import torch
    from PIL import Image

    from xsearch.media import decode, discover
    from xsearch.media.types import DecodeOptions

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = workdir / "photo-12mp.jpg"
        rng = np.random.default_rng(0)
        h, w = 3000, 4000
        y, x = np.mgrid[0:h, 0:w]
        pixels = np.stack([x / w * 255, y / h * 255, (x + y) / (w + h) * 255], -1) + rng.normal(0, 20, (h, w, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        file = next(iter(discover(path)))
        opts = DecodeOptions(image_short_side=224)
        decode(file, opts)
        t0 = time.perf_counter()
        for _ in range(repeats):
            decode(file, opts)
        decode_s = (time.perf_counter() - t0) / repeats

        import open_clip
        from torch.utils.flop_counter import FlopCounterMode

        model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
        batch = torch.randn(16, 3, 224, 224)
        with torch.inference_mode():
            with FlopCounterMode(display=False) as counter:
                model.encode_image(batch[:1])
            model.encode_image(batch)
            t0 = time.perf_counter()
            model.encode_image(batch)
            forward_s = (time.perf_counter() - t0) / len(batch)
        return {"jpeg_bytes": path.stat().st_size, "jpeg_pixels": h * w, "decode_core_s": decode_s,
                "vitb32_flops": int(counter.get_total_flops()), "vitb32_cpu_core_s": forward_s}
    finally:
        torch.set_num_threads(threads)


def estimate(photo: dict | None, measured: dict, gpu_tflops: float, cores_per_worker: int,
             workers=(1, 8, 32, 64)) -> dict:
    """Paper estimate (not measured) for ITEMS_ESTIMATE items: per worker (one GPU + ``cores_per_worker`` decode
    cores) the rate is the slower of the GPU (FLOPs / assumed effective TFLOP/s) and decoding (cores / core-s
    per item); N workers scale linearly (the one writer is assumed not to be the limit)."""
    rows = []
    if photo:
        gpu_rate = gpu_tflops * 1e12 / photo["vitb32_flops"]
        decode_rate = cores_per_worker / photo["decode_core_s"]
        per_worker = min(gpu_rate, decode_rate)
        cpu_core_s = photo["decode_core_s"] + photo["vitb32_cpu_core_s"]
        for n in workers:
            rows.append({"workload": "12 MP JPEG + ViT-B/32", "workers": n, "gpu_items_per_s": gpu_rate,
                         "decode_items_per_s": decode_rate, "bound": "GPU" if gpu_rate < decode_rate else "decode",
                         "hours": ITEMS_ESTIMATE / (n * per_worker) / 3600})
        cpu_hours_per_million = 1e6 * cpu_core_s / 3600
    else:
        cpu_hours_per_million = None
    local = measured["local"]
    builtin_core_s = 2 / local["items_per_s"]  # 2 cores busy for the local pipeline
    return {"items": ITEMS_ESTIMATE, "gpu_tflops_assumed": gpu_tflops, "cores_per_worker": cores_per_worker,
            "rows": rows, "photo_cpu_core_hours_per_million": cpu_hours_per_million,
            "builtin_core_s_per_item": builtin_core_s,
            "builtin_cpu_core_hours_per_million": 1e6 * builtin_core_s / 3600}


def _load(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values) if values else "?"


def to_markdown(r: dict, with_estimate: bool = True) -> str:
    """The measured tables and per-item costs; then, unless ``with_estimate`` is false, the 100 M estimate."""
    m = r["measured"]
    loc, ray_ = m["local"], m["ray"]
    res = m["ray_resources"]
    lines = [
        f"## Ray vs local encoding (measured, {r['cpu_count']} cores, Ray {m['ray_version']})", "",
        f"World of {r['config']['groups']} groups: {m['files']} files; builtin model {m['model_id']} on cpu; "
        f"{r['config']['files_per_batch']} files per batch. Load average at start / end: "
        f"{_load(r['load_average']['start'])} / {_load(r['load_average']['end'])} (above the core count: every number "
        f"here is slowed, not uniformly). Local: {r['config']['workers']} decode workers + the "
        f"model in the driver. Ray: local instance with {res['cluster_cpus']:.0f} CPUs (started in "
        f"{m['ray_init_s']:.1f} s, not counted), {res['actors']} actor(s) × {res['num_cpus']} CPU, decode tasks × "
        f"{res['decode_cpus']} CPU.", "",
        table(["executor", "items", "seconds", "first batch s", "items/s", "steady items/s"],
              [["local", loc["items"], loc["seconds"], loc["first_batch_s"], loc["items_per_s"],
                loc["steady_items_per_s"]],
               ["ray", ray_["items"], ray_["seconds"], ray_["first_batch_s"], ray_["items_per_s"],
                ray_["steady_items_per_s"]]]),
        "",
        f"ray / local: {m['ray_over_local']:.2f} end to end (Ray's time includes its actors loading the model: the "
        f"first batch came after {ray_['first_batch_s']:.1f} s); {m['ray_over_local_steady']:.2f} counting only "
        "what came after the first batch (an upper bound: Ray's decode tasks ran ahead while the actors loaded).",
    ]
    e = r["estimate"]
    lines += ["", "## Per-item costs", "",
              f"- measured: builtin model pipeline {e['builtin_core_s_per_item'] * 1e3:.2f} ms of CPU per item "
              f"(2 cores) → {e['builtin_cpu_core_hours_per_million']:.2f} core-hours per million items"]
    p = r.get("photo")
    if p:
        lines += [
            f"- measured, one core: decode + shrink of a 12 MP JPEG ({p['jpeg_bytes'] / 1e6:.1f} MB, synthetic, "
            f"noisy) {p['decode_core_s'] * 1e3:.0f} ms; CLIP ViT-B/32 image forward "
            f"{p['vitb32_cpu_core_s'] * 1e3:.0f} ms ({p['vitb32_flops'] / 1e9:.1f} GFLOP counted) → "
            f"{e['photo_cpu_core_hours_per_million']:.0f} core-hours per million photos on CPU"]
    if p and with_estimate:
        lines += [
            "",
            f"## Estimate (paper, not measured): {e['items'] / 1e6:.0f} M photos on N Ray GPU workers", "",
            f"Assumed: {e['gpu_tflops_assumed']:.0f} TFLOP/s effective per GPU; {e['cores_per_worker']} decode "
            "cores per GPU worker at the measured per-core JPEG cost; linear scaling over workers.", "",
            table(["workers", "GPU-bound items/s", "decode-bound items/s", "bound by", "hours"],
                  [[row["workers"], row["gpu_items_per_s"], row["decode_items_per_s"], row["bound"], row["hours"]]
                   for row in e["rows"]])]
    return "\n".join(lines)


def run(groups: int, files_per_batch: int, workers: int, ray_cpus: int, ray_options: dict, photo: bool,
        gpu_tflops: float, cores_per_worker: int, workdir: Path | None = None, log=print) -> dict:
    from bench.data import ensure_world
    from bench.machine import load_average

    load_start = load_average()
    with tempfile.TemporaryDirectory(prefix="xsearch-ray-bench-") as tmp:
        work = Path(workdir or tmp)
        log(f"world: {groups} groups")
        world = ensure_world(work, groups)
        log("measuring local and ray executors")
        measured = measure_executors(world, files_per_batch, workers, ray_cpus, ray_options)
        costs = None
        if photo:
            log("measuring one-core per-item costs (12 MP JPEG, ViT-B/32)")
            costs = measure_photo_costs(work)
    return {"config": {"groups": groups, "files_per_batch": files_per_batch, "workers": workers,
                       "ray_cpus": ray_cpus, "ray_options": ray_options},
            "cpu_count": os.cpu_count(), "load_average": {"start": load_start, "end": load_average()},
            "measured": measured, "photo": costs,
            "estimate": estimate(costs, measured, gpu_tflops, cores_per_worker)}


def main(argv=None) -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=400, help="world groups (3 files each)")
    ap.add_argument("--batch-files", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="local decode workers")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--actors", type=int, default=None, help="Ray encoder actors (default: the executor's)")
    ap.add_argument("--no-photo", action="store_true", help="skip the 12 MP JPEG / ViT-B/32 per-item costs")
    ap.add_argument("--gpu-tflops", type=float, default=GPU_TFLOPS, help="assumed effective TFLOP/s per GPU")
    ap.add_argument("--cores-per-worker", type=int, default=16, help="decode cores per GPU worker (estimate)")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--out", type=Path, help="write every number as JSON")
    args = ap.parse_args(argv)
    options = {"actors": args.actors} if args.actors else {}
    r = run(args.groups, args.batch_files, args.workers, args.ray_cpus, options, not args.no_photo,
            args.gpu_tflops, args.cores_per_worker, args.workdir, log=lambda s: print(s, file=sys.stderr))
    print(to_markdown(r))
    if args.out:
        args.out.write_text(json.dumps(r, indent=2, default=str))


if __name__ == "__main__":
    main()
