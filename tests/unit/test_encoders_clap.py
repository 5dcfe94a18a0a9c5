"""ClapEncoder through the real local-directory loader, on a tiny random-weight ClapModel (offline)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers.encoders import TINY_CLAP_DIM, TINY_CLAP_SAMPLE_RATE, TINY_CLAP_WINDOW_S, tiny_clap_dir
from xsearch.core.errors import MediaError, ModelError, UsageError
from xsearch.encoders.base import DEFAULT_SPACE, Encoder, weights_digest
from xsearch.encoders.clap import ClapEncoder

WINDOW = TINY_CLAP_SAMPLE_RATE * TINY_CLAP_WINDOW_S


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    return tiny_clap_dir(tmp_path_factory.mktemp("clap"))


@pytest.fixture(scope="module")
def encoder(clap_dir):
    return ClapEncoder(str(clap_dir), device="cpu")


def _waves(lengths=(WINDOW, WINDOW // 2, 3000, 1, 100)):
    rng = np.random.default_rng(1)
    return [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in lengths]


TEXTS = ["a dog barking in the distance", "rain", "church bells", "ünïcødé 文字", "a cat meowing loudly"]


def _direct(clap_dir, waves, texts):
    """transformers itself, as its docs show (non-fusion model: rand_trunc + repeatpad)."""
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    model = ClapModel.from_pretrained(clap_dir).eval()
    fe = ClapFeatureExtractor.from_pretrained(clap_dir)
    tok = AutoTokenizer.from_pretrained(clap_dir)
    with torch.no_grad():
        feats = fe(
            waves, sampling_rate=fe.sampling_rate, truncation="rand_trunc", padding="repeatpad", return_tensors="pt"
        )
        audio = model.get_audio_features(input_features=feats["input_features"].float()).pooler_output
        tokens = tok(texts, padding=True, return_tensors="pt")
        text = model.get_text_features(**tokens).pooler_output
    return F.normalize(audio, dim=-1).numpy(), F.normalize(text, dim=-1).numpy()


def test_vectors_equal_direct_transformers_calls(encoder, clap_dir):
    waves = _waves()
    audio, text = encoder.embed("audio", waves), encoder.embed("text", TEXTS)
    ref_audio, ref_text = _direct(clap_dir, waves, TEXTS)
    assert audio.shape == (5, TINY_CLAP_DIM) and text.shape == (5, TINY_CLAP_DIM)
    assert audio.dtype == np.float32 and text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(audio, ref_audio, atol=1e-5)
    np.testing.assert_allclose(text, ref_text, atol=1e-5)
    assert not np.allclose(audio[0], audio[1])


def test_protocol_attributes_come_from_the_feature_extractor(encoder, clap_dir):
    assert isinstance(encoder, Encoder)
    assert encoder.modalities == ("audio", "text")
    assert encoder.spaces == {DEFAULT_SPACE: TINY_CLAP_DIM}
    assert encoder.sample_rate == TINY_CLAP_SAMPLE_RATE
    assert encoder.audio_window_s == float(TINY_CLAP_WINDOW_S)
    assert encoder.spec == f"clap:{clap_dir.resolve()}"
    assert encoder.model_id == f"{encoder.spec}@{weights_digest([clap_dir / 'model.safetensors'])}:{TINY_CLAP_DIM}"
    assert encoder.describe()["fusion"] is False
    with pytest.raises(UsageError):
        encoder.embed("image", [])
    with pytest.raises(UsageError):
        encoder.index_space("image")


def test_batch_size_invariance_and_determinism(encoder, clap_dir):
    small = ClapEncoder(str(clap_dir), device="cpu", batch_size=2)
    waves = _waves()
    np.testing.assert_allclose(small.embed("audio", waves), encoder.embed("audio", waves), atol=1e-5)
    np.testing.assert_allclose(small.embed("text", TEXTS), encoder.embed("text", TEXTS), atol=1e-5)
    assert np.array_equal(encoder.embed("audio", waves), encoder.embed("audio", waves))
    assert np.array_equal(encoder.embed("text", TEXTS), encoder.embed("text", TEXTS))
    assert encoder.embed("audio", []).shape == (0, TINY_CLAP_DIM)


def test_fusion_model_never_picks_a_clip_at_random(tmp_path):
    # The feature extractor marks one random clip "longer" when none is; that clip would take the fusion
    # branch. The encoder must give each clip the same vector whatever batch it is in.
    enc = ClapEncoder(str(tiny_clap_dir(tmp_path, fusion=True)), device="cpu")
    assert enc.describe()["fusion"] is True
    waves = _waves()
    together = enc.embed("audio", waves)
    alone = np.concatenate([enc.embed("audio", [w]) for w in waves])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_short_audio_is_repeat_padded(encoder, clap_dir):
    waves = _waves((1, 7, 1000))
    out = encoder.embed("audio", waves)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, _direct(clap_dir, waves, ["x"])[0], atol=1e-5)


def test_long_audio_is_the_mean_of_its_windows_not_a_random_crop(encoder):
    rng = np.random.default_rng(5)
    wave = rng.standard_normal(int(2.5 * WINDOW)).astype(np.float32)
    out = encoder.embed("audio", [wave])
    assert np.array_equal(out, encoder.embed("audio", [wave]))
    windows = encoder.embed("audio", [wave[:WINDOW], wave[WINDOW : 2 * WINDOW], wave[2 * WINDOW :]])
    mean = windows.mean(axis=0)
    np.testing.assert_allclose(out[0], mean / np.linalg.norm(mean), atol=1e-5)
    # a tail under a quarter window is dropped
    tail = np.concatenate([wave[:WINDOW], wave[:10]])
    np.testing.assert_allclose(encoder.embed("audio", [tail]), encoder.embed("audio", [wave[:WINDOW]]), atol=1e-6)


def test_empty_text_embeds(encoder, clap_dir):
    out = encoder.embed("text", ["", "rain"])
    np.testing.assert_allclose(out[0], _direct(clap_dir, _waves((10,)), [""])[1][0], atol=1e-5)


@pytest.mark.parametrize("bad, error", [
    (np.zeros(0, np.float32), MediaError),
    (np.full(100, np.nan, np.float32), MediaError),
    (np.zeros((2, 100), np.float32), UsageError),
    ("noise", UsageError),
])
def test_bad_audio_fails_clearly(encoder, bad, error):
    with pytest.raises(error) as info:
        encoder.embed("audio", [np.zeros(100, np.float32), bad])
    assert "audio 1" in str(info.value) and "\n" not in str(info.value)


def test_mono_column_vector_is_accepted(encoder):
    wave = _waves((500,))[0]
    np.testing.assert_allclose(encoder.embed("audio", [wave[:, None]]), encoder.embed("audio", [wave]), atol=1e-6)


def _one_sentence(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_local_dir_without_tokenizer_files(tmp_path):
    folder = tiny_clap_dir(tmp_path, with_tokenizer=False)
    with pytest.raises(ModelError) as info:
        ClapEncoder(str(folder))
    assert "tokenizer" in _one_sentence(info)


def test_missing_dir_and_file_source(tmp_path):
    with pytest.raises(ModelError) as info:
        ClapEncoder(str(tmp_path / "nope"))
    assert "does not exist" in _one_sentence(info)
    afile = tmp_path / "file.bin"
    afile.write_bytes(b"x")
    with pytest.raises(ModelError):
        ClapEncoder(str(afile))


def test_offline_hub_id_names_the_local_dir_alternative():
    with pytest.raises(ModelError) as info:
        ClapEncoder("laion/clap-htsat-unfused")
    text = _one_sentence(info)
    assert "HF_HUB_OFFLINE=1" in text and "clap:/path/to/local/dir" in text


def test_wrong_architecture(tmp_path, clap_dir):
    import shutil

    from transformers import BertConfig, BertModel

    bert = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16)).save_pretrained(bert)
    with pytest.raises(ModelError) as info:
        ClapEncoder(str(bert))
    assert "not CLAP" in _one_sentence(info)

    resized = tmp_path / "resized"
    shutil.copytree(clap_dir, resized)
    cfg = json.loads((resized / "config.json").read_text())
    cfg["projection_dim"] = cfg["text_config"]["projection_dim"] = cfg["audio_config"]["projection_dim"] = 24
    (resized / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError) as info:
        ClapEncoder(str(resized))
    _one_sentence(info)


def test_a_cached_hub_id_loads_offline(tmp_path, clap_dir, encoder):
    from tests.helpers.encoders import put_in_hub_cache

    files = {p.name: p for p in clap_dir.iterdir() if p.is_file()}
    put_in_hub_cache(tmp_path / "hf-home" / "hub", "xsearch-test/tiny-clap", files)
    enc = ClapEncoder("xsearch-test/tiny-clap", device="cpu")  # HF_HUB_OFFLINE=1: cache only
    assert enc.spec == "clap:xsearch-test/tiny-clap"
    assert enc.model_id == f"{enc.spec}@{weights_digest([clap_dir / 'model.safetensors'])}:{TINY_CLAP_DIM}"
    np.testing.assert_allclose(enc.embed("text", TEXTS), encoder.embed("text", TEXTS), atol=1e-6)
