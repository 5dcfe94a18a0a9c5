"""Joining image and audio without paired image–audio data: text bridge and bind head vs direct training.

``python -m bench.bridge [--workdir DIR] [--out bench/results/bridge.md]``

Trains (once; reused from --workdir) two builtin-architecture towers on the preset world, each from its own
random init and on ONE modality pair only: an image+text model (λ image-text = 1, others 0) and an audio+text
model (λ audio-text = 1). Their spaces share nothing. Then, on the held-out split of a separate evaluation world
(seed 1, 1,400 groups → ~210 test groups of colour–shape pairs never trained on), it reports image→audio and
audio→image for:

- direct: the shipped builtin model, trained jointly on all three pairs (image–audio pairs included);
- bridge: the two towers joined through the world's text vocabulary (training-free, ``+bridge:``);
- bind: the two towers joined by a projection head fitted on audio–caption pairs only (``+bind:``);
- bridge (shipped image+text): the shipped model's image+text side joined to the separate audio tower;
- CCA: canonical correlation on frozen hand-made features, fitted on image–audio pairs (a classic baseline
  that, unlike the bridge, does use paired data).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

TOWER_EPOCHS = 30
DIRECTIONS = [("image", "audio"), ("audio", "image")]


def _train_tower(name: str, pairs: dict, manifest: Path, out: Path, log) -> Path:
    from xsearch.train.trainer import TrainArgs, train_builtin

    if (out / "model.safetensors").is_file():
        log(f"{name}: reusing {out}")
        return out
    t0 = time.time()
    train_builtin(TrainArgs(manifest=str(manifest), out_dir=str(out), pair_weights=pairs, epochs=TOWER_EPOCHS,
                            seed={"vision": 11, "audio": 12}[name], overwrite=True), progress=False, log=log)
    log(f"{name}: trained in {time.time() - t0:.0f}s")
    return out


def run(workdir: Path, log=print) -> dict:
    from xsearch.encoders.registry import load_encoder
    from xsearch.evaluation.cca import evaluate_cca
    from xsearch.evaluation.runner import evaluate
    from xsearch.train.bind import BindArgs, train_bind
    from xsearch.train.presets import preset
    from xsearch.world import vocabulary
    from xsearch.world.generate import ensure_world

    workdir.mkdir(parents=True, exist_ok=True)
    world = preset("builtin")["world"]
    train_manifest = ensure_world(workdir / "train-world", world["n"], world["seed"])
    eval_manifest = ensure_world(workdir / "eval-world", 1400, 1)
    vocab = workdir / "world-vocab.txt"
    vocab.write_text("\n".join(vocabulary()) + "\n")
    vision = _train_tower("vision", {"image-text": 1.0, "image-audio": 0.0, "audio-text": 0.0}, train_manifest,
                          workdir / "vision", log)
    audio = _train_tower("audio", {"image-text": 0.0, "image-audio": 0.0, "audio-text": 1.0}, train_manifest,
                         workdir / "audio", log)
    bind_dir = workdir / "bind"
    if not (bind_dir / "model.safetensors").is_file():
        train_bind(BindArgs(manifest=str(train_manifest), out_dir=str(bind_dir)), load_encoder(f"builtin:{vision}"),
                   load_encoder(f"builtin:{audio}"), log=log)
    rows = {
        "direct (shipped builtin, jointly trained)": "builtin",
        "bridge: image+text tower + audio+text tower, world vocabulary": (
            f"builtin:{vision}+builtin:{audio}+bridge:{vocab}"
        ),
        "bind head: same towers, fitted on audio captions only": f"builtin:{vision}+builtin:{audio}+bind:{bind_dir}",
        "bridge: shipped image+text side + audio+text tower": f"builtin+builtin:{audio}+bridge:{vocab}",
    }
    results = {}
    for name, spec in rows.items():
        report = evaluate(load_encoder(spec), str(eval_manifest), directions=DIRECTIONS)
        results[name] = {"spec": spec, **{r.name: {"metrics": r.metrics, "chance": r.chance} for r in report.results}}
        log(f"{name}: " + ", ".join(f"{r.name} R@1 {r.metrics['R@1']:.3f}" for r in report.results))
    cca = evaluate_cca(str(eval_manifest), directions=DIRECTIONS)
    results["CCA on frozen features (uses image–audio pairs)"] = {
        "spec": "xsearch eval --aligner cca",
        **{r.name: {"metrics": r.metrics, "chance": r.chance} for r in cca.results},
    }
    # the towers on their own pairs, to show each side is sound
    for name, spec, dirs in (("image+text tower alone", f"builtin:{vision}", [("text", "image")]),
                             ("audio+text tower alone", f"builtin:{audio}", [("text", "audio")])):
        report = evaluate(load_encoder(spec), str(eval_manifest), directions=dirs)
        results[name] = {"spec": spec, **{r.name: {"metrics": r.metrics, "chance": r.chance} for r in report.results}}
    return results


def markdown(results: dict) -> str:
    lines = [
        "| model | direction | R@1 | R@5 | R@10 | mAP | chance R@1 | R@1 / chance |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        for direction, r in res.items():
            if direction == "spec":
                continue
            m, c = r["metrics"], r["chance"]
            lines.append(f"| {name} | {direction} | {m['R@1']:.3f} | {m['R@5']:.3f} | {m['R@10']:.3f} | {m['mAP']:.3f} "
                         f"| {c['R@1']:.4f} | {m['R@1'] / c['R@1']:.0f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/xsearch-bench-bridge"))
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here (and .json)")
    args = parser.parse_args()
    t0 = time.time()
    results = run(args.workdir, log=lambda s: print(s, flush=True))
    table = markdown(results)
    print(table)
    print(f"\n(total {time.time() - t0:.0f}s)")
    if args.out:
        args.out.write_text(table + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
