"""Tiny random-weight open_clip and CLAP checkpoints, built offline, for the pretrained-backend tests.

They go through the real loaders (``OpenClipEncoder(arch, path)``, ``ClapEncoder(dir)``), so other tests can
use them too: ``tiny_openclip_checkpoint(tmp)`` → (arch, checkpoint path); ``tiny_clap_dir(tmp)`` → dir.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_CLIP_ARCH = "xs-tiny-clip"
TINY_CLIP_OTHER_ARCH = "xs-tiny-clip-wide"  # same family, other widths: a wrong-architecture checkpoint
TINY_CLIP_DIM = 16
TINY_CLAP_DIM = 16
TINY_CLAP_SAMPLE_RATE = 16000
TINY_CLAP_WINDOW_S = 1

_CLIP_CONFIGS = {
    TINY_CLIP_ARCH: {
        "embed_dim": TINY_CLIP_DIM,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
    },
    TINY_CLIP_OTHER_ARCH: {
        "embed_dim": 24,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 48, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    },
}

_CAPTIONS = [
    "a dog barking in the distance", "the sound of rain on a roof", "a cat meowing", "a car engine starting",
    "birds singing in the morning", "a door slamming shut", "people talking in a crowded room", "church bells",
]


def register_tiny_openclip_configs(folder: Path) -> None:
    """Write the tiny model configs and register them with open_clip (idempotent)."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    for name, cfg in _CLIP_CONFIGS.items():
        if name not in open_clip.list_models():
            path = folder / f"{name}.json"
            path.write_text(json.dumps(cfg))
            open_clip.add_model_config(path)


def tiny_openclip_checkpoint(
    folder: Path, arch: str = TINY_CLIP_ARCH, seed: int = 0, name: str = "tiny.bin"
) -> tuple[str, Path]:
    """A random-weight checkpoint of a tiny registered arch, saved with torch.save (or safetensors by suffix)."""
    import open_clip
    import torch

    register_tiny_openclip_configs(folder / "configs")
    torch.manual_seed(seed)
    model = open_clip.create_model(arch)
    path = folder / name
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    else:
        torch.save(model.state_dict(), path)
    return arch, path


def tiny_roberta_tokenizer():
    """A byte-level BPE RoBERTa tokenizer trained on a few captions (no hub)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_CAPTIONS * 4, vocab_size=320, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return RobertaTokenizer(vocab=model["vocab"], merges=merges)


def tiny_clap_dir(folder: Path, *, fusion: bool = False, seed: int = 0, with_tokenizer: bool = True) -> Path:
    """A tiny random-weight ClapModel + feature extractor (+ tokenizer) saved with save_pretrained."""
    import torch
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig

    tokenizer = tiny_roberta_tokenizer()
    text = ClapTextConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=34, projection_dim=TINY_CLAP_DIM)
    audio = ClapAudioConfig(num_mel_bins=16, spec_size=64, window_size=4, depths=[1, 1], num_attention_heads=[1, 2],
                            patch_embeds_hidden_size=16, hidden_size=32, projection_dim=TINY_CLAP_DIM,
                            enable_fusion=fusion, fusion_type="aff_2d" if fusion else None)
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=TINY_CLAP_DIM)
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    out = folder / ("clap-fusion" if fusion else "clap")
    model.save_pretrained(out)
    ClapFeatureExtractor(feature_size=16, sampling_rate=TINY_CLAP_SAMPLE_RATE, hop_length=160,
                         max_length_s=TINY_CLAP_WINDOW_S, fft_window_size=400, frequency_max=8000).save_pretrained(out)
    if with_tokenizer:
        tokenizer.save_pretrained(out)
    return out


def put_in_hub_cache(hub_cache: Path, repo_id: str, files: dict[str, Path],
                     commit: str = "89abcdef0123456789abcdef0123456789abcdef") -> None:
    """Lay files out as huggingface_hub's cache does: blobs named by SHA-256, snapshot symlinks, refs/main."""
    import hashlib
    import os

    repo_dir = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    (repo_dir / "blobs").mkdir(exist_ok=True)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        data = Path(src).read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
