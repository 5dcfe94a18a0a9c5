"""The GPU check behind ``bench/gpu.sh``: FAISS on the GPU vs the CPU, encoders under CUDA autocast vs CPU fp32.

``python -m bench.gpu_check`` on a CUDA machine: 1M × 512 vectors, Flat and IVF on the CPU and through
``index_cpu_to_all_gpus`` (what a collection does when FAISS sees a GPU): the same top-10 ids (overlap) and scores,
and the speed-up of a batch of queries; then the builtin model and open_clip ViT-B-32 (random weights) on CUDA with
autocast vs CPU fp32: the smallest cosine between the two vectors of each item, and images/s on each.
``--dry-run`` runs the same code on the CPU only, at toy sizes, with the GPU side played by a second CPU index / the
CPU model: it checks the script, not a GPU. Prints one ``check NAME: ...`` line per measurement; exit 1 when a
check fails its tolerance.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

TOL = {"faiss_overlap": 0.99, "faiss_score_abs": 1e-3, "encoder_cosine": 0.99}


def _faiss_check(n: int, dim: int, dry: bool) -> bool:
    import faiss

    from bench.data import clustered_vectors

    base = clustered_vectors(n, dim, seed=0, stream=1)
    queries = clustered_vectors(1000, dim, seed=0, stream=2)
    ok = True
    for factory in ("Flat", "IVF1024,Flat" if n >= 100_000 else "IVF64,Flat"):
        cpu = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        cpu.train(base[: min(n, 100_000)])
        cpu.add(base)
        if hasattr(cpu, "nprobe"):
            cpu.nprobe = 16
        if dry:
            gpu = cpu  # no GPU: the same index plays both sides
        else:
            gpu = faiss.index_cpu_to_all_gpus(cpu)
            if hasattr(cpu, "nprobe"):
                faiss.GpuParameterSpace().set_index_parameter(gpu, "nprobe", 16)
        timings = {}
        for side, index in (("cpu", cpu), ("gpu", gpu)):
            index.search(queries[:10], 10)
            t0 = time.perf_counter()
            d, i = index.search(queries, 10)
            timings[side] = (time.perf_counter() - t0, d, i)
        (tc, dc, ic), (tg, dg, ig) = timings["cpu"], timings["gpu"]
        overlap = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ic, ig)]))
        score = float(np.abs(np.sort(dc, 1) - np.sort(dg, 1)).max())
        good = overlap >= TOL["faiss_overlap"] and score <= TOL["faiss_score_abs"]
        ok &= good
        speed = "no speed-up measured (dry run: the CPU index on both sides)" if dry else (
            f"speed-up {tc / tg:.1f}x ({tc * 1000:.0f} ms vs {tg * 1000:.0f} ms for 1000 queries)")
        print(f"check faiss {factory} {n}x{dim}: top-10 overlap {overlap:.4f}, max score diff {score:.2e}, {speed} "
              f"{'ok' if good else 'FAILED'}", flush=True)
    return ok


def _encoder_check(dry: bool, batch: int, seconds: float) -> bool:
    import torch

    from xsearch.encoders._batching import autocast
    from xsearch.encoders.builtin import load_builtin

    device = "cpu" if dry else "cuda"
    ok = True
    builtin = load_builtin(device="cpu").model
    models = {"builtin image tower": (lambda m, x: m.encode("image", x), builtin, torch.rand(batch, 3, 64, 64))}
    import open_clip

    torch.manual_seed(0)
    models["open_clip ViT-B-32 (random weights)"] = (lambda m, x: m.encode_image(x),
                                                     open_clip.create_model("ViT-B-32").eval(),
                                                     torch.rand(batch, 3, 224, 224))
    for name, (fn, model, x) in models.items():
        rates, outs = {}, {}
        for side in ("cpu", device):
            m = model.to(side)
            xs = x.to(side)
            with torch.inference_mode(), autocast(side):
                outs[side] = torch.nn.functional.normalize(fn(m, xs).float(), dim=-1).cpu()
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    fn(m, xs)
                    n += len(xs)
                if side.startswith("cuda"):
                    torch.cuda.synchronize()
                rates[side] = n / (time.perf_counter() - t0)
        cos = float((outs["cpu"] * outs[device]).sum(1).min())
        good = cos >= TOL["encoder_cosine"]
        ok &= good
        print(f"check encoder {name}: min cosine {device}{' autocast' if not dry else ''} vs cpu fp32 {cos:.5f}, "
              f"{rates[device]:.1f} vs {rates['cpu']:.1f} images/s {'ok' if good else 'FAILED'}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU only, toy sizes: checks the script, not a GPU")
    ap.add_argument("--vectors", type=int, default=None, help="FAISS vectors (default 1M, 20k with --dry-run)")
    args = ap.parse_args(argv)
    dry = args.dry_run
    if not dry:
        import faiss
        import torch

        if not torch.cuda.is_available() or faiss.get_num_gpus() == 0:
            print(f"no GPU: torch sees {torch.cuda.device_count()}, faiss {faiss.get_num_gpus()} "
                  "(faiss-gpu installed? pip install 'xsearch[gpu]'); use --dry-run to check the script on a CPU")
            return 2
        print(f"gpu: {torch.cuda.get_device_name(0)}", flush=True)
    n = args.vectors or (20_000 if dry else 1_000_000)
    ok = _faiss_check(n, 512, dry)
    ok &= _encoder_check(dry, batch=4 if dry else 64, seconds=0.5 if dry else 5.0)
    print("gpu check: " + ("all within tolerance" if ok else "SOME CHECKS FAILED") + (" (dry run)" if dry else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
