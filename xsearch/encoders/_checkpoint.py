"""Checkpoint directories of the models trained here (builtin, re-ranker): ``model.safetensors`` + ``config.json``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_checkpoint_dir(model, out_dir: Path | str, architecture: str, meta: dict | None = None, *,
                        half: bool = True, digest: bool = False) -> Path:
    """Write ``model``'s weights to ``out_dir/model.safetensors`` (floating-point tensors in fp16 by default: half
    the size, no measurable retrieval change; written to a temp file, then renamed) and ``config.json``
    (``architecture``, ``model`` = the dataclass ``model.cfg``, ``meta``'s keys and, with ``digest``, the weights'
    content hash). Returns ``out_dir``."""
    from safetensors.torch import save_file

    from xsearch.encoders.base import weights_digest

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        state[k] = v.half() if half and v.is_floating_point() else v
    tmp = out_dir / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"architecture": architecture})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # safetensors writes 0600; a checkpoint is shared like config.json
    tmp.replace(out_dir / WEIGHTS_FILE)
    config = {"architecture": architecture, "model": asdict(model.cfg), **(meta or {})}
    if digest:
        config["digest"] = weights_digest([out_dir / WEIGHTS_FILE])
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n")
    return out_dir
