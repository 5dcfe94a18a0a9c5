"""A projection head from one embedding space into another (the trained CLAP → CLIP bind).

``ProjectionHead(in_dim, out_dim, hidden_dim=0)``: a linear map (``hidden_dim=0``) or a two-layer MLP
(Linear → GELU → Linear); the output is L2-normalised. The trainer in ``xsearch.train`` fits it with InfoNCE
against CLIP text embeddings of audio captions; ``BridgedEncoder(bind=head)`` then indexes audio in the CLIP
space. Saved as ``model.safetensors`` + ``config.json``; ``meta`` is free-form JSON — when it holds
``audio_model_id`` / ``vision_model_id``, the bridge checks them against the encoders it joins.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xsearch.core.errors import ModelError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ARCHITECTURE = "xsearch-projection-head-v1"


class ProjectionHead(nn.Module):
    """``in_dim`` → ``out_dim``, linear or a small MLP, unit-length output."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 0, *, meta: dict | None = None):
        super().__init__()
        if in_dim < 1 or out_dim < 1 or hidden_dim < 0:
            raise ModelError(
                f"a projection head needs positive dims, not in={in_dim}, out={out_dim}, hidden={hidden_dim}."
            )
        self.in_dim, self.out_dim, self.hidden_dim = int(in_dim), int(out_dim), int(hidden_dim)
        self.meta = dict(meta or {})
        if hidden_dim:
            self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))
        else:
            self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)

    @torch.inference_mode()
    def project(self, x: np.ndarray) -> np.ndarray:
        """Numpy rows [n, in_dim] → unit rows [n, out_dim] (float32), on the head's device."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ModelError(f"the projection head takes [n, {self.in_dim}] vectors, not shape {x.shape}.")
        param = next(self.parameters())
        out = self(torch.from_numpy(x).to(param.device, param.dtype))
        return out.float().cpu().numpy()

    def config(self) -> dict:
        return {"architecture": ARCHITECTURE, "in_dim": self.in_dim, "out_dim": self.out_dim,
                "hidden_dim": self.hidden_dim, "meta": self.meta}

    def digest(self, n: int = 12) -> str:
        """A short hash of the config and weights, for ``model_id``."""
        h = hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:n]

    def save(self, out_dir: Path | str) -> Path:
        """Write ``model.safetensors`` + ``config.json`` into ``out_dir``; returns the dir."""
        from safetensors.torch import save_file

        out = Path(out_dir).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(out / WEIGHTS_FILE))
        (out / CONFIG_FILE).write_text(json.dumps(self.config(), indent=2))
        return out

    @classmethod
    def load(cls, path: Path | str, map_location: str = "cpu") -> ProjectionHead:
        """A head saved by ``save``; a clear ModelError when the dir is missing, partial or mismatched."""
        from safetensors.torch import load_file

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ModelError(f"projection head directory {folder} does not exist.")
        missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
        if missing:
            raise ModelError(f"{folder} is not a projection head checkpoint: {' and '.join(missing)} missing.")
        try:
            cfg = json.loads((folder / CONFIG_FILE).read_text())
            if cfg.get("architecture") != ARCHITECTURE:
                raise ValueError(f"architecture {cfg.get('architecture')!r}, expected {ARCHITECTURE!r}")
            head = cls(int(cfg["in_dim"]), int(cfg["out_dim"]), int(cfg.get("hidden_dim", 0)), meta=cfg.get("meta"))
            head.load_state_dict(load_file(str(folder / WEIGHTS_FILE), device=map_location))
        except ModelError:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"cannot load the projection head in {folder} ({first}).") from None
        return head.to(map_location).eval()
