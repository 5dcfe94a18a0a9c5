"""Encoding benchmark: items/s of the indexing pipeline vs the model alone.

Pipeline = what ``xsearch index`` does per file: discover → decode in DataLoader workers (``iter_decoded``)
→ the builtin encoder's preprocessing + forward (``xsearch.engine.embed.embed_segments``). Raw = ``BuiltinModel
.encode`` on tensors already preprocessed and on the device, in batches of the same size. The ratio
pipeline / raw near 1 means decoding keeps the model fed; well below 1 means the model waits for input.

Real-size models (``real_models``): the same pipeline with open_clip ViT-B-32 (images: generated 4000×3000 JPEG
photos) and the CLAP HTSAT architecture (audio: the world's sounds, 10 s windows at 48 kHz), both at random
weights (same compute as the trained ones; no download), next to the published throughput of clip-retrieval
(~1,500 samples/s, RTX 3080) and rclip (~119 images/s, M1 Max). JPEG draft (``jpeg_photos``): decoding a
4000×3000 JPEG for a 224-pixel model input at full size vs at reduced scale (xsearch.media.image, PIL draft).
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
    jpeg_photos: int = 0  # > 0: generate this many 4000×3000 JPEGs; measure draft decoding and real-size models
    real_models: tuple[str, ...] = ()  # "openclip" (ViT-B-32), "clap" (HTSAT): random weights, real size
    real_items: int = 48  # items per real-size model measurement


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
    from xsearch.engine.embed import embed_segments
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


#: Published throughput of the peers (their READMEs): clip-retrieval's clip inference on an RTX 3080, rclip
#: indexing on an M1 Max.
PUBLISHED = {"clip-retrieval (RTX 3080)": 1500.0, "rclip (M1 Max)": 119.0}
PHOTO_SIZE = (4000, 3000)


def make_photos(folder: Path, n: int, size=PHOTO_SIZE) -> list[Path]:
    """``n`` camera-size JPEGs (smooth gradients + sensor-like noise, quality 90: ~4 MB each), made once."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"photo_{i:03d}.jpg"
        if not path.is_file():
            rng = np.random.default_rng(i)
            y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
            a, b, c = rng.uniform(4, 24, 3)
            pixels = np.stack([(x / a) % 256, (y / b) % 256, ((x + y) / c) % 256], -1)
            pixels += rng.normal(0, 10, pixels.shape).astype(np.float32)
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


def measure_jpeg_draft(photos: list[Path], short_side: int = 224) -> dict:
    """ms per photo to get the model-size image: full decode + shrink vs draft decode + shrink (one process)."""
    from xsearch.media.image import load_image, shrink_to_short_side

    out = {"photos": len(photos), "size": list(PHOTO_SIZE), "short_side": short_side,
           "mb_per_photo": sum(p.stat().st_size for p in photos) / len(photos) / 1e6}
    for name, side in (("full", 0), ("draft", short_side)):
        t0 = time.perf_counter()
        for p in photos:
            shrink_to_short_side(load_image(p, min_short_side=side), short_side)
        out[f"{name}_ms"] = (time.perf_counter() - t0) / len(photos) * 1000
    out["speedup"] = ratio(out["full_ms"], out["draft_ms"])
    return out


def _on_runtime(runtime: str, build):
    """``build()`` under ``runtime`` (the encoders read it when built); torch by default here, because the raw
    forward these benches compare against is the torch model's."""
    from xsearch.encoders import runtimes

    before = runtimes._chosen
    runtimes.set_runtime(runtime)
    try:
        return build()
    finally:
        runtimes.set_runtime(before)


def _real_openclip(workdir: Path, device: str, runtime: str = "torch"):
    """open_clip ViT-B-32 at random weights, saved once and loaded through xsearch's own loader."""
    import open_clip
    import torch

    from xsearch.encoders.openclip import OpenClipEncoder

    path = Path(workdir) / "vit-b-32-random.bin"
    if not path.is_file():
        torch.manual_seed(0)
        torch.save(open_clip.create_model("ViT-B-32").state_dict(), path)
    return _on_runtime(runtime, lambda: OpenClipEncoder("ViT-B-32", str(path), device, batch_size=32))


def _real_clap(workdir: Path, device: str, runtime: str = "torch"):
    """The CLAP HTSAT-unfused architecture (transformers' ClapConfig defaults) at random weights."""
    folder = Path(workdir) / "clap-htsat-random"
    if not (folder / "config.json").is_file():
        import json

        import torch
        from tokenizers import ByteLevelBPETokenizer
        from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, RobertaTokenizer

        torch.manual_seed(0)
        ClapModel(ClapConfig()).eval().save_pretrained(folder)
        ClapFeatureExtractor().save_pretrained(folder)
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(["a dog barking", "rain on a roof", "birds singing"] * 8, vocab_size=300,
                                min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                show_progress=False)
        model = json.loads(bpe.to_str())["model"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        RobertaTokenizer(vocab=model["vocab"], merges=merges).save_pretrained(folder)
    from xsearch.encoders.clap import ClapEncoder

    return _on_runtime(runtime, lambda: ClapEncoder(str(folder), device, batch_size=8))


def measure_real_model(kind: str, encoder, files, cfg: EncodingBenchConfig, opts_list: list) -> dict:
    """Pipeline items/s (for each decode option) and raw forward items/s of one real-size model."""
    import torch

    from xsearch.engine.embed import embed_segments
    from xsearch.media import decode

    modality = "image" if kind == "openclip" else "audio"
    out = {"model": kind, "spec": encoder.spec, "modality": modality, "files": len(files), "pipelines": []}
    sample = [s for f in files[:8] for s in decode(f, opts_list[-1][1])]
    embed_segments(encoder, modality, sample[:2])  # warm-up
    for label, opts in opts_list:
        p = measure_pipeline(encoder, modality, files, opts, cfg)
        out["pipelines"].append({"decode": label, **p})
    batch = 32 if modality == "image" else 8
    data = (sample * (batch // max(1, len(sample)) + 1))[:batch]
    with torch.inference_mode():
        if modality == "image":
            x = torch.stack([encoder.preprocess(s.data) for s in data]).to(encoder.device)

            def forward():
                return encoder.model.encode_image(x)
        else:
            feats = encoder.audio_features([s.data for s in data])

            def forward():
                return encoder.model.get_audio_features(**feats)
        forward()
        steps = max(1, math.ceil(cfg.real_items / batch))
        t0 = time.perf_counter()
        for _ in range(steps):
            forward()
        _sync(encoder.device)
        seconds = time.perf_counter() - t0
    out["raw"] = {"items": steps * batch, "batch": batch, "items_per_s": steps * batch / seconds}
    best = max(out["pipelines"], key=lambda r: r["items_per_s"])
    out["pipeline_over_raw"] = ratio(best["items_per_s"], out["raw"]["items_per_s"])
    out["vs_published"] = {name: ratio(best["items_per_s"], rate) for name, rate in PUBLISHED.items()}
    return out


def run_real(cfg: EncodingBenchConfig, workdir: Path, device: str = "cpu", log=print) -> dict:
    """JPEG draft decoding and the real-size models (see the module docstring)."""
    from dataclasses import replace

    from xsearch.engine.embed import decode_options
    from xsearch.media import MediaFile

    out: dict = {}
    photos = make_photos(Path(workdir) / "photos", cfg.jpeg_photos)
    log(f"encoding: JPEG draft on {len(photos)} photos of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}")
    out["jpeg_draft"] = measure_jpeg_draft(photos)
    out["models"] = []
    for kind in cfg.real_models:
        log(f"encoding: real-size {kind} at random weights")
        if kind == "openclip":
            encoder = _real_openclip(workdir, device)
            files = [MediaFile(p, "image", p.stat().st_size, 0) for p in photos]
            own = decode_options(encoder)
            size = int(getattr(encoder.model.visual, "image_size", (224, 224))[0])
            opts = [("full size, resized by the model's transform", replace(own, image_short_side=0)),
                    (f"as `xsearch index` decodes for this encoder: shrunk to {size} in the decode workers, "
                     "JPEG draft", replace(own, image_short_side=size))]
        else:
            encoder = _real_clap(workdir, device)
            world = ensure_world(workdir, cfg.world_groups)
            files = _files(world, "audio")[:cfg.real_items]
            opts = [("as `xsearch index` decodes for this encoder", decode_options(encoder))]
        out["models"].append(measure_real_model(kind, encoder, files, cfg, opts))
        del encoder
    return out


def run(cfg: EncodingBenchConfig, workdir: Path, device: str = "cpu", log=print) -> dict:
    """Pipeline, decode-only and raw-model throughput per modality on a generated world."""
    from xsearch.encoders.builtin import load_builtin
    from xsearch.engine.embed import decode_options, embed_segments
    from xsearch.media import decode

    world = ensure_world(workdir, cfg.world_groups)
    encoder = load_builtin(device=device)  # the torch runtime: the raw forward below is its model's
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
    if cfg.jpeg_photos:
        out["real"] = run_real(cfg, workdir, device, log)
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
    text = head + "\n\n" + table(["modality", "items", "decode only items/s", "pipeline items/s",
                                  "pipeline's preprocess + embed items/s", "raw model items/s", "pipeline / raw",
                                  "share of pipeline time waiting for input"], rows)
    real = result.get("real")
    if real:
        text += "\n\n" + real_to_markdown(real)
    return text


def real_to_markdown(real: dict) -> str:
    d = real["jpeg_draft"]
    parts = [f"JPEG draft: {d['photos']} photos of {d['size'][0]}×{d['size'][1]} ({d['mb_per_photo']:.1f} MB "
             f"each) to a {d['short_side']}-pixel short side, one process: full decode + shrink "
             f"{d['full_ms']:.0f} ms/photo, draft decode + shrink {d['draft_ms']:.0f} ms/photo "
             f"(**{d['speedup']:.1f}×**)."]
    rows = []
    for m in real["models"]:
        for p in m["pipelines"]:
            rows.append([m["model"], m["modality"], p["decode"], p["items"], p["items_per_s"],
                         p["embed_items_per_s"], m["raw"]["items_per_s"],
                         ratio(p["items_per_s"], m["raw"]["items_per_s"]), p["wait_fraction"]]
                        + [ratio(p["items_per_s"], rate) for rate in PUBLISHED.values()])
    if rows:
        parts.append("Real-size models at random weights (same compute as trained ones): pipeline = decode "
                     "workers + preprocessing + forward, raw = forward on ready tensors; ratios to the peers' "
                     "published rates on their hardware.")
        parts.append(table(["model", "modality", "decoding", "items", "pipeline items/s",
                            "preprocess + embed items/s", "raw forward items/s", "pipeline / raw",
                            "share waiting for input"] + [f"ours / {name}" for name in PUBLISHED], rows))
    return "\n\n".join(parts)
