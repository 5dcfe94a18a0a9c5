"""Training of the builtin tri-modal model: contrastive (multi-pair InfoNCE), optionally with a cross-reconstruction
term (``objective="autoencoder"``) or a modality adversary behind gradient reversal (``"adversarial"``); see
``xsearch.train.loss``. Their decoders / discriminator are training-only heads: kept in trainer_state.pt for
``--resume``, never in the encoder checkpoint (model.safetensors), which loads as ``builtin:<dir>`` either way.

AdamW, linear warm-up then cosine decay, gradient clipping, fixed seeds, AMP on CUDA, resume from the last
epoch, a progress bar with the loss, validation recall per epoch, optional TensorBoard. A checkpoint is written
after every epoch whose loss stayed finite; a NaN stops training with the last good checkpoint kept.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from xsearch.core.errors import UsageError, XsearchError
from xsearch.encoders.builtin import BuiltinConfig, BuiltinModel, BuiltinPreprocess, load_checkpoint, save_checkpoint
from xsearch.evaluation.metrics import rank_metrics, relevance_from_labels
from xsearch.pairs import load_manifest
from xsearch.train.data import PairedTensors, rows_with
from xsearch.train.loss import OBJECTIVE_TERMS, OBJECTIVES, FeatureTargets, ObjectiveLoss

STATE_FILE = "trainer_state.pt"
#: The modality discriminator (adversarial objective) learns this many times faster than the encoders: at the
#: encoders' pace it lags behind them, and the reversed gradient then only teaches them to fool a stale
#: discriminator (its accuracy falls far below chance: modalities still apart, just labelled wrongly).
ADVERSARY_LR_SCALE = 10.0
MAX_LOGIT_SCALE = math.log(100.0)
MODALITIES = ("image", "audio", "text")


class TrainingDiverged(XsearchError):
    """The loss or the weights became NaN or infinite (nothing non-finite is ever saved)."""

    code = "train.diverged"


#: How each hyperparameter is checked: (what it must be, test). Whole numbers must be ints (not bools).
POSITIVE = ("a finite number above 0", lambda v: math.isfinite(v) and v > 0)
NON_NEGATIVE = ("a finite number, 0 or more", lambda v: math.isfinite(v) and v >= 0)
SEED_MAX = 2**32 - 1  # numpy's limit


def whole(minimum: int, maximum: int | None = None):
    rule = f"a whole number from {minimum} to {maximum}" if maximum is not None else \
        f"a whole number, {minimum} or more"
    return rule, lambda v: isinstance(v, int) and v >= minimum and (maximum is None or v <= maximum)


def check_values(args, rules: dict) -> None:
    """Raise UsageError (code ``train.bad_value``, params name / value / rule) for the first attribute of ``args``
    that breaks its rule: ``rules`` maps an attribute name to ``(rule text, test)``; None is allowed where
    the name ends in ``?``."""
    for key, (rule, test) in rules.items():
        name = key.rstrip("?")
        value = getattr(args, name)
        if value is None and key.endswith("?"):
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not test(value):
            raise UsageError(f"{name} must be {rule}, not {value!r}", code="train.bad_value", name=name,
                             value=value, rule=rule)


def check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` expanded; a UsageError when it exists and is not a folder."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder; give a folder for the checkpoint",
                         code="train.out_not_dir", path=str(out))
    return out


def check_finite(module: torch.nn.Module, what: str, dtype: torch.dtype | None = None) -> None:
    """TrainingDiverged when any parameter or buffer of ``module`` is NaN or infinite, or would be once stored as
    ``dtype`` (a checkpoint's float16 overflows above 65504): checked before every save."""
    bad = [name for name, t in module.state_dict().items()
           if t.is_floating_point() and not bool(torch.isfinite(t.detach().to(dtype or t.dtype)).all())]
    if bad:
        raise TrainingDiverged(f"{what}: {len(bad)} weight tensor(s) became NaN or infinite"
                               f"{' in ' + str(dtype).removeprefix('torch.') if dtype else ''} "
                               f"(first: {bad[0]}); nothing was saved for it", tensors=len(bad))


@dataclass
class TrainArgs:
    """Everything that defines a training run (saved in the checkpoint's config.json)."""

    manifest: str
    out_dir: str
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0
    seed: int = 0
    pair_weights: dict = field(default_factory=lambda: {"image-text": 1.0, "image-audio": 1.0, "audio-text": 1.0})
    objective: str = "contrastive"  # or "autoencoder" / "adversarial" (xsearch.train.loss.OBJECTIVES)
    objective_weights: dict = field(default_factory=dict)  # λ of the objective's extra term: {"recon": 1.0} ...
    freeze: list = field(default_factory=list)
    device: str | None = None
    resume: bool = False
    overwrite: bool = False
    init_from: str | None = None
    tensorboard: str | None = None
    train_split: str | None = "train"
    val_split: str | None = "val"
    model: dict = field(default_factory=dict)  # BuiltinConfig overrides
    threads: int | None = None
    world: dict | None = None  # how the training world was made, when a preset made it

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """UsageError (code ``train.bad_value``) for a hyperparameter that cannot train: a learning rate that is
        not a finite number above 0, a NaN weight decay, threads below 1, ..."""
        check_values(self, {"epochs": whole(1), "batch_size": whole(2), "lr": POSITIVE,
                            "weight_decay": NON_NEGATIVE, "warmup_epochs": NON_NEGATIVE, "grad_clip": POSITIVE,
                            "seed": whole(0, SEED_MAX), "threads?": whole(1)})
        for pair, weight in dict(self.pair_weights or {}).items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not NON_NEGATIVE[1](weight):
                raise UsageError(f"the loss weight of {pair} must be {NON_NEGATIVE[0]}, not {weight!r}",
                                 code="train.bad_value", name="lambda", value=f"{pair}={weight}",
                                 rule=NON_NEGATIVE[0])
        if self.objective not in OBJECTIVES:
            rule = f"one of {', '.join(OBJECTIVES)}"
            raise UsageError(f"objective must be {rule}, not {self.objective!r}", code="train.bad_value",
                             name="objective", value=self.objective, rule=rule)
        terms = OBJECTIVE_TERMS[self.objective]
        for name, weight in dict(self.objective_weights or {}).items():
            if name not in terms:
                raise UsageError(f"--lambda {name}=…: the {self.objective} objective has no {name} term"
                                 f"{' (its term: ' + ', '.join(terms) + ')' if terms else ''}",
                                 code="train.bad_lambda", name="lambda", value=f"{name}={weight}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not NON_NEGATIVE[1](weight):
                raise UsageError(f"the loss weight of {name} must be {NON_NEGATIVE[0]}, not {weight!r}",
                                 code="train.bad_value", name="lambda", value=f"{name}={weight}",
                                 rule=NON_NEGATIVE[0])
        weights = {**dict(self.pair_weights or {}), **terms, **dict(self.objective_weights or {})}
        if not any(w > 0 for w in weights.values()):
            raise UsageError("every loss weight is 0: nothing to train; give some --lambda NAME=W above 0",
                             code="train.bad_lambda", name="lambda", value="all 0")


@dataclass
class EpochLog:
    epoch: int
    loss: float
    parts: dict
    val: dict
    seconds: float
    logit_scale: float


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.inference_mode()
def embed_tensors(model: BuiltinModel, data: PairedTensors, rows: np.ndarray, device: str,
                  batch_size: int = 256) -> dict[str, np.ndarray]:
    """Embed every present modality of ``rows`` (canonical caption for text, no augmentation)."""
    model.eval()
    out: dict[str, list] = {m: [] for m in MODALITIES}
    for i in range(0, len(rows), batch_size):
        idx = torch.as_tensor(rows[i : i + batch_size])
        inputs, _ = data.batch(idx, augment=False, canonical_text=True)
        for m in MODALITIES:
            out[m].append(model.encode(m, inputs[m].to(device)).float().cpu().numpy())
    return {m: np.concatenate(v) if v else np.zeros((0, model.cfg.embed_dim), np.float32) for m, v in out.items()}


def directional_metrics(embeddings: dict[str, np.ndarray], data: PairedTensors, rows: np.ndarray,
                        directions: list[tuple[str, str]] | None = None) -> dict[str, dict]:
    """Metrics for each (query modality → gallery modality) over the rows that have both."""
    directions = directions or [(a, b) for a in MODALITIES for b in MODALITIES if a != b]
    labels = np.asarray(data.labels)[rows]
    res = {}
    for q, g in directions:
        qm, gm = data.present[q].numpy()[rows], data.present[g].numpy()[rows]
        if qm.sum() == 0 or gm.sum() == 0:
            continue
        scores = embeddings[q][qm] @ embeddings[g][gm].T
        res[f"{q}->{g}"] = rank_metrics(scores, relevance_from_labels(labels[qm], labels[gm]))
    return res


def reversal_strength(step: int, total: int) -> float:
    """The gradient reversal coefficient, 0 → 1 over training (Ganin & Lempitsky 2015: 2 / (1 + e^(-10 p)) - 1),
    so the adversary cannot pull the encoders around before they have learnt anything."""
    p = min(1.0, step / max(1, total))
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train_builtin(args: TrainArgs, *, log: Callable[[str], None] = print, progress: bool = True) -> list[EpochLog]:
    """Train (or resume) a builtin model on a paired-data manifest (JSONL); returns the per-epoch history."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from xsearch.encoders.base import pick_device

    out_dir = _check_run(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    _seed_everything(args.seed)
    train_records, val_records = _split_records(args, log)
    model = load_checkpoint(args.init_from)[0] if args.init_from else BuiltinModel(BuiltinConfig.from_dict(args.model))
    train, train_rows, val = _paired_tensors(train_records, val_records, BuiltinPreprocess(model.cfg), log)
    run = _prepare_run(args, model, train, train_rows, val, device, out_dir)
    history, start_epoch = _resume(run, args, log) if args.resume else ([], 0)
    writer = _tensorboard(args)
    gen = torch.Generator().manual_seed(args.seed)
    columns = [TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("loss {task.fields[loss]:.3f}"),
               TimeRemainingColumn()]
    with Progress(*columns, transient=True, disable=not progress, console=Console(stderr=True)) as bar:
        for epoch in range(start_epoch, args.epochs):
            t_epoch = time.time()
            losses, parts_sum = _train_epoch(run, args, epoch, gen, bar)
            entry = EpochLog(epoch + 1, float(np.mean(losses)),
                             {k: v / run.steps_per_epoch for k, v in parts_sum.items()},
                             _validation_recall(model, val, device), time.time() - t_epoch,
                             float(model.logit_scale.detach().exp()))
            history.append(entry)
            log(_epoch_line(entry))
            if writer:
                writer.add_scalar("loss/train", entry.loss, entry.epoch)
                for k, v in entry.val.items():
                    writer.add_scalar(f"val_R@1/{k}", v, entry.epoch)
            last = f"epoch {epoch}" if epoch > 0 else "none"
            check_finite(model, f"epoch {epoch + 1} (last good checkpoint: {last} in {out_dir})", torch.float16)
            _save(model, run.optimizer, run.scheduler, history, args, out_dir, epoch + 1, heads=run.loss_fn)
    if writer:
        writer.close()
    return history


@dataclass
class _Run:
    """What the epochs of one training run work on: the model, its objective and optimiser, the data."""

    model: BuiltinModel
    loss_fn: ObjectiveLoss
    targets_fn: FeatureTargets | None  # the autoencoder objective's reconstruction targets
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    params: list  # everything the optimiser steps (gradient clipping covers them)
    train: PairedTensors
    train_rows: np.ndarray
    steps_per_epoch: int
    total_steps: int
    device: str
    out_dir: Path


def _check_run(args: TrainArgs) -> Path:
    """The checkpoint folder, after checking the run can start there (resume needs a state, a checkpoint is never
    overwritten unasked) and that its arguments can train."""
    args.validate()
    out_dir = check_out_dir(args.out_dir)
    if args.resume and not (out_dir / STATE_FILE).is_file():
        raise UsageError(f"--resume: no {STATE_FILE} in {out_dir}.")
    if not args.resume and (out_dir / "model.safetensors").exists() and not args.overwrite:
        raise UsageError(f"{out_dir} already holds a checkpoint; use --resume to continue or --overwrite.")
    for m in args.freeze:
        if m not in MODALITIES:
            raise UsageError(f"cannot freeze {m!r}; towers are {', '.join(MODALITIES)}.")
    if set(MODALITIES) <= set(args.freeze) and not args.init_from and not args.resume:
        raise UsageError("every tower is frozen and nothing initialises them, so the run would train nothing and "
                         "save a random model; drop a --freeze or pass --init-from CHECKPOINT",
                         code="train.nothing_to_train")
    if args.epochs < 1 or args.batch_size < 2:
        raise UsageError("--epochs must be >= 1 and --batch-size >= 2.")
    return out_dir


def _split_records(args: TrainArgs, log: Callable[[str], None]) -> tuple[list, list]:
    """The manifest's training and validation records (its problems logged, the first five by name)."""
    manifest = load_manifest(args.manifest)
    for p in manifest.problems[:5]:
        log(f"skipped: {p}")
    if len(manifest.problems) > 5:
        log(f"skipped: … and {len(manifest.problems) - 5} more manifest problems")
    train_records = manifest.split(args.train_split) or manifest.split(None)
    val_records = manifest.split(args.val_split) if args.val_split else []
    return train_records, val_records


def _paired_tensors(train_records: list, val_records: list, pre: BuiltinPreprocess, log: Callable[[str], None]
                    ) -> tuple[PairedTensors, np.ndarray, PairedTensors | None]:
    """(training tensors, the rows of them with two or more modalities, validation tensors or None)."""
    t0 = time.time()
    train = PairedTensors.build(train_records, pre)
    val = PairedTensors.build(val_records, pre) if val_records else None
    for p in train.problems[:5]:
        log(f"skipped: {p}")
    train_rows = rows_with(train, 2)
    if len(train_rows) < 2:
        raise XsearchError("fewer than two training records have two or more modalities; nothing to align.")
    dropped = len(train) - len(train_rows)
    log(f"data: {len(train_rows)} training groups ({dropped} single-modality skipped), "
        f"{len(val) if val else 0} validation groups, decoded in {time.time() - t0:.0f}s")
    return train, train_rows, val


def _prepare_run(args: TrainArgs, model: BuiltinModel, train: PairedTensors, train_rows: np.ndarray,
                 val: PairedTensors | None, device: str, out_dir: Path) -> _Run:
    """Frozen towers, the objective's training-only heads, AdamW (no decay on biases and norms; the adversary
    at ADVERSARY_LR_SCALE) and the warm-up + cosine schedule."""
    for m in args.freeze:
        for p in model.tower_parameters(m):
            p.requires_grad_(False)
    model.to(device)
    # the objective's training-only heads (decoders, discriminator; none for contrastive), built after the model
    targets_fn = FeatureTargets(model.cfg).to(device) if args.objective == "autoencoder" else None
    loss_fn = ObjectiveLoss(args.objective, args.pair_weights, args.objective_weights, model.cfg.embed_dim,
                            targets_fn.dims if targets_fn is not None else None).to(device)
    adversary = list(loss_fn.adversary.parameters()) if loss_fn.adversary is not None else []
    params = [p for p in model.parameters() if p.requires_grad] + [
        p for p in loss_fn.parameters() if all(p is not q for q in adversary)]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if adversary:  # the discriminator must keep up with the encoders it is trained against
        groups.append({"params": adversary, "weight_decay": 0.0, "lr": args.lr * ADVERSARY_LR_SCALE})
        params = params + adversary
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    steps_per_epoch = max(1, len(train_rows) // args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup = int(args.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, total_steps, warmup))
    return _Run(model, loss_fn, targets_fn, optimizer, scheduler, params, train, train_rows, steps_per_epoch,
                total_steps, device, out_dir)


def _resume(run: _Run, args: TrainArgs, log: Callable[[str], None]) -> tuple[list[EpochLog], int]:
    """(history, epochs done) of the run saved in the checkpoint folder, its weights and optimiser state loaded."""
    state = torch.load(run.out_dir / STATE_FILE, map_location=run.device, weights_only=False)
    if state.get("objective", "contrastive") != args.objective:
        raise UsageError(f"--resume: the run in {run.out_dir} trained with --objective "
                         f"{state.get('objective', 'contrastive')}, not {args.objective}.")
    run.model.load_state_dict(state["model"])
    run.loss_fn.load_state_dict(state.get("heads", {}))
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    log(f"resumed from epoch {state['epoch']} in {run.out_dir}")
    return [EpochLog(**h) for h in state["history"]], state["epoch"]


def _tensorboard(args: TrainArgs):
    """A TensorBoard SummaryWriter when ``args.tensorboard`` names a log folder, else None."""
    if not args.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError(
            "--tensorboard needs the tensorboard package: pip install 'xsearch[tensorboard]'."
        ) from None
    return SummaryWriter(args.tensorboard)


def _train_epoch(run: _Run, args: TrainArgs, epoch: int, gen: torch.Generator, bar) -> tuple[list[float], dict]:
    """One pass over the training rows in a seeded order; (loss per step, summed loss parts). A non-finite loss
    raises TrainingDiverged before any step applies it."""
    model, loss_fn = run.model, run.loss_fn
    use_amp = run.device.startswith("cuda")
    gen.manual_seed(args.seed * 1000 + epoch)
    model.train()
    order = torch.as_tensor(run.train_rows)[torch.randperm(len(run.train_rows), generator=gen)]
    task = bar.add_task("train", total=run.steps_per_epoch, epoch=f"{epoch + 1}/{args.epochs}", loss=float("nan"))
    losses, parts_sum = [], {}
    loss_fn.train()
    for step in range(run.steps_per_epoch):
        idx = order[step * args.batch_size : (step + 1) * args.batch_size]
        inputs, present = data_to(run.train.batch(idx, gen), run.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp):
            emb = model({m: inputs[m] for m in MODALITIES})
        targets = run.targets_fn(inputs) if run.targets_fn is not None else None
        loss, parts = loss_fn({m: e.float() for m, e in emb.items()}, present, model.logit_scale.exp(),
                              targets=targets,
                              reversal=reversal_strength(epoch * run.steps_per_epoch + step, run.total_steps))
        if not torch.isfinite(loss):
            last = f"epoch {epoch}" if epoch > 0 else "none"
            raise TrainingDiverged(
                f"loss became {float(loss.detach())} at epoch {epoch + 1}, step {step + 1}; "
                f"last good checkpoint: {last} in {run.out_dir}"
            )
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.params, args.grad_clip)
        run.optimizer.step()
        run.scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        losses.append(float(loss.detach()))
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + v
        bar.update(task, advance=1, loss=float(np.mean(losses[-20:])))
    bar.remove_task(task)
    return losses, parts_sum


def _validation_recall(model: BuiltinModel, val: PairedTensors | None, device: str) -> dict[str, float]:
    """R@1 per direction on the validation tensors ({} without any)."""
    if val is None or not len(val):
        return {}
    rows = np.arange(len(val))
    return {k: v["R@1"] for k, v in directional_metrics(embed_tensors(model, val, rows, device), val, rows).items()}


def data_to(batch, device):
    inputs, present = batch
    return ({m: x.to(device, non_blocking=True) for m, x in inputs.items()},
            {m: p.to(device) for m, p in present.items()})


def _epoch_line(e: EpochLog) -> str:
    val = " ".join(f"{k}={v:.3f}" for k, v in e.val.items())
    extra = " ".join(f"{k} {e.parts[k]:.3f}" for k in ("recon", "recon_cross", "adv", "adv_acc") if k in e.parts)
    return f"epoch {e.epoch}: loss {e.loss:.3f}  scale {e.logit_scale:.1f}  {e.seconds:.0f}s" + (
        f"  {extra}" if extra else "") + (f"  val R@1 {val}" if val else "")


def _save(model, optimizer, scheduler, history, args: TrainArgs, out_dir: Path, epoch: int,
          heads: torch.nn.Module | None = None) -> None:
    meta = {"training": asdict(args), "epoch": epoch, "history": [asdict(h) for h in history]}
    save_checkpoint(model, out_dir, meta=meta)  # the encoder only: training heads stay in trainer_state.pt
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "objective": args.objective,
        "heads": {k: v.detach().cpu() for k, v in heads.state_dict().items()} if heads is not None else {},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": [asdict(h) for h in history],
        "epoch": epoch,
        "torch_rng": torch.get_rng_state(),
    }
    tmp = out_dir / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(out_dir / STATE_FILE)
    (out_dir / "history.json").write_text(json.dumps([asdict(h) for h in history], indent=1) + "\n")
