"""`xsearch train`: contrastive training of the builtin model, or a bind head joining two pretrained models."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from xsearch.cli.output import note, print_json


def train(
    manifest: Optional[Path] = typer.Option(
        None, "--manifest", "-m", help="JSONL manifest of paired image / audio / text records."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory (model.safetensors + config.json)."),
    preset: Optional[str] = typer.Option(
        None, help="Named recipe: 'builtin' (the shipped model) or 'tiny'. Without --manifest, it generates its world."
    ),
    world_dir: Optional[Path] = typer.Option(
        None, help="Where a preset generates its world (default: $XSEARCH_HOME/worlds/...)."
    ),
    epochs: Optional[int] = typer.Option(None, help="Training epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Groups per batch (each contributes one item per modality)."),
    lr: Optional[float] = typer.Option(None, help="Peak AdamW learning rate (warm-up, then cosine decay)."),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay."),
    seed: int = typer.Option(0, help="Random seed (data order, init, augmentation)."),
    lambdas: List[str] = typer.Option(
        [],
        "--lambda",
        help="Loss weight per modality pair, e.g. --lambda image-audio=0.5 "
        "(pairs: image-text, image-audio, audio-text; default 1).",
    ),
    freeze: List[str] = typer.Option([], help="Freeze a tower: image, audio or text (repeatable)."),
    init_from: Optional[Path] = typer.Option(
        None, help="Start from this builtin checkpoint instead of random weights."
    ),
    resume: bool = typer.Option(False, help="Continue an interrupted run in --out."),
    overwrite: bool = typer.Option(False, help="Replace a checkpoint already in --out."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N (default: cuda when available)."),
    tensorboard: Optional[Path] = typer.Option(None, help="Write TensorBoard logs here (needs xsearch[tensorboard])."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for torch."),
    bind: Optional[str] = typer.Option(
        None, help="Train only a projection head for this modality ('audio') into --base's space."
    ),
    base: Optional[str] = typer.Option(
        None, help="With --bind: the image+text model, e.g. openclip:ViT-B-32:laion2b_s34b_b79k."
    ),
    audio: Optional[str] = typer.Option(
        None, "--audio", help="With --bind: the audio+text model, e.g. clap:laion/clap-htsat-unfused."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the training history as JSON."),
) -> None:
    """Train the builtin tri-modal model with multi-pair InfoNCE, or (--bind audio) a CLAP→CLIP projection head.

    The shipped model is reproduced by one command:
    `xsearch train --preset builtin --out xsearch/encoders/weights/builtin --overwrite`.
    """
    from dataclasses import asdict

    from xsearch.errors import UsageError

    if bind is not None:
        _train_bind(bind, base, audio, manifest, out, epochs, lr, seed, device, as_json)
        return
    if base or audio:
        raise UsageError("--base and --audio only apply with --bind audio.")

    from xsearch.train.loss import parse_pair_weights
    from xsearch.train.presets import ensure_world
    from xsearch.train.presets import preset as get_preset
    from xsearch.train.trainer import TrainArgs, train_builtin

    recipe = get_preset(preset) if preset else {}
    world = recipe.pop("world", None)
    if manifest is None:
        if world is None:
            raise UsageError("give --manifest FILE, or --preset builtin to train on a generated world.")
        from xsearch.paths import data_home

        wdir = world_dir or data_home() / "worlds" / f"{preset}-n{world['n']}-seed{world['seed']}"
        note(f"world: {wdir} (n={world['n']}, seed={world['seed']})")
        manifest = ensure_world(wdir, world["n"], world["seed"])
    else:
        world = None
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("weight_decay", weight_decay)):
        if value is not None:
            recipe[key] = value
    args = TrainArgs(manifest=str(manifest), out_dir=str(out), seed=seed, pair_weights=parse_pair_weights(lambdas),
                     freeze=list(freeze), device=device, resume=resume, overwrite=overwrite,
                     init_from=str(init_from) if init_from else None,
                     tensorboard=str(tensorboard) if tensorboard else None, threads=threads, world=world, **recipe)
    history = train_builtin(args, log=note)
    if as_json:
        print_json({"out": str(out), "history": [asdict(h) for h in history]})
    else:
        note(f"saved {out}/model.safetensors; use it with --model builtin:{out}")


def _train_bind(bind, base, audio, manifest, out, epochs, lr, seed, device, as_json) -> None:
    from xsearch.encoders.registry import load_encoder
    from xsearch.errors import UsageError
    from xsearch.train.bind import BindArgs, train_bind

    if bind != "audio":
        raise UsageError(f"--bind {bind!r}: only 'audio' can be bound (into the image+text model's space).")
    if not base or not audio or manifest is None:
        raise UsageError("--bind audio needs --base <image+text model>, --audio <audio+text model> and --manifest.")
    args = BindArgs(manifest=str(manifest), out_dir=str(out), seed=seed)
    if epochs is not None:
        args.epochs = epochs
    if lr is not None:
        args.lr = lr
    vision_enc, audio_enc = load_encoder(base, device), load_encoder(audio, device)
    _, report = train_bind(args, vision_enc, audio_enc, log=note)
    if as_json:
        print_json({"out": str(out), "report": report})
    else:
        note(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()))
        note(f"saved {out}; use it with --model '{base}+{audio}+bind:{out}'")
