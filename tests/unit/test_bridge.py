"""The text bridge between a vision and an audio encoder, the projection head, and load_pair end to end."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.helpers.encoders import (
    TINY_CLAP_DIM,
    TINY_CLIP_ARCH,
    TINY_CLIP_DIM,
    tiny_clap_dir,
    tiny_openclip_checkpoint,
)
from xsearch.core.errors import ModelError, UsageError
from xsearch.encoders.base import DEFAULT_SPACE, Encoder, ModalityDispatch, l2_normalize
from xsearch.encoders.bridge import (
    CLAP_SPACE,
    CLIP_SPACE,
    BridgedEncoder,
    default_vocab_path,
    load_vocab,
    translate,
)
from xsearch.encoders.projection import ProjectionHead


def _text_vector(text: str, dim: int, salt: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{salt}:{text}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim)


class FakeEncoder(ModalityDispatch):
    """A deterministic two-modality encoder: texts hash to random unit vectors; media items are vectors."""

    def __init__(self, media: str, dim: int, salt: str):
        self.modalities = (media, "text")
        self.spaces = {DEFAULT_SPACE: dim}
        self.dim, self.salt, self.media = dim, salt, media
        self.spec = f"fake-{salt}"
        self.model_id = f"fake-{salt}@0:{dim}"
        self.sample_rate = 16000 if media == "audio" else 0
        self.audio_window_s = 2.0 if media == "audio" else 0.0
        self.device = "cpu"
        self.text_calls = 0

    def index_space(self, modality):
        return DEFAULT_SPACE

    def _embed_text(self, texts, space=None):
        assert space in (None, DEFAULT_SPACE)
        self.text_calls += 1
        return l2_normalize(
            np.array([_text_vector(t, self.dim, self.salt) for t in texts]).reshape(len(texts), self.dim)
        )

    def _media(self, items):
        return l2_normalize(np.asarray(items, dtype=np.float32).reshape(len(items), self.dim))

    def _embed_images(self, images, space=None):
        assert self.media == "image"
        return self._media(images)

    def _embed_audio(self, waves, space=None):
        assert self.media == "audio"
        return self._media(waves)

    def describe(self):
        return {"spec": self.spec}


VOCAB = [f"sound number {i}" for i in range(40)]


@pytest.fixture
def pair():
    return FakeEncoder("image", 12, "clip"), FakeEncoder("audio", 8, "clap")


def _bridge(pair, tmp_path, vocab=VOCAB, **kw):
    return BridgedEncoder(*pair, vocab, cache_dir=tmp_path / "cache", **kw)


def _unit(rng, n, d):
    return l2_normalize(rng.standard_normal((n, d)))


# -- translate: the math ---------------------------------------------------------------------------------------

def test_temperature_to_zero_is_nearest_neighbour_lookup():
    rng = np.random.default_rng(0)
    x, source, target = _unit(rng, 50, 12), _unit(rng, 40, 12), _unit(rng, 40, 8)
    nearest = target[np.argmax(x @ source.T, axis=1)]
    np.testing.assert_allclose(translate(x, source, target, top_m=16, temperature=1e-9), nearest, atol=1e-6)
    np.testing.assert_allclose(translate(x, source, target, top_m=16, temperature=0), nearest, atol=1e-6)
    # a warm temperature really mixes: the result is no longer the nearest entry
    assert not np.allclose(translate(x, source, target, top_m=16, temperature=1.0), nearest, atol=1e-3)


def test_top_m_one_is_nearest_neighbour_at_any_temperature():
    rng = np.random.default_rng(1)
    x, source, target = _unit(rng, 20, 6), _unit(rng, 30, 6), _unit(rng, 30, 5)
    nearest = target[np.argmax(x @ source.T, axis=1)]
    np.testing.assert_allclose(translate(x, source, target, top_m=1, temperature=100.0), nearest, atol=1e-6)


def test_softmax_weights_by_hand_and_hot_temperature_is_the_mean():
    source = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    target = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    x = l2_normalize(np.array([[0.8, 0.6]]))
    out = translate(x, source, target, top_m=2, temperature=0.5)  # keeps entries 0 (sim .8) and 1 (sim .6)
    w = np.exp(np.array([0.8, 0.6]) / 0.5)
    w /= w.sum()
    np.testing.assert_allclose(out[0], l2_normalize(np.array([[w[0], w[1], 0.0]]))[0], atol=1e-6)
    hot = translate(x, source, target, top_m=10, temperature=1e6)  # top_m above V: every entry, equal weights
    np.testing.assert_allclose(hot[0], np.full(3, 1 / np.sqrt(3)), atol=1e-5)


def test_translate_shapes_and_empty_input():
    rng = np.random.default_rng(2)
    out = translate(_unit(rng, 3000, 12), _unit(rng, 40, 12), _unit(rng, 40, 8), top_m=4, temperature=0.05, chunk=512)
    assert out.shape == (3000, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert translate(np.zeros((0, 12)), _unit(rng, 40, 12), _unit(rng, 40, 8), 4, 0.05).shape == (0, 8)


# -- BridgedEncoder -------------------------------------------------------------------------------------------

def test_spaces_index_spaces_and_protocol(pair, tmp_path):
    br = _bridge(pair, tmp_path)
    assert isinstance(br, Encoder)
    assert br.spaces == {CLIP_SPACE: 12, CLAP_SPACE: 8}
    assert [br.index_space(m) for m in ("image", "text", "audio")] == [CLIP_SPACE, CLIP_SPACE, CLAP_SPACE]
    assert br.model_id == "fake-clip@0:12+fake-clap@0:8"
    assert br.sample_rate == 16000 and br.audio_window_s == 2.0
    assert br.index_space("video") == CLIP_SPACE and br.index_space("soundtrack") == CLAP_SPACE  # derived tracks
    with pytest.raises(UsageError):
        br.index_space("smell")
    with pytest.raises(ModelError):
        br.embed("text", ["x"], space="shared")


def test_cross_space_embeddings_follow_the_vocabulary(pair, tmp_path):
    vision, audio = pair
    br = _bridge(pair, tmp_path, top_m=3, temperature=0.1)
    rng = np.random.default_rng(3)
    images, waves = rng.standard_normal((4, 12)), rng.standard_normal((5, 8))
    clip_text, clap_text = vision.embed("text", VOCAB), audio.embed("text", VOCAB)

    assert np.array_equal(br.embed("image", images), vision.embed("image", images))
    img_in_clap = br.embed("image", images, space=CLAP_SPACE)
    np.testing.assert_allclose(
        img_in_clap, translate(vision.embed("image", images), clip_text, clap_text, 3, 0.1), atol=1e-6
    )
    assert np.array_equal(br.embed("audio", waves), audio.embed("audio", waves))
    audio_in_clip = br.embed("audio", waves, space=CLIP_SPACE)
    np.testing.assert_allclose(
        audio_in_clip, translate(audio.embed("audio", waves), clap_text, clip_text, 3, 0.1), atol=1e-6
    )
    assert img_in_clap.shape == (4, 8) and audio_in_clip.shape == (5, 12)
    for out in (img_in_clap, audio_in_clip):
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(br.embed("text", ["hi"], space=CLAP_SPACE), audio.embed("text", ["hi"]))
    assert np.array_equal(br.embed("text", ["hi"]), vision.embed("text", ["hi"]))
    assert br.embed("audio", np.zeros((0, 8)), space=CLIP_SPACE).shape == (0, 12)


def test_an_image_of_a_vocabulary_entry_lands_on_that_entry(pair, tmp_path):
    vision, audio = pair
    br = _bridge(pair, tmp_path, temperature=0.0)
    image = vision.embed("text", [VOCAB[7]])  # an "image" right on entry 7's CLIP text vector
    np.testing.assert_allclose(br.embed("image", image, space=CLAP_SPACE), audio.embed("text", [VOCAB[7]]), atol=1e-6)


def test_vocabulary_is_cached_on_disk_and_reused(pair, tmp_path):
    vision, audio = pair
    first = _bridge(pair, tmp_path).prepare()
    assert (vision.text_calls, audio.text_calls) == (1, 1)
    assert first.cache_path.is_file()
    second = _bridge(pair, tmp_path).prepare()
    assert (vision.text_calls, audio.text_calls) == (1, 1)  # nothing re-embedded
    for a, b in zip(first.vocab_tables(), second.vocab_tables()):
        assert np.array_equal(a, b)
    _bridge(pair, tmp_path, vocab=VOCAB[:10]).prepare()  # another vocabulary, another cache entry
    assert (vision.text_calls, audio.text_calls) == (2, 2)
    first.cache_path.write_bytes(b"damaged")
    _bridge(pair, tmp_path).prepare()  # a damaged cache is rebuilt, not fatal
    assert (vision.text_calls, audio.text_calls) == (3, 3)


def test_prepare_reports_progress_and_chunked_tables_match(pair, tmp_path):
    vision, audio = pair
    vocab = [f"entry {i}" for i in range(600)]
    seen = []
    br = _bridge(pair, tmp_path, vocab=vocab).prepare(progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (1200, 1200) and len(seen) == 6 and all(t == 1200 for _, t in seen)
    clip, clap = br.vocab_tables()
    np.testing.assert_allclose(clip, vision.embed("text", vocab), atol=1e-6)
    np.testing.assert_allclose(clap, audio.embed("text", vocab), atol=1e-6)


def test_vocabulary_is_embedded_lazily(pair, tmp_path):
    br = _bridge(pair, tmp_path)
    br.embed("image", np.ones((1, 12)))
    br.embed("text", ["x"], space=CLAP_SPACE)
    assert not br.cache_path.exists()
    br.embed("audio", np.ones((1, 8)), space=CLIP_SPACE)
    assert br.cache_path.is_file()


def test_default_cache_dir_is_under_xsearch_home(pair, tmp_path, monkeypatch):
    monkeypatch.setenv("XSEARCH_HOME", str(tmp_path / "home"))
    br = BridgedEncoder(*pair, VOCAB)
    assert br.cache_path.parent == tmp_path / "home" / "cache" / "bridge"


@pytest.mark.parametrize("vocab", [[], ["ok", ""], ["ok", None]])
def test_empty_or_bad_vocabulary(pair, tmp_path, vocab):
    with pytest.raises(ModelError) as info:
        _bridge(pair, tmp_path, vocab=vocab)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kw", [{"top_m": 0}, {"top_m": 2.5}, {"temperature": -1}, {"temperature": float("nan")}])
def test_bad_knobs(pair, tmp_path, kw):
    with pytest.raises(ModelError):
        _bridge(pair, tmp_path, **kw)


def test_encoder_without_the_needed_modalities(tmp_path):
    with pytest.raises(ModelError) as info:
        BridgedEncoder(FakeEncoder("audio", 8, "a"), FakeEncoder("audio", 8, "b"), VOCAB, cache_dir=tmp_path)
    assert "image" in str(info.value)


def test_vocabulary_embeddings_that_do_not_fit_the_model(pair, tmp_path):
    audio = pair[1]
    audio._embed_text = lambda texts, space=None: np.ones((len(texts) - 1, 8), np.float32)
    br = _bridge(pair, tmp_path)
    with pytest.raises(ModelError) as info:
        br.embed("image", np.ones((1, 12)), space=CLAP_SPACE)
    assert "shape" in str(info.value) and not br.cache_path.exists()


# -- the bind head --------------------------------------------------------------------------------------------

def test_bind_head_indexes_audio_in_clip_space(pair, tmp_path):
    import torch

    vision, audio = pair
    torch.manual_seed(0)
    head = ProjectionHead(8, 12, hidden_dim=16)
    br = _bridge(pair, tmp_path, bind=head)
    assert br.index_space("audio") == CLIP_SPACE
    assert br.model_id.startswith("fake-clip@0:12+fake-clap@0:8+bind@") and br.model_id.endswith(head.digest())
    waves = np.random.default_rng(4).standard_normal((3, 8))
    out = br.embed("audio", waves)
    np.testing.assert_allclose(out, head.project(audio.embed("audio", waves)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(br.embed("audio", waves, space=CLAP_SPACE), audio.embed("audio", waves))
    assert vision.text_calls == 0  # no vocabulary needed for audio with a head


def test_bind_head_must_fit_the_pair(pair, tmp_path):
    with pytest.raises(ModelError) as info:
        _bridge(pair, tmp_path, bind=ProjectionHead(12, 8))
    assert "8 → 12" in str(info.value)
    with pytest.raises(ModelError) as info:
        _bridge(pair, tmp_path, bind=ProjectionHead(8, 12, meta={"audio_model_id": "some-other-clap"}))
    assert "some-other-clap" in str(info.value)
    _bridge(pair, tmp_path, bind=ProjectionHead(8, 12, meta={"audio_model_id": "fake-clap@0:8"}))


def test_projection_head_save_load_roundtrip(tmp_path):
    import torch

    for hidden in (0, 32):
        torch.manual_seed(1)
        head = ProjectionHead(8, 12, hidden_dim=hidden, meta={"note": "x"})
        x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
        out = head.project(x)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
        loaded = ProjectionHead.load(head.save(tmp_path / f"head{hidden}"))
        assert loaded.config() == head.config() and loaded.digest() == head.digest()
        np.testing.assert_allclose(loaded.project(x), out, atol=1e-6)
    with pytest.raises(ModelError):
        head.project(np.ones((2, 5)))


def test_projection_head_load_errors(tmp_path):
    with pytest.raises(ModelError) as info:
        ProjectionHead.load(tmp_path / "missing")
    assert "does not exist" in str(info.value)
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text("{}")
    with pytest.raises(ModelError) as info:
        ProjectionHead.load(tmp_path / "partial")
    assert "model.safetensors" in str(info.value)
    ProjectionHead(4, 4).save(tmp_path / "bad")
    (tmp_path / "bad" / "config.json").write_text('{"architecture": "something-else", "in_dim": 4, "out_dim": 4}')
    with pytest.raises(ModelError) as info:
        ProjectionHead.load(tmp_path / "bad")
    assert "\n" not in str(info.value)


# -- the vocabulary file ----------------------------------------------------------------------------------------

def test_load_vocab_skips_comments_blanks_and_repeats(tmp_path):
    f = tmp_path / "v.txt"
    f.write_text("# header\n\n dog barking \nrain\n# more\ndog barking\n", encoding="utf-8")
    assert load_vocab(f) == ["dog barking", "rain"]
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(ModelError):
        load_vocab(tmp_path / "empty.txt")
    with pytest.raises(ModelError):
        load_vocab(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ModelError):
        load_vocab(tmp_path / "bin.txt")


def test_shipped_vocabulary():
    vocab = load_vocab()
    header = default_vocab_path().read_text(encoding="utf-8").splitlines()[:3]
    assert any("audioset/ontology" in line for line in header) and any("CC BY-SA 4.0" in line for line in header)
    assert 2000 <= len(vocab) <= 10000
    assert {"dog", "the sound of rain", "church bell"} <= set(vocab)
    assert all(v and not v.startswith("#") for v in vocab)


# -- load_pair end to end on tiny real models -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    _, ckpt = tiny_openclip_checkpoint(root)
    return ckpt, tiny_clap_dir(root)


def test_load_pair_with_a_vocabulary_file_and_with_a_bind_head(tiny_pair, tmp_path, monkeypatch):
    from xsearch.encoders.clap import ClapEncoder
    from xsearch.encoders.openclip import OpenClipEncoder
    from xsearch.encoders.registry import load_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XSEARCH_HOME", str(tmp_path / "home"))
    ckpt, clap_dir = tiny_pair
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("a dog barking\nrain on a roof\nchurch bells\na cat meowing\n")
    base = f"openclip:{TINY_CLIP_ARCH}:{ckpt}+clap:{clap_dir}"

    br = load_encoder(f"{base}+bridge:{vocab_file}", device="cpu")
    assert isinstance(br, BridgedEncoder) and br.vocab == load_vocab(vocab_file)
    assert br.spaces == {CLIP_SPACE: TINY_CLIP_DIM, CLAP_SPACE: TINY_CLAP_DIM}
    assert (
        br.spec == f"openclip:{TINY_CLIP_ARCH}:{ckpt.resolve()}+clap:{clap_dir.resolve()}+bridge:{vocab_file.resolve()}"
    )
    clap = ClapEncoder(str(clap_dir), device="cpu")
    clip = OpenClipEncoder(TINY_CLIP_ARCH, str(ckpt), device="cpu")
    assert br.model_id == f"{clip.model_id}+{clap.model_id}"
    np.testing.assert_allclose(br.embed("text", ["a dog"], space=CLAP_SPACE), clap.embed("text", ["a dog"]), atol=1e-6)
    wave = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    in_clip = br.embed("audio", [wave], space=CLIP_SPACE)
    assert in_clip.shape == (1, TINY_CLIP_DIM) and br.cache_path.is_relative_to(tmp_path / "home")

    head_dir = ProjectionHead(TINY_CLAP_DIM, TINY_CLIP_DIM).save(tmp_path / "head")
    bound = load_encoder(f"{base}+bind:{head_dir}", device="cpu")
    assert bound.index_space("audio") == CLIP_SPACE and "+bind@" in bound.model_id
    assert bound.embed("audio", [wave]).shape == (1, TINY_CLIP_DIM)

    default = load_encoder(base, device="cpu")
    assert len(default.vocab) > 2000  # the shipped vocabulary, not embedded until needed
    assert not default.cache_path.exists()


def test_load_pair_fails_fast_on_a_bad_vocabulary_or_head(tiny_pair, tmp_path):
    from xsearch.encoders.registry import load_encoder

    ckpt, clap_dir = tiny_pair
    base = f"openclip:{TINY_CLIP_ARCH}:{ckpt}+clap:{clap_dir}"
    with pytest.raises(ModelError) as info:
        load_encoder(f"{base}+bridge:{tmp_path / 'missing.txt'}")
    assert "missing.txt" in str(info.value)
    with pytest.raises(ModelError):
        load_encoder(f"{base}+bind:{tmp_path / 'nohead'}")
