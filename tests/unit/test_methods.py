"""Cross-modal learning methods: the PLS aligner beside CCA, several aligners in one table, and the training
objectives beyond contrastive (cross-reconstruction autoencoder, modality adversary through gradient reversal)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import TINY
from xsearch.core.errors import UsageError
from xsearch.train.loss import (
    CrossReconstructionLoss,
    FeatureTargets,
    ModalityAdversaryLoss,
    ObjectiveLoss,
    grad_reverse,
    parse_loss_weights,
)
from xsearch.train.trainer import STATE_FILE, TrainArgs, reversal_strength, train_builtin

SHORT = {**TINY, "epochs": 2}


# --- aligners -------------------------------------------------------------------------------------------------------

def test_pls_aligner_fits_on_train_and_beats_chance(tiny_world):
    from xsearch.evaluation.runner import run_evaluation

    report = run_evaluation(tiny_world, aligner="pls")
    assert report.aligner == "pls" and report.split == "test" and report.model.startswith("pls(")
    assert len(report.results) == 6
    ratios = [r.metrics["R@1"] / r.chance["R@1"] for r in report.results]
    assert np.mean(ratios) > 2, ratios
    for r in report.results:
        assert r.metrics["mAP"] > r.chance["mAP"], r.name


def test_linear_aligners_share_one_feature_extraction(tiny_world, monkeypatch):
    from xsearch.evaluation import cca
    from xsearch.evaluation.runner import run_evaluations

    calls = []
    real = cca.image_features
    monkeypatch.setattr(cca, "image_features", lambda records: calls.append(len(records)) or real(records))
    reports = run_evaluations(tiny_world, "cca,pls", directions=[("text", "image"), ("image", "text")])
    assert [r.aligner for r in reports] == ["cca", "pls"]
    assert len(calls) == 2  # the train images once (for CCA), the test images once; PLS reuses both


def test_parse_aligners():
    from xsearch.evaluation.runner import parse_aligners

    assert parse_aligners("model, cca,pls,cca") == ["model", "cca", "pls"]
    for bad in ("magic", "model,magic", " , "):
        with pytest.raises(UsageError, match="--aligner"):
            parse_aligners(bad)


def test_eval_with_an_aligner_list_prints_one_table_and_a_json_list(cli, tiny_world):
    args = ("eval", "--manifest", tiny_world, "--aligner", "model,cca,pls", "--directions", "text:image,image:text")
    r = cli(*args, "--json")
    assert r.code == 0, r.err
    reports = json.loads(r.out)
    assert isinstance(reports, list) and [rep["aligner"] for rep in reports] == ["model", "cca", "pls"]
    for rep in reports:
        assert set(rep["directions"]) == {"text→image", "image→text"} and rep["split"] == "test"
        for d in rep["directions"].values():
            assert {"R@1", "R@5", "R@10", "mAP", "median_rank"} <= set(d["metrics"]) and d["chance"]["R@1"] > 0
    r = cli(*args)
    assert r.code == 0, r.err
    assert r.out.count("R@1 (chance)") == 1  # one table
    rows = [line for line in r.out.splitlines() if "│" in line]
    assert len(rows) == 6  # 2 directions × 3 aligners
    for aligner in ("model", "cca", "pls"):
        assert sum(f" {aligner} " in line for line in rows) == 2
    r = cli("eval", "--manifest", tiny_world, "--aligner", "model,magic")
    assert r.code == 2 and "Traceback" not in r.err and "--aligner 'magic'" in r.err


# --- objectives: the pieces -------------------------------------------------------------------------------------------

def test_gradient_reversal_reverses_and_scales():
    x = torch.randn(4, 3, requires_grad=True)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.arange(3.0)).sum().backward()
    assert torch.allclose(x.grad, -0.5 * torch.arange(3.0).expand(4, 3))
    assert reversal_strength(0, 100) == 0.0 and 0.99 < reversal_strength(100, 100) <= 1.0


def test_adversary_trains_the_discriminator_and_pushes_the_encoders_the_other_way():
    torch.manual_seed(0)
    adv = ModalityAdversaryLoss(8)
    z = {m: torch.randn(6, 8, requires_grad=True) for m in ("image", "audio", "text")}
    present = {m: torch.ones(6, dtype=torch.bool) for m in z}
    loss, parts = adv(z, present, coeff=1.0)
    assert math.isfinite(parts["adv"]) and 0 <= parts["adv_acc"] <= 1
    loss.backward()
    reversed_grad = z["image"].grad.clone()
    disc_grad = adv.discriminator[0].weight.grad.clone()
    # without the reversal layer the same loss gives the encoders the opposite gradient, the discriminator the same
    for t in z.values():
        t.grad = None
    adv.zero_grad()
    logits = adv.discriminator(torch.cat([z[m] for m in adv.modalities]))
    torch.nn.functional.cross_entropy(logits, torch.arange(3).repeat_interleave(6)).backward()
    assert torch.allclose(reversed_grad, -z["image"].grad, atol=1e-6)
    assert torch.allclose(disc_grad, adv.discriminator[0].weight.grad, atol=1e-6)


def test_feature_targets_and_cross_reconstruction():
    from xsearch.encoders.builtin import BuiltinConfig

    cfg = BuiltinConfig()
    targets = FeatureTargets(cfg)
    torch.manual_seed(0)
    inputs = {"image": torch.rand(5, 3, 64, 64), "audio": torch.randn(5, 32000) * 0.1,
              "text": torch.randint(1, 1000, (5, 32))}
    t = targets(inputs)
    assert {m: v.shape[1] for m, v in t.items()} == targets.dims
    assert all(torch.isfinite(v).all() for v in t.values())
    assert torch.equal(targets(inputs)["text"], t["text"])  # a fixed projection
    recon = CrossReconstructionLoss(16, targets.dims)
    z = {m: torch.nn.functional.normalize(torch.randn(5, 16), dim=-1) for m in inputs}
    present = {m: torch.tensor([True, True, True, False, True]) for m in inputs}
    loss, parts = recon(z, present, t)
    assert torch.isfinite(loss) and set(parts) == {"recon", "recon_cross"}
    assert 0.5 < parts["recon"] < 3  # targets are scaled to unit variance: ~1 for an untrained decoder


def test_objective_loss_terms_and_weights():
    torch.manual_seed(0)
    z = {m: torch.nn.functional.normalize(torch.randn(6, 8), dim=-1) for m in ("image", "audio", "text")}
    present = {m: torch.ones(6, dtype=torch.bool) for m in z}
    scale = torch.tensor(10.0)
    total, parts = ObjectiveLoss("adversarial", None, {"adv": 0.5}, 8)(z, present, scale)
    assert {"image-text", "image-audio", "audio-text", "adv", "adv_acc"} <= set(parts)
    contrastive = sum(parts[p] for p in ("image-text", "image-audio", "audio-text"))
    assert math.isclose(float(total.detach()), contrastive + 0.5 * parts["adv"], rel_tol=1e-5)
    zeros = {"image-text": 0.0, "image-audio": 0.0, "audio-text": 0.0}
    _, parts = ObjectiveLoss("autoencoder", zeros, {}, 8, {"image": 4})(z, present, scale,
                                                                        targets={"image": torch.randn(6, 4)})
    assert set(parts) == {"recon", "recon_cross"}  # reconstruction alone
    assert list(ObjectiveLoss("contrastive", None, {}, 8).parameters()) == []  # no training heads


def test_parse_loss_weights():
    pairs, terms = parse_loss_weights(["recon=0.5", "audio-image=2"], "autoencoder")
    assert terms == {"recon": 0.5} and pairs["image-audio"] == 2.0 and pairs["image-text"] == 1.0
    assert parse_loss_weights([], "adversarial")[1] == {"adv": 0.1}
    assert parse_loss_weights([], "contrastive")[1] == {}
    for items, objective, needle in ((["recon=-1"], "autoencoder", ">= 0"), (["adv=nan"], "adversarial", "finite"),
                                     (["adv=inf"], "adversarial", "finite"), (["recon=x"], "autoencoder", "number"),
                                     (["recon=1"], "contrastive", "autoencoder"),
                                     (["image-text=nan"], "contrastive", "finite"),
                                     (["colour=1"], "contrastive", "recon"), ([], "magic", "--objective")):
        with pytest.raises(UsageError, match=needle):
            parse_loss_weights(items, objective)


def test_train_args_check_objective_and_its_weights():
    for bad in ({"objective": "magic"}, {"objective": "autoencoder", "objective_weights": {"recon": -1.0}},
                {"objective": "adversarial", "objective_weights": {"adv": float("nan")}}):
        with pytest.raises(UsageError) as e:
            TrainArgs(manifest="m", out_dir="o", **bad)
        assert e.value.code == "train.bad_value"
    with pytest.raises(UsageError, match="no recon term"):
        TrainArgs(manifest="m", out_dir="o", objective="adversarial", objective_weights={"recon": 1.0})
    with pytest.raises(UsageError, match="nothing to train"):
        TrainArgs(manifest="m", out_dir="o", pair_weights={"image-text": 0.0, "image-audio": 0.0, "audio-text": 0.0})


# --- objectives: training end to end ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tiny_world, tmp_path_factory):
    """A checkpoint and its history per objective (a few steps each on the tiny world)."""
    out = {}
    for objective in ("autoencoder", "adversarial"):
        ckpt = tmp_path_factory.mktemp(objective) / "ckpt"
        history = train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(ckpt), objective=objective, **SHORT),
                                progress=False, log=lambda s: None)
        out[objective] = ckpt, history
    return out


@pytest.mark.parametrize("objective,terms", [("autoencoder", ("recon", "recon_cross")), ("adversarial", ("adv",))])
def test_each_objective_trains_with_finite_terms_and_loads_as_builtin(trained, objective, terms):
    from safetensors.torch import load_file

    from xsearch.encoders.builtin import BuiltinModel
    from xsearch.encoders.registry import load_encoder

    ckpt, history = trained[objective]
    assert len(history) == SHORT["epochs"]
    for entry in history:
        assert math.isfinite(entry.loss)
        for name in ("image-text", "image-audio", "audio-text", *terms):
            assert name in entry.parts and math.isfinite(entry.parts[name]), (name, entry.parts)
    assert set(load_file(str(ckpt / "model.safetensors"))) == set(BuiltinModel().state_dict())  # no heads in it
    state = torch.load(ckpt / STATE_FILE, weights_only=False)
    assert state["objective"] == objective and state["heads"]  # the heads stay with the trainer state
    config = json.loads((ckpt / "config.json").read_text())
    assert config["training"]["objective"] == objective
    enc = load_encoder(f"builtin:{ckpt}")
    vec = enc.embed("text", ["a red circle"])
    assert vec.shape == (1, 256) and np.isfinite(vec).all()


def test_objective_run_resumes_with_its_heads_and_refuses_another_objective(trained, tiny_world, tmp_path):
    import shutil

    ckpt, history = trained["autoencoder"]
    copy = tmp_path / "ckpt"
    shutil.copytree(ckpt, copy)
    more = train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(copy), objective="autoencoder", resume=True,
                                   **{**SHORT, "epochs": SHORT["epochs"] + 1}), progress=False, log=lambda s: None)
    assert [h.epoch for h in more] == list(range(1, SHORT["epochs"] + 2)) and more[: SHORT["epochs"]] == history
    with pytest.raises(UsageError, match="--objective autoencoder, not adversarial"):
        train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(copy), objective="adversarial", resume=True,
                                **{**SHORT, "epochs": 5}), progress=False, log=lambda s: None)


def test_reconstruction_alone_trains(tiny_world, tmp_path):
    zeros = {"image-text": 0.0, "image-audio": 0.0, "audio-text": 0.0}
    history = train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(tmp_path / "ae"), objective="autoencoder",
                                      pair_weights=zeros, **{**SHORT, "epochs": 1}), progress=False, log=lambda s: None)
    assert set(history[0].parts) == {"recon", "recon_cross"}
    assert math.isclose(history[0].loss, history[0].parts["recon"], rel_tol=1e-4)


@pytest.mark.parametrize("args,needle", [
    (("--objective", "magic"), "--objective 'magic'"),
    (("--objective", "autoencoder", "--lambda", "recon=-1"), "recon=-1"),
    (("--objective", "adversarial", "--lambda", "adv=nan"), "adv=nan"),
    (("--lambda", "recon=1"), "--objective autoencoder"),
])
def test_train_cli_bad_objective_values_are_one_line_errors(cli, tiny_world, tmp_path, args, needle):
    r = cli("train", "--manifest", tiny_world, "--out", tmp_path / "o", *args)
    assert r.code == 2, (r.code, r.err)
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert "Traceback" not in r.err and len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert needle in lines[0], lines[0]
    assert not (tmp_path / "o").exists()
