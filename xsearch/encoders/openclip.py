"""open_clip image + text encoders: ``openclip:<arch>:<pretrained tag | checkpoint path>``.

The encoder owns open_clip's own inference transform (resize, centre crop, normalise) and tokenizer, so an
image or a text is embedded exactly as open_clip would. Texts longer than the tokenizer's context
(``context_length``, 77 tokens for the usual CLIPs: roughly 50-60 English words) are truncated by the
tokenizer; index long documents as passages. An empty string is a valid text: it embeds as the tokenizer's
start/end tokens alone (rejecting empty *queries* is the engine's job).

Weights: a pretrained tag is looked up in the local Hugging Face cache first (``HF_HOME`` / ``HF_HUB_CACHE``;
a cached tag never touches the network) and downloaded there (with huggingface_hub's progress bar) only when
``HF_HUB_OFFLINE`` is unset and the hub answers a quick probe; otherwise a missing tag is a one-sentence
``ModelError`` that names the local-file alternative.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xsearch.core.errors import MediaError, ModelError, UsageError
from xsearch.encoders import _hub
from xsearch.encoders._batching import BatchRunner
from xsearch.encoders.base import DEFAULT_SPACE, SingleSpace, pick_device
from xsearch.encoders.onnx_towers import OnnxTowersMixin

_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".npz")
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip.constants.HF_WEIGHTS_NAME


def _clean_tag(tag: str) -> str:
    return tag.lower().replace("-", "_")  # how open_clip normalises tags


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.startswith((".", "~")) or text.lower().endswith(_WEIGHT_SUFFIXES)


def _hub_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """(repo id, filenames to try) for a pretrained cfg's ``hf_hub`` entry; safetensors first, like open_clip."""
    repo_id, filename = os.path.split(hf_hub)  # "org/repo/" → default file name, "org/repo/file" → that file
    filename = filename or _HF_WEIGHTS_NAME
    if filename == _HF_WEIGHTS_NAME:
        return repo_id, ["open_clip_model.safetensors", filename]
    if filename.endswith((".bin", ".pth")):
        return repo_id, [filename[:-4] + ".safetensors", filename]
    return repo_id, [filename]


def pretrained_hub_files(arch: str, tag: str) -> tuple[str, list[str]]:
    """Where open_clip keeps a pretrained tag on the hub: (repo id, candidate filenames, preferred first)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg.get("hf_hub"):
        raise ModelError(f"open_clip has no hub location for {arch}:{tag}.")
    return _hub_candidates(cfg["hf_hub"])


def _download_tag(arch: str, tag: str, hf_hub: str) -> Path:
    """The local file of a pretrained tag: from the cache, else downloaded into it when allowed."""
    repo_id, candidates = _hub_candidates(hf_hub)
    for name in candidates:
        found = _hub.cached_file(repo_id, name)
        if found is not None:
            return found
    alternative = f"openclip:{arch}:/path/to/checkpoint.bin"
    if _hub.offline():
        raise ModelError(
            f"the open_clip weights {arch}:{tag} are not in the local Hugging Face cache and {_hub.offline_reason()} "
            f"forbids downloading them; download them once online or use {alternative}."
        )
    if not _hub.hub_reachable():
        raise ModelError(
            f"the open_clip weights {arch}:{tag} are not in the local Hugging Face cache and {_hub.hub_endpoint()} "
            f"does not answer; download them once online or use {alternative}."
        )
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    last: Exception | None = None
    for name in candidates:
        try:
            return Path(hf_hub_download(repo_id, name, cache_dir=str(_hub.hub_cache_dir()), library_name="open_clip"))
        except RemoteEntryNotFoundError as e:  # this repo keeps only the other file name
            last = e
        except Exception as e:  # network, auth, disk: no point trying the next name
            last = e
            break
    raise ModelError(
        f"the open_clip weights {arch}:{tag} are not cached and could not be downloaded from {repo_id} "
        f"({_hub.short_reason(last)}); check the network or use {alternative}."
    )


def _short_side_resize(preprocess) -> int:
    """The size of ``preprocess``'s leading bicubic Resize of the shorter side (open_clip's resize_mode
    "shortest"), or 0 when it starts otherwise (squash, longest side, another filter): then images reach the
    transform as decoded."""
    first = (getattr(preprocess, "transforms", None) or [None])[0]
    try:
        from torchvision.transforms import InterpolationMode, Resize
    except ImportError:  # pragma: no cover - open_clip depends on torchvision
        return 0
    if not isinstance(first, Resize) or first.interpolation != InterpolationMode.BICUBIC or first.max_size:
        return 0
    size = first.size
    if isinstance(size, (list, tuple)):
        if len(size) != 1:
            return 0
        size = size[0]
    return int(size) if isinstance(size, int) and size > 0 else 0


class OpenClipEncoder(OnnxTowersMixin, SingleSpace):
    """open_clip CLIP as an Encoder: modalities image + text, one space (``DEFAULT_SPACE``)."""

    modalities = ("image", "text")
    sample_rate = 0
    audio_window_s = 0.0
    _query_remembered = False

    def __init__(self, arch: str, pretrained: str, device: str | None = None, *, batch_size: int = 64):
        import open_clip

        if arch not in open_clip.list_models():
            raise ModelError(f"unknown open_clip architecture {arch!r}.", code="model.unknown_arch", arch=arch)
        if not pretrained:
            tags = open_clip.list_pretrained_tags_by_model(arch)
            example = tags[0] if tags else "/path/to/checkpoint.bin"
            raise ModelError(
                f"openclip:{arch} needs pretrained weights: a tag or a checkpoint path, e.g. openclip:{arch}:{example}."
            )
        self.device = pick_device(device)
        self.arch = arch
        load_kwargs: dict = {}
        if open_clip.is_pretrained_cfg(arch, pretrained):
            tag = _clean_tag(pretrained)
            cfg = open_clip.get_pretrained_cfg(arch, tag)
            checkpoint = _download_tag(arch, tag, cfg["hf_hub"])
            source = tag
            # the tag's preprocessing, as open_clip applies it for a tag; and QuickGELU when the weights were
            # trained with it (open_clip only warns about that mismatch, the embeddings then are off)
            load_kwargs = {
                "image_mean": cfg.get("mean"),
                "image_std": cfg.get("std"),
                "image_interpolation": cfg.get("interpolation"),
                "image_resize_mode": cfg.get("resize_mode"),
                "force_quick_gelu": bool(cfg.get("quick_gelu", False)),
            }
        else:
            checkpoint = self._local_checkpoint(arch, pretrained)
            source = str(checkpoint)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=str(checkpoint), **load_kwargs
            )
        except Exception as e:
            raise ModelError(
                f"cannot load {checkpoint} as an open_clip {arch} checkpoint ({_hub.short_reason(e)}); "
                f"is it a checkpoint of that architecture?"
            ) from None
        try:
            self.tokenizer = open_clip.get_tokenizer(arch)
        except Exception as e:
            raise ModelError(f"cannot load the tokenizer of open_clip {arch} ({_hub.short_reason(e)}).") from None
        self.model = model.to(self.device).eval()
        self.preprocess = preprocess
        # a transform that starts with a bicubic Resize of the shorter side lets decoders shrink (and JPEGs
        # decode in draft mode) to that size early, in the worker processes (xsearch.engine.embed.decode_options)
        self.image_short_side = _short_side_resize(preprocess)
        self.checkpoint = checkpoint
        self.dim = int(open_clip.get_model_config(arch)["embed_dim"])
        self.spaces = {DEFAULT_SPACE: self.dim}
        self.context_length = int(getattr(self.tokenizer, "context_length", 0) or 0)
        self.spec = f"openclip:{arch}:{source}"
        self.model_id = f"{self.spec}@{_hub.file_digest(checkpoint)}:{self.dim}"
        self._runner = BatchRunner(self.device, batch_size)
        from xsearch.encoders import onnx_towers

        arch_config = {"model": open_clip.get_model_config(arch), "load": load_kwargs}
        self._onnx = onnx_towers.for_encoder(self.spec, self.model_id, onnx_towers.fingerprint(arch_config),
                                             self.device)

    @staticmethod
    def _local_checkpoint(arch: str, pretrained: str) -> Path:
        import open_clip

        path = Path(pretrained).expanduser()
        if path.is_file():
            return path.resolve()
        if path.is_dir():
            raise ModelError(
                f"{path} is a directory; give the checkpoint file inside it, "
                f"e.g. openclip:{arch}:{path / 'open_clip_model.safetensors'}."
            )
        if _looks_like_path(pretrained):
            raise ModelError(f"open_clip checkpoint {path} does not exist.")
        tags = open_clip.list_pretrained_tags_by_model(arch)
        known = (
            f"its tags are {', '.join(tags[:6])}{', …' if len(tags) > 6 else ''}"
            if tags
            else "it has no pretrained tags"
        )
        raise ModelError(
            f"{pretrained!r} is neither a pretrained tag of open_clip {arch} nor an existing checkpoint file; {known}.",
            code="model.unknown_tag", arch=arch, tag=pretrained,
        )

    def _remember_text_query(self) -> None:
        """Leave what a later text query needs to skip torch (openclip_query.py) beside the text tower's export:
        only where our tokenizer gives this model's token ids (open_clip's plain SimpleTokenizer)."""
        import json

        import open_clip.tokenizer as oc_tokenizer

        from xsearch.encoders import onnx_towers

        self._query_remembered = True
        tok = self.tokenizer
        plain = (type(tok) is oc_tokenizer.SimpleTokenizer and getattr(tok, "reduction_fn", None) is None
                 and getattr(tok, "clean_fn", None) is oc_tokenizer._clean_lower
                 and len(getattr(tok, "all_special_ids", ())) == 2)
        stamp = onnx_towers.file_stamp(self.checkpoint)
        path = self._onnx.folder / onnx_towers.TEXT_QUERY_FILE
        if plain and stamp is not None and not path.is_file():
            onnx_towers.write_atomically(path, json.dumps({
                "spec": self.spec, "model_id": self.model_id, "dim": self.dim, "context_length": self.context_length,
                "checkpoint": str(self.checkpoint), "stamp": stamp}))

    def _embed_images(self, images: Sequence, space: str | None = None) -> np.ndarray:
        """RGB images (PIL, or HxW[x3] uint8 arrays) → [n, dim] unit vectors."""
        import torch

        self._check_space(space)
        pil = [_as_pil(im, i) for i, im in enumerate(images)]

        onnx = self.onnx_tower("image")

        def encode(batch):
            try:
                pixels = torch.stack([self.preprocess(im) for im in batch])
            except OSError as e:
                raise MediaError(f"an image could not be decoded for embedding ({_hub.short_reason(e)}).") from None
            if onnx is not None:
                return torch.from_numpy(onnx(pixels=pixels.numpy()))
            return self.model.encode_image(pixels.to(self.device))

        return self._runner.run(pil, encode, self.dim)

    def _embed_text(self, texts: Sequence[str], space: str | None = None) -> np.ndarray:
        """Strings → [n, dim] unit vectors; text past ``context_length`` tokens is truncated."""
        self._check_space(space)
        texts = _check_texts(texts)
        onnx = self.onnx_tower("text")
        if onnx is not None and not self._query_remembered:
            self._remember_text_query()

        def encode(batch):
            tokens = self.tokenizer(list(batch))
            if onnx is not None:
                import torch

                return torch.from_numpy(onnx(token_ids=tokens.numpy()))
            return self.model.encode_text(tokens.to(self.device))

        return self._runner.run(texts, encode, self.dim)

    def _tower_export(self, tower: str):
        """open_clip's ``encode_image`` / ``encode_text`` (unnormalised) with example inputs, for the exporter."""
        import torch

        from xsearch.encoders.onnx_export import as_module
        from xsearch.encoders.onnx_towers import TowerExport

        if tower == "image":
            size = self.model.visual.image_size
            h, w = size if isinstance(size, (tuple, list)) else (size, size)
            return TowerExport(as_module(self.model, self.model.encode_image), (torch.rand(2, 3, h, w),), ("pixels",))
        tokens = self.tokenizer(["a photo of a dog", "two red circles on a table"])
        return TowerExport(as_module(self.model, self.model.encode_text), (tokens,), ("token_ids",))

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "model_id": self.model_id,
            "modalities": list(self.modalities),
            "dim": self.dim,
            "device": self.device,
            "checkpoint": str(self.checkpoint),
            "context_length": self.context_length,
            "batch_size": self._runner.batch_size,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "towers": self.runtimes(),
        }


def _check_texts(texts: Sequence[str]) -> list[str]:
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise UsageError(f"text {i} of the batch is a {type(t).__name__}, not a string.")
    return texts


def _as_pil(image, index: int):
    """A non-empty PIL image from a PIL image or a uint8 array; open_clip's transform converts it to RGB."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or image.size == 0:
            raise MediaError(
                f"image {index} of the batch is an array of shape {image.shape}, not a non-empty HxW[xC] image."
            )
        image = Image.fromarray(np.ascontiguousarray(image))
    if not isinstance(image, Image.Image):
        raise UsageError(f"image {index} of the batch is a {type(image).__name__}, not a PIL image.")
    if image.width == 0 or image.height == 0:
        raise MediaError(
            f"image {index} of the batch has zero size ({image.width}x{image.height}); it cannot be embedded."
        )
    return image
