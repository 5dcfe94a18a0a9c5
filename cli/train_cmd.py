"""`xsearch train`: contrastive training of the builtin model, or a bind head joining two pretrained models."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import List, Optional

import typer

from xsearch.cli.output import err_console, note, print_json

OBJECTIVE_HELP = (
    "contrastive (multi-pair InfoNCE); autoencoder (plus decoders from the shared space back to every "
    "modality's fixed features: image thumbnail, audio log-Mel statistics, hashed bag of tokens; λ recon); "
    "adversarial (plus a modality discriminator trained against the encoders through gradient reversal; "
    "λ adv). Decoders and discriminator are training-only: the checkpoint is the encoder alone."
)
LAMBDA_HELP = (
    "Loss weight per modality pair, e.g. --lambda image-audio=0.5 "
    "(pairs: image-text, image-audio, audio-text; default 1), and of the objective's extra term: "
    "recon=W (autoencoder, default 1), adv=W (adversarial, default 0.1). All pairs at 0 with autoencoder: "
    "reconstruction alone."
)


def train(
    manifest: Optional[Path] = typer.Option(
        None, "--manifest", "-m", help="JSONL manifest of paired image / audio / text records."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory (model.safetensors + config.json)."),
    preset: Optional[str] = typer.Option(None, help="Named recipe: 'builtin' (the shipped model) or 'tiny'. Without "
                                         "--manifest, it generates its world."),
    world_dir: Optional[Path] = typer.Option(
        None, help="Where a preset generates its world (default: $XSEARCH_HOME/worlds/...)."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Training epochs."),
    batch_size: Optional[int] = typer.Option(
        None, min=2, help="Groups per batch (each contributes one item per modality)."),
    lr: Optional[float] = typer.Option(None, help="Peak AdamW learning rate (warm-up, then cosine decay)."),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay."),
    seed: int = typer.Option(0, min=0, max=2**32 - 1, help="Random seed (data order, init, augmentation)."),
    objective: str = typer.Option("contrastive", help=OBJECTIVE_HELP),
    lambdas: List[str] = typer.Option([], "--lambda", help=LAMBDA_HELP),
    freeze: List[str] = typer.Option([], help="Freeze a tower: image, audio or text (repeatable)."),
    init_from: Optional[Path] = typer.Option(
        None, help="Start from this builtin checkpoint instead of random weights."),
    resume: bool = typer.Option(False, help="Continue an interrupted run in --out."),
    overwrite: bool = typer.Option(False, help="Replace a checkpoint already in --out."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N (default: cuda when available)."),
    tensorboard: Optional[Path] = typer.Option(
        None, help="Write TensorBoard logs here (needs the tensorboard package)."),
    threads: Optional[int] = typer.Option(None, min=1, help="CPU threads for torch."),
    bind: Optional[str] = typer.Option(
        None, help="Train only a projection head for this modality ('audio') into --base's space."),
    base: Optional[str] = typer.Option(
        None, help="With --bind: the image+text model, e.g. openclip:ViT-B-32:laion2b_s34b_b79k."),
    audio: Optional[str] = typer.Option(
        None, "--audio", help="With --bind: the audio+text model, e.g. clap:laion/clap-htsat-unfused."),
    reranker: bool = typer.Option(False, "--reranker", help="Train the cross-attention re-ranker (`search --rerank`) "
                                  "for the builtin model on a generated world (or --manifest, a world's manifest)."),
    as_json: bool = typer.Option(False, "--json", help="Print the training history as JSON."),
) -> None:
    """Train the builtin tri-modal model with multi-pair InfoNCE (optionally plus cross-reconstruction or a modality
    adversary: --objective), or (--bind audio) a CLAP→CLIP projection head.

    The shipped model is reproduced by one command:
    `xsearch train --preset builtin --out xsearch/encoders/weights/builtin --overwrite`.
    """
    from xsearch.core.errors import UsageError

    if reranker:
        _train_reranker(manifest, out, world_dir, epochs, batch_size, lr, weight_decay, seed, device, threads,
                        overwrite, as_json)
        return
    if bind is not None and objective != "contrastive":
        raise UsageError("--objective applies to the builtin model; --bind trains a projection head contrastively.")
    if bind is not None:
        _train_bind(bind, base, audio, manifest, out, epochs, lr, seed, device, as_json)
        return
    if base or audio:
        raise UsageError("--base and --audio only apply with --bind audio.")
    hyper = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                               ("weight_decay", weight_decay)) if v is not None}
    options = dict(seed=seed, freeze=list(freeze), device=device, resume=resume, overwrite=overwrite,
                   init_from=str(init_from) if init_from else None,
                   tensorboard=str(tensorboard) if tensorboard else None, threads=threads)
    _train_builtin(manifest, out, preset, world_dir, hyper, objective, lambdas, options, as_json)


def _train_builtin(manifest: Path | None, out: Path, preset: str | None, world_dir: Path | None, hyper: dict,
                   objective: str, lambdas: list[str], options: dict, as_json: bool) -> None:
    """`xsearch train [--preset NAME]`: the builtin model on a manifest, or on the preset's generated world.
    ``hyper``: the given --epochs / --batch-size / --lr / --weight-decay (over the preset's); ``options``: the other
    TrainArgs fields, as given."""
    from dataclasses import asdict

    from xsearch.core.errors import UsageError
    from xsearch.train.loss import parse_loss_weights
    from xsearch.train.presets import preset as get_preset
    from xsearch.train.trainer import TrainArgs, check_out_dir, train_builtin

    recipe = get_preset(preset) if preset else {}
    world = recipe.pop("world", None)
    if manifest is None and world is None:
        raise UsageError("give --manifest FILE, or --preset builtin to train on a generated world.")
    recipe.update(hyper)
    # built (and so checked) before a preset's world is generated: a NaN --lr fails in a moment, not minutes
    pair_weights, objective_weights = parse_loss_weights(lambdas, objective)
    args = TrainArgs(manifest=str(manifest or ""), out_dir=str(out), pair_weights=pair_weights, objective=objective,
                     objective_weights=objective_weights, **options, **recipe)
    check_out_dir(out)
    if manifest is None:
        args.manifest, args.world = _world_manifest(world_dir, preset, world), world
    history = train_builtin(args, log=note, progress=err_console.is_terminal)
    if as_json:
        print_json({"out": str(out), "history": [asdict(h) for h in history]})
    else:
        spec = f"builtin:{out.expanduser().absolute()}"
        note(f"saved {out}/model.safetensors; use it with --model {shlex.quote(spec)}")


def _world_manifest(world_dir: Path | None, name: str, world: dict) -> str:
    """The manifest of the generated world a recipe trains on: made in ``world_dir`` (default: under
    $XSEARCH_HOME/worlds, named by the recipe and the world's size and seed), or reused when it is there."""
    from xsearch.core.paths import data_home
    from xsearch.world.generate import ensure_world

    wdir = world_dir or data_home() / "worlds" / f"{name}-n{world['n']}-seed{world['seed']}"
    note(f"world: {wdir} (n={world['n']}, seed={world['seed']})")
    return str(ensure_world(wdir, world["n"], world["seed"]))


def _train_bind(bind, base, audio, manifest, out, epochs, lr, seed, device, as_json) -> None:
    from xsearch.core.errors import UsageError
    from xsearch.encoders.registry import load_encoder
    from xsearch.train.bind import BindArgs, train_bind
    from xsearch.train.trainer import check_out_dir

    if bind != "audio":
        raise UsageError(f"--bind {bind!r}: only 'audio' can be bound (into the image+text model's space).")
    if not base or not audio or manifest is None:
        raise UsageError("--bind audio needs --base <image+text model>, --audio <audio+text model> and --manifest.")
    overrides = {k: v for k, v in (("epochs", epochs), ("lr", lr)) if v is not None}
    out = out.expanduser().absolute()
    args = BindArgs(manifest=str(manifest), out_dir=str(out), seed=seed, **overrides)
    check_out_dir(out)
    base, audio = _pinned(base), _pinned(audio)
    vision_enc, audio_enc = load_encoder(base, device), load_encoder(audio, device)
    _, report = train_bind(args, vision_enc, audio_enc, log=note)
    spec = bind_spec(vision_enc.spec, audio_enc.spec, out)
    if as_json:
        print_json({"out": str(out), "report": report, "model": spec})
    else:
        note(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()))
        note(f"saved {out}; use it with --model {shlex.quote(spec)}")


def _train_reranker(manifest, out, world_dir, epochs, batch_size, lr, weight_decay, seed, device, threads, overwrite,
                    as_json) -> None:
    """`xsearch train --reranker`: the shipped one is `xsearch train --reranker --out
    xsearch/encoders/weights/reranker --overwrite` (it generates its world first)."""
    from xsearch.encoders.registry import load_encoder
    from xsearch.train.reranker import WORLD, RerankArgs, train_reranker
    from xsearch.train.trainer import check_out_dir

    overrides = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr),
                                   ("weight_decay", weight_decay)) if v is not None}
    args = RerankArgs(out_dir=str(out), manifest=str(manifest or ""), seed=seed, device=device, threads=threads,
                      overwrite=overwrite, **overrides)  # checked before a world is generated
    check_out_dir(out)
    if manifest is None:
        args.manifest, args.world = _world_manifest(world_dir, "reranker", WORLD), dict(WORLD)
    report = train_reranker(args, load_encoder("builtin", device), log=note)
    if as_json:
        print_json({"out": str(out), **report})
    else:
        note(f"saved {out}/model.safetensors; use it with xsearch search ... --reranker {shlex.quote(str(out))}")


def bind_spec(vision_spec: str, audio_spec: str, head_dir: Path) -> str:
    """The ``--model`` spec that loads the pair a head was trained for, with the head."""
    return f"{vision_spec}+{audio_spec}+bind:{Path(head_dir).expanduser().absolute()}"


def _pinned(spec: str) -> str:
    """A builtin spec as the checkpoint folder it loads (``builtin`` → ``builtin:<shipped dir>``, relative paths made
    absolute): a pair spec needs the ``builtin:<dir>`` form, and the head is tied to the model id it was trained
    against, so the spec printed for it must name the very same checkpoint."""
    kind, sep, rest = spec.strip().partition(":")
    if kind != "builtin" or "+" in spec:
        return spec
    if not sep or not rest:
        from xsearch.encoders.builtin import WEIGHTS_FILE, default_weights_dir

        shipped = default_weights_dir()
        return f"builtin:{shipped}" if (shipped / WEIGHTS_FILE).is_file() else spec
    return f"builtin:{Path(rest).expanduser().absolute()}"
