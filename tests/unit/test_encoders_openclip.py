"""OpenClipEncoder through the real local-path loader, on a tiny random-weight open_clip model (offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.helpers.encoders import TINY_CLIP_ARCH, TINY_CLIP_DIM, TINY_CLIP_OTHER_ARCH, tiny_openclip_checkpoint
from xsearch.core.errors import MediaError, ModelError, UsageError
from xsearch.encoders.base import DEFAULT_SPACE, Encoder, weights_digest
from xsearch.encoders.openclip import OpenClipEncoder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_openclip_checkpoint(tmp_path_factory.mktemp("openclip"))[1]


@pytest.fixture(scope="module")
def encoder(ckpt):
    return OpenClipEncoder(TINY_CLIP_ARCH, str(ckpt), device="cpu")


def _images(n=5):
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (32, 32), (17, 64), (100, 50), (33, 33), (64, 20), (50, 50)]
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n]]


TEXTS = ["a dog barking", "rain on a tin roof", "church bells at noon", "a red square", "ünïcødé 文字 text"]


def _direct(ckpt, images, texts):
    """What open_clip itself gives for the same checkpoint and inputs."""
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP_ARCH, pretrained=str(ckpt))
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY_CLIP_ARCH)
    with torch.no_grad():
        img = F.normalize(model.encode_image(torch.stack([preprocess(im) for im in images])), dim=-1)
        txt = F.normalize(model.encode_text(tokenizer(texts)), dim=-1)
    return img.numpy(), txt.numpy()


def test_vectors_equal_a_direct_open_clip_call(encoder, ckpt):
    images = _images()
    img, txt = encoder.embed("image", images), encoder.embed("text", TEXTS)
    ref_img, ref_txt = _direct(ckpt, images, TEXTS)
    assert img.shape == (5, TINY_CLIP_DIM) and txt.shape == (5, TINY_CLIP_DIM)
    assert img.dtype == np.float32 and txt.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(img, ref_img, atol=1e-5)
    np.testing.assert_allclose(txt, ref_txt, atol=1e-5)
    assert not np.allclose(img[0], img[1])  # different inputs, different vectors


def test_protocol_attributes_and_model_id(encoder, ckpt):
    assert isinstance(encoder, Encoder)
    assert encoder.modalities == ("image", "text")
    assert encoder.spaces == {DEFAULT_SPACE: TINY_CLIP_DIM}
    assert encoder.index_space("image") == encoder.index_space("text") == DEFAULT_SPACE
    assert encoder.spec == f"openclip:{TINY_CLIP_ARCH}:{ckpt.resolve()}"
    assert encoder.model_id == f"{encoder.spec}@{weights_digest([ckpt])}:{TINY_CLIP_DIM}"
    assert encoder.describe()["context_length"] == 16
    with pytest.raises(UsageError):
        encoder.index_space("audio")
    with pytest.raises(UsageError):
        encoder.embed("audio", [np.zeros(10, np.float32)])
    with pytest.raises(ModelError):
        encoder.embed("text", ["x"], space="clap")


def test_batch_size_invariance_and_cpu_determinism(ckpt, encoder):
    small = OpenClipEncoder(TINY_CLIP_ARCH, str(ckpt), device="cpu", batch_size=2)
    images = _images(7)
    np.testing.assert_allclose(small.embed("image", images), encoder.embed("image", images), atol=1e-6)
    np.testing.assert_allclose(small.embed("text", TEXTS), encoder.embed("text", TEXTS), atol=1e-6)
    assert np.array_equal(encoder.embed("image", images), encoder.embed("image", images))
    assert np.array_equal(encoder.embed("text", TEXTS), encoder.embed("text", TEXTS))
    assert encoder.embed("image", []).shape == (0, TINY_CLIP_DIM)
    assert encoder.embed("text", []).shape == (0, TINY_CLIP_DIM)


def test_batch_shrinks_on_out_of_memory(ckpt, monkeypatch):
    monkeypatch.setenv("XSEARCH_RUNTIME", "torch")  # a CUDA out-of-memory is torch's: ONNX Runtime runs on the CPU
    enc = OpenClipEncoder(TINY_CLIP_ARCH, str(ckpt), device="cpu", batch_size=8)
    expected = enc.embed("image", _images(7))
    real = enc.model.encode_image

    def fussy(x, *a, **k):
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(x, *a, **k)

    monkeypatch.setattr(enc.model, "encode_image", fussy)
    np.testing.assert_allclose(enc.embed("image", _images(7)), expected, atol=1e-6)
    assert enc.describe()["batch_size"] == 2


def test_safetensors_checkpoint_and_registry(tmp_path):
    from xsearch.encoders.registry import load_encoder

    _, path = tiny_openclip_checkpoint(tmp_path, seed=3, name="tiny.safetensors")
    enc = load_encoder(f"openclip:{TINY_CLIP_ARCH}:{path}", device="cpu")
    assert isinstance(enc, OpenClipEncoder)
    assert enc.embed("text", ["hello"]).shape == (1, TINY_CLIP_DIM)


def test_empty_text_embeds_and_long_text_is_truncated(encoder, ckpt):
    out = encoder.embed("text", ["", "a cat"])
    np.testing.assert_allclose(out[0], _direct(ckpt, _images(1), [""])[1][0], atol=1e-5)
    assert np.isfinite(out).all() and abs(np.linalg.norm(out[0]) - 1) < 1e-5
    long_a = "the dog barks " * 20
    long_b = long_a + "and then a thunderstorm rolls over the hills " * 10
    a, b = encoder.embed("text", [long_a, long_b])
    np.testing.assert_allclose(a, b, atol=1e-6)  # both cut at the 16-token context


def test_arrays_and_grey_images_are_accepted(encoder):
    grey = Image.new("L", (30, 20), 128)
    arr = np.full((20, 30, 3), 128, np.uint8)
    out = encoder.embed("image", [grey, arr])
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)


@pytest.mark.parametrize("bad, error", [
    (Image.new("RGB", (0, 0)), MediaError),
    (Image.new("RGB", (10, 0)), MediaError),
    (np.zeros((0, 5, 3), np.uint8), MediaError),
    ("not an image", UsageError),
])
def test_bad_images_fail_clearly(encoder, bad, error):
    with pytest.raises(error) as info:
        encoder.embed("image", [Image.new("RGB", (8, 8)), bad])
    assert "image 1" in str(info.value) and "\n" not in str(info.value)


def test_non_string_text_is_a_usage_error(encoder):
    with pytest.raises(UsageError):
        encoder.embed("text", ["ok", None])


def _one_sentence(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_unknown_architecture():
    with pytest.raises(ModelError) as info:
        OpenClipEncoder("ViT-Nonexistent-99", "laion2b_s34b_b79k")
    _one_sentence(info)
    assert info.value.code == "model.unknown_arch"


def test_missing_checkpoint_and_directory(tmp_path, ckpt):
    with pytest.raises(ModelError) as info:
        OpenClipEncoder(TINY_CLIP_ARCH, str(tmp_path / "nope.bin"))
    assert "does not exist" in _one_sentence(info)
    with pytest.raises(ModelError) as info:
        OpenClipEncoder(TINY_CLIP_ARCH, str(ckpt.parent))
    assert "directory" in _one_sentence(info)
    with pytest.raises(ModelError) as info:
        OpenClipEncoder(TINY_CLIP_ARCH, "")
    assert "needs pretrained weights" in _one_sentence(info)


def test_wrong_architecture_and_corrupt_checkpoints(tmp_path, ckpt):
    _, other = tiny_openclip_checkpoint(tmp_path, arch=TINY_CLIP_OTHER_ARCH, name="wide.bin")
    with pytest.raises(ModelError) as info:
        OpenClipEncoder(TINY_CLIP_ARCH, str(other))
    assert TINY_CLIP_ARCH in _one_sentence(info) and "architecture" in str(info.value)
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(ModelError) as info:
        OpenClipEncoder(TINY_CLIP_ARCH, str(garbage))
    _one_sentence(info)


def test_offline_tag_names_the_local_path_alternative():
    with pytest.raises(ModelError) as info:
        OpenClipEncoder("ViT-B-32", "laion2b_s34b_b79k")
    text = _one_sentence(info)
    assert "HF_HUB_OFFLINE=1" in text and "openclip:ViT-B-32:/path/to/checkpoint.bin" in text


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(ModelError) as info:
        OpenClipEncoder("ViT-B-32", "no_such_tag")
    text = _one_sentence(info)
    assert "laion2b_s34b_b79k" in text or "openai" in text


def test_a_cached_tag_loads_offline_from_the_hub_cache(monkeypatch, tmp_path, ckpt):
    import open_clip
    from open_clip.pretrained import _PRETRAINED

    from tests.helpers.encoders import put_in_hub_cache

    # a pretend tag for the tiny arch, kept on the hub the way open_clip's real tags are
    monkeypatch.setitem(
        _PRETRAINED, TINY_CLIP_ARCH, {"xs_test": {"hf_hub": "xsearch-test/tiny-clip/", "quick_gelu": False}}
    )
    assert open_clip.is_pretrained_cfg(TINY_CLIP_ARCH, "xs-test")
    safetensors = tmp_path / "tiny.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in torch.load(ckpt).items()}, str(safetensors))
    put_in_hub_cache(
        tmp_path / "hf-home" / "hub", "xsearch-test/tiny-clip", {"open_clip_model.safetensors": safetensors}
    )
    enc = OpenClipEncoder(TINY_CLIP_ARCH, "xs-test", device="cpu")  # HF_HUB_OFFLINE=1: cache only
    assert enc.spec == f"openclip:{TINY_CLIP_ARCH}:xs_test"
    assert enc.model_id == f"{enc.spec}@{weights_digest([safetensors])}:{TINY_CLIP_DIM}"
    local = OpenClipEncoder(TINY_CLIP_ARCH, str(ckpt), device="cpu")
    np.testing.assert_allclose(enc.embed("text", TEXTS), local.embed("text", TEXTS), atol=1e-6)


def test_decoders_may_shrink_early_to_the_transform_s_resize(encoder, tmp_path):
    """The transform starts with a bicubic Resize of the shorter side, so the encoder advertises it
    (``image_short_side``): decode workers shrink (and decode JPEGs in draft mode) to it, and a PNG's vector is
    the same as from the full-size picture."""
    import open_clip

    from xsearch.encoders.openclip import _short_side_resize
    from xsearch.engine.embed import decode_options
    from xsearch.media import MediaFile, decode

    side = encoder.image_short_side
    assert side == int(encoder.model.visual.image_size[0]) and decode_options(encoder).image_short_side == side
    rng = np.random.default_rng(1)
    path = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 255, (4 * side, 5 * side, 3), dtype=np.uint8)).save(path)
    (seg,) = decode(MediaFile(path, "image", path.stat().st_size, 0), decode_options(encoder))
    assert min(seg.data.size) == side
    np.testing.assert_allclose(encoder.embed("image", [seg.data]), encoder.embed("image", [Image.open(path)]),
                               atol=1e-5)
    _, _, squash = open_clip.create_model_and_transforms(TINY_CLIP_ARCH, image_resize_mode="squash")
    assert _short_side_resize(squash) == 0  # a squash resize needs the full picture
