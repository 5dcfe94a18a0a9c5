"""Encoding benchmark: items/s of the indexing pipeline vs the model alone.

Pipeline = what ``xsearch index`` does per file: discover → decode in DataLoader workers (``iter_decoded``)
→ the builtin encoder's preprocessing + forward (``xsearch.embed.embed_segments``). Raw = ``BuiltinModel
.encode`` on tensors already preprocessed and on the device, in batches of the same size. The ratio
pipeline / raw near 1 means decoding keeps the model fed; well below 1 means the model waits for input.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.data import ensure_world
from bench.measure import ratio
from bench.report import table


@dataclass
class EncodingBenchConfig:
    world_groups: int = 700  # one image and one sound per group
    workers: int = 2  # decoding processes, as `xsearch index` defaults to
    files_per_batch: int = 32  # as `xsearch index --batch-files` defaults to
    modalities: tuple[str, ...] = ("image", "audio")
    rounds: int = 3  # pipeline and raw measured alternately this many times; medians reported (load drifts)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _files(world: Path, modality: str):
    from xsearch.media import MediaFile, discover

    return [f for f in discover(world) if isinstance(f, MediaFile) and f.modality == modality]


def measure_decode(files, opts, cfg: EncodingBenchConfig) -> dict:
    """Decoding alone (workers, no model): segments per second."""
    from xsearch.media import iter_decoded

    t0 = time.perf_counter()
    items = sum(len(segs) for segs, _ in iter_decoded(files, opts, files_per_batch=cfg.files_per_batch,
                                                      workers=cfg.workers))
    seconds = time.perf_counter() - t0
    return {"items": items, "seconds": seconds, "items_per_s": items / seconds}


def measure_pipeline(encoder, modality: str, files, opts, cfg: EncodingBenchConfig) -> dict:
    """Decode (workers) + preprocess + embed, as the indexer runs it; also how long the model waited for input."""
    from xsearch.embed import embed_segments
    from xsearch.media import iter_decoded

    items, waited, embedding = 0, 0.0, 0.0
    t0 = time.perf_counter()
    mark = t0
    for segments, _bad in iter_decoded(files, opts, files_per_batch=cfg.files_per_batch, workers=cfg.workers):
        got = time.perf_counter()
        waited += got - mark
        embed_segments(encoder, modality, segments)
        _sync(encoder.device)
        mark = time.perf_counter()
        embedding += mark - got
        items += len(segments)
    seconds = time.perf_counter() - t0
    return {"items": items, "seconds": seconds, "items_per_s": items / seconds, "wait_s": waited,
            "embed_s": embedding, "embed_items_per_s": items / embedding if embedding else None,
            "wait_fraction": waited / seconds}


def measure_raw(encoder, modality: str, sample_segments, items: int, batch: int) -> dict:
    """BuiltinModel.encode on a pre-made, preprocessed, on-device batch, repeated to cover ``items`` items."""
    import torch

    segs = (list(sample_segments) * math.ceil(batch / max(1, len(sample_segments))))[:batch]
    data = [s.data for s in segs]
    x = encoder.pre.images(data) if modality == "image" else encoder.pre.audio(data)
    x = x.to(encoder.device)
    use_amp = encoder.device.startswith("cuda")
    steps = max(1, math.ceil(items / batch))
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
        encoder.model.encode(modality, x, normalize=False)  # warm-up
        _sync(encoder.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            encoder.model.encode(modality, x, normalize=False)
        _sync(encoder.device)
        seconds = time.perf_counter() - t0
    return {"items": steps * batch, "batch": batch, "seconds": seconds, "items_per_s": steps * batch / seconds}


def run(cfg: EncodingBenchConfig, workdir: Path, device: str = "cpu", log=print) -> dict:
    """Pipeline, decode-only and raw-model throughput per modality on a generated world."""
    from xsearch.encoders.registry import load_encoder
    from xsearch.embed import decode_options, embed_segments
    from xsearch.media import decode

    world = ensure_world(workdir, cfg.world_groups)
    encoder = load_encoder("builtin", device)
    opts = decode_options(encoder)
    out = {"config": asdict(cfg), "model_id": encoder.model_id, "device": encoder.device,
           "trained": bool(encoder.trained), "modalities": {}}
    for modality in cfg.modalities:
        files = _files(world, modality)
        log(f"encoding: {modality}, {len(files)} files")
        sample = [s for f in files[:cfg.files_per_batch] for s in decode(f, opts)]
        embed_segments(encoder, modality, sample)  # warm-up: first-call allocations are not pipeline cost
        decoded = measure_decode(files, opts, cfg)
        rounds = []
        for _ in range(max(1, cfg.rounds)):
            pipeline = measure_pipeline(encoder, modality, files, opts, cfg)
            raw = measure_raw(encoder, modality, sample, pipeline["items"], cfg.files_per_batch)
            rounds.append({"pipeline": pipeline, "raw": raw,
                           "pipeline_over_raw": ratio(pipeline["items_per_s"], raw["items_per_s"])})
        middle = sorted(rounds, key=lambda r: r["pipeline_over_raw"])[len(rounds) // 2]
        out["modalities"][modality] = {
            "files": len(files), "decode": decoded, "pipeline": middle["pipeline"], "raw": middle["raw"],
            "pipeline_over_raw": middle["pipeline_over_raw"],
            "pipeline_over_raw_rounds": [r["pipeline_over_raw"] for r in rounds],
            "decode_over_raw": ratio(decoded["items_per_s"], middle["raw"]["items_per_s"]),
        }
    return out


def to_markdown(result: dict) -> str:
    rows = []
    for modality, m in result["modalities"].items():
        spread = ", ".join(f"{r:.2f}" for r in m["pipeline_over_raw_rounds"])
        rows.append([modality, m["pipeline"]["items"], m["decode"]["items_per_s"], m["pipeline"]["items_per_s"],
                     m["pipeline"]["embed_items_per_s"], m["raw"]["items_per_s"],
                     f"{m['pipeline_over_raw']:.3f} ({spread})", m["pipeline"]["wait_fraction"]])
    cfg = result["config"]
    head = (f"Builtin model {result['model_id']} ({'trained' if result['trained'] else 'random weights'}) on "
            f"{result['device']}; {cfg['workers']} decode workers, {cfg['files_per_batch']} files per batch. "
            f"Target: pipeline / raw >= 0.9 (decoding does not starve the model). Pipeline and raw alternate "
            f"{cfg['rounds']} times; the round with the median ratio is shown (all ratios in brackets).")
    return head + "\n\n" + table(["modality", "items", "decode only items/s", "pipeline items/s",
                                  "pipeline's preprocess + embed items/s", "raw model items/s", "pipeline / raw",
                                  "share of pipeline time waiting for input"], rows)
