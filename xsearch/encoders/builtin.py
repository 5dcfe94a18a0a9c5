"""The builtin tri-modal model: small image / audio / text towers into one shared space.

Shaped like ImageBind: per-modality ``ModuleDict``s of preprocessor → trunk → head, and
``forward({modality: x}) -> {modality: embedding}``. Small enough to train on two CPU cores
(``xsearch train --preset builtin``) and to ship inside the package (safetensors + JSON config).

- image: RGB resized/centre-cropped to ``image_size`` → 4 conv blocks → a 4×4 grid flattened (keeps *where*
  things are, which global pooling would lose) → linear head.
- audio: waveform window (``audio_window_s`` at ``sample_rate``) → log-Mel → 2-D conv blocks → pooled
  (freq × time) grid → linear head.
- text: open_clip's BPE tokens (its vocabulary file ships in open_clip; ``tokenizer.py`` reads it without importing
  open_clip) → factorised token embedding
  → small transformer → masked mean → linear head.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from xsearch.core.errors import ModelError
from xsearch.encoders._batching import BatchRunner
from xsearch.encoders._checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint_dir
from xsearch.encoders.base import DEFAULT_SPACE, SingleSpace, TowersByModality, pick_device, weights_digest

ARCHITECTURE = "xsearch-builtin-v1"


@dataclass
class BuiltinConfig:
    """Architecture hyper-parameters; saved in the checkpoint's config.json."""

    embed_dim: int = 256
    image_size: int = 64
    image_channels: tuple[int, ...] = (16, 32, 64, 128)
    sample_rate: int = 16000
    audio_window_s: float = 2.0
    n_fft: int = 512
    hop_length: int = 320
    n_mels: int = 64
    audio_channels: tuple[int, ...] = (16, 32, 64)
    audio_grid: tuple[int, int] = (4, 8)  # (mel, time) cells after pooling
    vocab_size: int = 49408
    context_length: int = 32
    token_dim: int = 64
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    init_logit_scale: float = math.log(1 / 0.07)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "BuiltinConfig":
        known = {f.name for f in fields(cls)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**kwargs)


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ImageTrunk(nn.Module):
    """Conv blocks halving the resolution each time, then the spatial grid flattened."""

    def __init__(self, cfg: BuiltinConfig):
        super().__init__()
        chans = (3,) + tuple(cfg.image_channels)
        self.blocks = nn.Sequential(*[_conv_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        side = cfg.image_size // (2 ** len(cfg.image_channels))
        self.out_dim = chans[-1] * side * side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1)


class LogMel(nn.Module):
    """Waveform [B, T] → log-Mel [B, 1, n_mels, frames], computed in float32 even under autocast."""

    def __init__(self, cfg: BuiltinConfig):
        super().__init__()
        from xsearch.media.melspec import LogMelSpectrogram

        self.mel = LogMelSpectrogram(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                     n_mels=cfg.n_mels, f_min=40.0, f_max=cfg.sample_rate / 2, eps=1e-5)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):
            return self.mel(wave.float()).unsqueeze(1)


class AudioTrunk(nn.Module):
    """Conv blocks over the log-Mel image, pooled to a small (mel × time) grid and flattened."""

    def __init__(self, cfg: BuiltinConfig):
        super().__init__()
        chans = (1,) + tuple(cfg.audio_channels)
        self.norm = nn.BatchNorm2d(1)
        self.blocks = nn.Sequential(*[_conv_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.pool = nn.AdaptiveAvgPool2d(tuple(cfg.audio_grid))
        self.out_dim = chans[-1] * cfg.audio_grid[0] * cfg.audio_grid[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.blocks(self.norm(x))).flatten(1)


class TokenEmbedding(nn.Module):
    """Token ids → factorised embedding (vocab × token_dim, then token_dim → width) + positions."""

    def __init__(self, cfg: BuiltinConfig):
        super().__init__()
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.token_dim)
        self.up = nn.Linear(cfg.token_dim, cfg.text_width)
        self.positions = nn.Parameter(torch.zeros(cfg.context_length, cfg.text_width))
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions, std=0.01)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.up(self.tokens(ids)) + self.positions[: ids.shape[1]], ids != 0


class TextTrunk(nn.Module):
    """A small pre-norm transformer; masked mean over real tokens."""

    def __init__(self, cfg: BuiltinConfig):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            cfg.text_width, cfg.text_heads, dim_feedforward=2 * cfg.text_width, dropout=0.0,
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.text_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.text_width)
        self.out_dim = cfg.text_width

    def forward(self, x: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        h, mask = x
        h = self.norm(self.encoder(h, src_key_padding_mask=~mask))
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


class ImageNormalize(nn.Module):
    """Input already resized to image_size and scaled to [0, 1]; centre it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.25


class BuiltinModel(nn.Module):
    """Tri-modal contrastive model: ``forward({modality: x}) -> {modality: unit vectors}``."""

    modalities = ("image", "audio", "text")

    def __init__(self, cfg: BuiltinConfig | None = None):
        super().__init__()
        self.cfg = cfg or BuiltinConfig()
        c = self.cfg
        self.preprocessors = nn.ModuleDict({"image": ImageNormalize(), "audio": LogMel(c), "text": TokenEmbedding(c)})
        self.trunks = nn.ModuleDict({"image": ImageTrunk(c), "audio": AudioTrunk(c), "text": TextTrunk(c)})
        self.heads = nn.ModuleDict(
            {m: nn.Sequential(nn.Dropout(0.1), nn.Linear(self.trunks[m].out_dim, c.embed_dim)) for m in self.modalities}
        )
        self.logit_scale = nn.Parameter(torch.tensor(float(c.init_logit_scale)))

    def encode(self, modality: str, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z = self.heads[modality](self.trunks[modality](self.preprocessors[modality](x)))
        return nn.functional.normalize(z, dim=-1) if normalize else z

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.encode(m, x) for m, x in inputs.items()}

    def tower_parameters(self, modality: str):
        """Parameters of one modality's preprocessor, trunk and head (for freezing a tower)."""
        for part in (self.preprocessors, self.trunks, self.heads):
            yield from part[modality].parameters()


class BuiltinPreprocess:
    """Turns raw inputs into the model's tensors: PIL images, waveforms, strings."""

    def __init__(self, cfg: BuiltinConfig):
        from xsearch.encoders.tokenizer import ClipTokenizer

        self.cfg = cfg
        self.tokenizer = ClipTokenizer(context_length=cfg.context_length)
        self._image_transform = None  # torchvision is imported on the first image, not for a text query
        self.window = int(round(cfg.sample_rate * cfg.audio_window_s))

    @property
    def image_transform(self):
        if self._image_transform is None:
            from torchvision import transforms as T

            size = self.cfg.image_size
            self._image_transform = T.Compose([
                T.Resize(size, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
                T.CenterCrop(size),
                T.ToTensor(),
            ])
        return self._image_transform

    def images(self, images: Sequence) -> torch.Tensor:
        out = []
        for im in images:
            if im.width == 0 or im.height == 0:
                raise ModelError("cannot embed an image of zero size.")
            out.append(self.image_transform(im.convert("RGB")))
        return torch.stack(out)

    def audio(self, waves: Sequence[np.ndarray]) -> torch.Tensor:
        """Each waveform padded with zeros (or cut) to exactly one window."""
        batch = np.zeros((len(waves), self.window), dtype=np.float32)
        for i, w in enumerate(waves):
            w = np.asarray(w, dtype=np.float32).reshape(-1)[: self.window]
            batch[i, : len(w)] = w
        return torch.from_numpy(batch)

    def text(self, texts: Sequence[str]) -> torch.Tensor:
        """BPE tokens; text longer than ``context_length`` tokens is truncated (open_clip's rule)."""
        return torch.from_numpy(self.tokenizer(list(texts)))


def default_weights_dir() -> Path:
    """Where the shipped builtin weights live inside the package."""
    return Path(str(resources.files("xsearch.encoders") / "weights" / "builtin"))


def save_checkpoint(model: BuiltinModel, out_dir: Path, meta: dict | None = None, half: bool = True) -> Path:
    """Write ``model.safetensors`` (fp16 by default: half the size, no measurable retrieval change) + config.json."""
    return save_checkpoint_dir(model, out_dir, ARCHITECTURE, meta, half=half)


def load_checkpoint(ckpt_dir: Path | str) -> tuple[BuiltinModel, dict]:
    """Load a builtin-architecture checkpoint dir; clear ModelError when missing or of another architecture."""
    from safetensors.torch import load_file

    ckpt_dir = Path(ckpt_dir).expanduser()
    weights, config_path = ckpt_dir / WEIGHTS_FILE, ckpt_dir / CONFIG_FILE
    if not weights.is_file() or not config_path.is_file():
        raise ModelError(f"no builtin checkpoint at {ckpt_dir} (expected {WEIGHTS_FILE} and {CONFIG_FILE}).")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"unreadable checkpoint config {config_path}: {e}") from None
    if config.get("architecture") != ARCHITECTURE:
        raise ModelError(
            f"checkpoint {ckpt_dir} is of architecture {config.get('architecture')!r}, not {ARCHITECTURE!r}."
        )
    model = BuiltinModel(BuiltinConfig.from_dict(config.get("model", {})))
    try:
        state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
        model.load_state_dict(state)
    except Exception as e:  # safetensors / shape mismatch errors are long; keep their first line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"checkpoint {ckpt_dir} does not fit the builtin architecture: {first}") from None
    return model.eval(), config


class BuiltinEncoder(TowersByModality, SingleSpace):
    """The Encoder-protocol wrapper around a BuiltinModel."""

    modalities = ("image", "audio", "text")

    def __init__(self, model: BuiltinModel, *, spec: str = "builtin", digest: str = "random", trained: bool = True,
                 device: str | None = None, batch_size: int = 64, meta: dict | None = None):
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        self.pre = BuiltinPreprocess(model.cfg)
        self.spec = spec
        self.trained = trained
        self.meta = meta or {}
        self.spaces = {DEFAULT_SPACE: model.cfg.embed_dim}
        self.sample_rate = model.cfg.sample_rate
        self.audio_window_s = model.cfg.audio_window_s
        self.image_short_side = model.cfg.image_size  # the transform's Resize; decoders may shrink to it early
        self.model_id = f"{spec}@{digest}:{model.cfg.embed_dim}"
        self._runner = BatchRunner(self.device, batch_size)
        # each tower's preprocessing: raw inputs of one batch → the model's input tensor
        self._prepare = {"image": self.pre.images, "audio": self.pre.audio, "text": self.pre.text}

    @property
    def batch_size(self) -> int:
        """Items per forward pass; halves (and stays halved) when the GPU runs out of memory."""
        return self._runner.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        if value < 1:
            raise ModelError(f"batch size must be at least 1, not {value}.")
        self._runner.batch_size = value

    def _embed(self, modality: str, items: Sequence, space: str | None) -> np.ndarray:
        """Unit vectors [n, dim] of one tower, batch by batch through the shared BatchRunner."""
        self._check_space(space)
        prepare = self._prepare[modality]

        def encode(chunk: Sequence) -> torch.Tensor:
            return self.model.encode(modality, prepare(chunk).to(self.device), normalize=False)

        return self._runner.run(list(items), encode, self.cfg.embed_dim)

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "model_id": self.model_id,
            "modalities": list(self.modalities),
            "dim": self.cfg.embed_dim,
            "device": self.device,
            "trained": self.trained,
            "sample_rate": self.sample_rate,
            "audio_window_s": self.audio_window_s,
            "batch_size": self.batch_size,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "towers": {m: "torch" for m in self.modalities},
        }


def load_builtin(path: str | Path | None = None, device: str | None = None) -> BuiltinEncoder:
    """The shipped model (``path=None``) or a checkpoint dir. Shipped weights missing → random init, trained=False."""
    if path:
        model, config = load_checkpoint(path)
        digest = weights_digest([Path(path).expanduser() / WEIGHTS_FILE])
        return BuiltinEncoder(model, spec=f"builtin:{Path(path).expanduser()}", digest=digest, device=device,
                              meta=config)
    shipped = default_weights_dir()
    if (shipped / WEIGHTS_FILE).is_file():
        model, config = load_checkpoint(shipped)
        return BuiltinEncoder(model, digest=weights_digest([shipped / WEIGHTS_FILE]), device=device, meta=config)
    torch.manual_seed(0)
    return BuiltinEncoder(BuiltinModel(), digest="untrained", trained=False, device=device)
