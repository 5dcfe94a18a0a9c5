"""The text bridge and the bind head joining two models trained apart (no paired image-audio data).

The image+text side is the shipped builtin model (its audio tower is never used); the audio+text side is a
builtin-architecture model trained here on audio-caption pairs only, from its own random init. Their spaces
share nothing, so image→audio works only through text. Slow: a single-pair tower sits on the InfoNCE plateau
for its first ~80 steps, so it trains for 30 epochs.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import TINY
from xsearch.train.trainer import TrainArgs, train_builtin

ONLY = {"audio": {"image-text": 0.0, "image-audio": 0.0, "audio-text": 1.0}}
CROSS = [("image", "audio"), ("audio", "image")]
TOWER = {**TINY, "epochs": 30}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def towers(tiny_world, tmp_path_factory):
    """Specs of an image+text model and an audio+text model trained apart."""
    audio = tmp_path_factory.mktemp("audio") / "ckpt"
    train_builtin(TrainArgs(manifest=str(tiny_world), out_dir=str(audio), pair_weights=ONLY["audio"], seed=2,
                            **TOWER), progress=False, log=lambda s: None)
    return {"vision": "builtin", "audio": f"builtin:{audio}"}


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    from xsearch.world import vocabulary

    path = tmp_path_factory.mktemp("vocab") / "world-vocab.txt"
    path.write_text("\n".join(vocabulary()) + "\n")
    return path


def _mean_ratio(report, k=5):
    return float(np.mean([r.metrics[f"R@{k}"] / r.chance[f"R@{k}"] for r in report.results]))


def test_bridge_joins_towers_that_were_never_trained_together(towers, vocab_file, tiny_world):
    from xsearch.encoders.bridge import BridgedEncoder
    from xsearch.encoders.registry import load_encoder
    from xsearch.evaluation.runner import evaluate

    bridged = load_encoder(f"{towers['vision']}+{towers['audio']}+bridge:{vocab_file}")
    assert isinstance(bridged, BridgedEncoder)
    assert bridged.index_space("audio") != bridged.index_space("image")
    report = evaluate(bridged, str(tiny_world), directions=CROSS)
    assert {r.name for r in report.results} == {"image→audio", "audio→image"}

    from xsearch.encoders.base import ModalityDispatch

    class Naive(ModalityDispatch):  # the same two towers compared directly, no bridge: their spaces are unrelated
        spec, modalities, spaces = "naive", ("image", "audio"), {"shared": 256}
        sample_rate, audio_window_s = 16000, 2.0

        def index_space(self, m):
            return "shared"

        def _embed_images(self, x, space=None):
            return bridged.vision.embed("image", x)

        def _embed_audio(self, x, space=None):
            return bridged.audio.embed("audio", x)

    naive = evaluate(Naive(), str(tiny_world), directions=CROSS)
    assert _mean_ratio(report) > 2.5, f"bridged R@5 only {_mean_ratio(report):.1f}x chance"
    assert _mean_ratio(report) > _mean_ratio(naive) + 0.5


def test_bind_head_trained_on_audio_captions_only(towers, tiny_world, tmp_path):
    from xsearch.encoders.registry import load_encoder
    from xsearch.evaluation.runner import evaluate
    from xsearch.train.bind import BindArgs, train_bind

    vision = load_encoder(towers["vision"])
    audio = load_encoder(towers["audio"])
    head, report = train_bind(BindArgs(manifest=str(tiny_world), out_dir=str(tmp_path / "bind"), epochs=40), vision,
                              audio, log=lambda s: None)
    assert report["train_pairs"] > 100 and "val audio->image R@1" in report
    bound = load_encoder(f"{towers['vision']}+{towers['audio']}+bind:{tmp_path / 'bind'}")
    assert bound.index_space("audio") == bound.index_space("image")
    ev = evaluate(bound, str(tiny_world), directions=CROSS)
    assert _mean_ratio(ev) > 2.0, f"bound R@5 only {_mean_ratio(ev):.1f}x chance"


def test_bind_cli_checks_its_arguments(cli, tmp_path):
    r = cli("train", "--bind", "audio", "--out", tmp_path / "o")
    assert r.code == 2 and "--base" in r.err
    r = cli("train", "--bind", "image", "--base", "builtin", "--audio", "builtin", "--manifest", tmp_path / "m",
            "--out", tmp_path / "o")
    assert r.code == 2 and "only 'audio'" in r.err
