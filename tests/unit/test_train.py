"""Training: a tiny model learns on a tiny world; manifests with bad lines; NaN; resume; checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from xsearch.core.errors import ModelError, UsageError, XsearchError
from xsearch.encoders.builtin import BuiltinModel, load_builtin, load_checkpoint, save_checkpoint
from xsearch.pairs import load_manifest
from xsearch.train.loss import ClipLoss, MultiPairLoss, parse_pair_weights
from xsearch.train.trainer import TrainArgs, TrainingDiverged, train_builtin


@pytest.fixture(scope="module")
def tiny_run(tiny_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ckpt"
    history = train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(out), **TINY), progress=False,
                            log=lambda s: None)
    return out, history


def test_tiny_training_learns_and_generalises_to_held_out_combinations(tiny_world, tiny_run):
    from xsearch.evaluation.runner import evaluate

    out, history = tiny_run
    assert len(history) == TINY["epochs"]
    assert history[-1].loss < 0.8 * history[0].loss
    report = evaluate(load_builtin(out), str(tiny_world))  # the test split: colour-shape pairs never trained on
    assert report.split == "test" and len(report.results) == 6
    ratio = np.mean([r.metrics["R@5"] / r.chance["R@5"] for r in report.results])
    assert ratio > 2.5, f"held-out R@5 only {ratio:.1f}x chance"
    untrained = evaluate(_random_encoder(), str(tiny_world))
    assert np.mean([r.metrics["R@5"] for r in report.results]) > np.mean([r.metrics["R@5"] for r in untrained.results])


def _random_encoder():
    from xsearch.encoders.builtin import BuiltinEncoder

    torch.manual_seed(123)
    return BuiltinEncoder(BuiltinModel(), digest="random", trained=False)


def test_checkpoint_has_config_and_history(tiny_run):
    out, _ = tiny_run
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "xsearch-builtin-v1"
    assert config["training"]["epochs"] == TINY["epochs"] and config["epoch"] == TINY["epochs"]
    assert len(config["history"]) == TINY["epochs"]
    model, _ = load_checkpoint(out)
    assert isinstance(model, BuiltinModel)


def test_resume_continues_from_the_last_epoch(tiny_world, tiny_run, tmp_path):
    import shutil

    out, history = tiny_run
    copy = tmp_path / "ckpt"
    shutil.copytree(out, copy)
    more = train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(copy), resume=True,
                                   **{**TINY, "epochs": TINY["epochs"] + 1}), progress=False, log=lambda s: None)
    assert [h.epoch for h in more] == list(range(1, TINY["epochs"] + 2))
    assert more[: TINY["epochs"]] == history


def test_refuses_to_overwrite_without_flag(tiny_world, tiny_run):
    out, _ = tiny_run
    with pytest.raises(UsageError, match="--resume .* or --overwrite"):
        train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(out), epochs=1), progress=False)


def test_nan_loss_stops_with_last_good_checkpoint_kept(tiny_world, tmp_path, monkeypatch):
    out = tmp_path / "nan"
    calls = {"n": 0}
    real = MultiPairLoss.forward

    def poisoned(self, emb, present, scale):
        calls["n"] += 1
        loss, parts = real(self, emb, present, scale)
        return (loss * float("nan"), parts) if calls["n"] > 9 else (loss, parts)

    monkeypatch.setattr(MultiPairLoss, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2.*last good checkpoint: epoch 1"):
        train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(out), **{**TINY, "epochs": 3}),
                      progress=False, log=lambda s: None)
    assert json.loads((out / "config.json").read_text())["epoch"] == 1


def test_manifest_bad_lines_are_reported_and_skipped(tmp_path, tiny_world):
    world = tiny_world.parent
    lines = tiny_world.read_text().splitlines()[:4]
    lines += ["{not json", "[1, 2]", json.dumps({"group": "x", "image": "image/missing.png", "text": "a caption"}),
              json.dumps({"group": "y"}), ""]
    m = world / "mixed.jsonl"
    m.write_text("\n".join(lines))
    manifest = load_manifest(m)
    assert len(manifest.records) == 5  # 4 good + "x" keeps its text
    assert any("mixed.jsonl:5: not JSON" in p for p in manifest.problems)
    assert any("not a JSON object" in p for p in manifest.problems)
    assert any("image file missing" in p for p in manifest.problems)
    assert any("no usable image, audio or text" in p for p in manifest.problems)


def test_empty_or_missing_manifest(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(XsearchError, match="no usable records"):
        load_manifest(tmp_path / "empty.jsonl")
    with pytest.raises(XsearchError, match="manifest not found"):
        load_manifest(tmp_path / "nope.jsonl")


def test_single_modality_records_cannot_train(tmp_path, tiny_world):
    m = tmp_path / "text-only.jsonl"
    m.write_text("\n".join(json.dumps({"group": str(i), "text": f"caption {i}"}) for i in range(10)))
    with pytest.raises(XsearchError, match="nothing to align"):
        train_builtin(TrainArgs(manifest=str(m), out_dir=str(tmp_path / "o"), epochs=1, train_split=None,
                                val_split=None), progress=False, log=lambda s: None)


def test_checkpoint_of_another_architecture_or_missing(tmp_path):
    with pytest.raises(ModelError, match="no builtin checkpoint"):
        load_checkpoint(tmp_path / "none")
    ckpt = save_checkpoint(BuiltinModel(), tmp_path / "c")
    config = json.loads((ckpt / "config.json").read_text())
    config["architecture"] = "something-else"
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="architecture 'something-else'"):
        load_checkpoint(ckpt)
    wide = save_checkpoint(BuiltinModel(), tmp_path / "wide")
    config = json.loads((wide / "config.json").read_text())
    config["model"]["embed_dim"] = 128  # weights say 256
    (wide / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="does not fit the builtin architecture"):
        load_checkpoint(wide)


def test_clip_loss_and_pair_weights():
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    scale = torch.tensor(10.0)
    assert ClipLoss()(a, a, scale) < ClipLoss()(a, a.roll(1, 0), scale)
    present = {m: torch.ones(8, dtype=torch.bool) for m in ("image", "audio", "text")}
    emb = {"image": a, "audio": a.roll(1, 0), "text": a}
    only_it, _ = MultiPairLoss(parse_pair_weights(["image-audio=0", "audio-text=0"]))(emb, present, scale)
    assert torch.isclose(only_it, ClipLoss()(a, a, scale))
    weighted, parts = MultiPairLoss(parse_pair_weights(["audio-image=2"]))(emb, present, scale)
    assert set(parts) == {"image-text", "image-audio", "audio-text"}
    assert torch.isclose(weighted, torch.tensor(parts["image-text"] + 2 * parts["image-audio"] + parts["audio-text"]))
    with pytest.raises(UsageError):
        parse_pair_weights(["image-video=1"])
    with pytest.raises(UsageError):
        parse_pair_weights(["image-text=-1"])


def test_frozen_tower_does_not_change(tiny_world, tmp_path):
    out = tmp_path / "frozen"
    train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(out), freeze=["image"], seed=3,
                            **{**TINY, "epochs": 1}), progress=False, log=lambda s: None)
    torch.manual_seed(3)
    init = BuiltinModel()  # the trainer seeds with args.seed before building the model
    trained, _ = load_checkpoint(out)
    for (name, p0), p1 in zip(init.trunks["image"].named_parameters(), trained.trunks["image"].parameters()):
        assert torch.allclose(p0.half().float(), p1), name
    assert not all(torch.allclose(p0.half().float(), p1) for p0, p1 in
                   zip(init.trunks["text"].parameters(), trained.trunks["text"].parameters()))


def test_train_cli_needs_a_manifest_or_preset(cli, tmp_path):
    r = cli("train", "--out", tmp_path / "o")
    assert r.code == 2 and "--manifest" in r.err
    r = cli("train", "--preset", "nope", "--out", tmp_path / "o")
    assert r.code == 2 and "unknown preset" in r.err
    r = cli("train", "--manifest", tmp_path / "missing.jsonl", "--out", tmp_path / "o")
    assert r.code == 1 and "manifest not found" in r.err


def test_shipped_model_recall_floor_on_held_out_split(tmp_path_factory):
    """The packaged weights: R@1 >= 20x chance on unseen colour-shape pairs, gallery >= 200 groups."""
    from xsearch.encoders.registry import load_encoder
    from xsearch.evaluation.runner import evaluate
    from xsearch.world import make_world

    encoder = load_encoder("builtin")
    assert encoder.describe()["trained"] is True
    manifest = make_world(tmp_path_factory.mktemp("floor") / "w", 1400, seed=1)
    report = evaluate(encoder, str(manifest), directions=[("text", "image"), ("image", "audio"), ("audio", "image")])
    assert min(report.gallery_size.values()) >= 200
    for r in report.results:
        assert r.metrics["R@1"] >= 20 * r.chance["R@1"], f"{r.name}: R@1 {r.metrics['R@1']:.3f}"
