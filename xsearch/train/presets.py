"""Named training recipes. ``builtin`` is the one that produces the shipped offline model."""

from __future__ import annotations

from xsearch.core.errors import UsageError

PRESETS: dict[str, dict] = {
    # The shipped model: `xsearch train --preset builtin --out xsearch/encoders/weights/builtin --overwrite`
    "builtin": {
        "world": {"n": 5000, "seed": 0},
        "epochs": 30,
        "batch_size": 128,
        "lr": 2e-3,
        "weight_decay": 0.05,
        "warmup_epochs": 1.0,
    },
    # A minute-scale smoke run on a small world (tests, trying the pipeline).
    "tiny": {
        "world": {"n": 400, "seed": 1},
        "epochs": 6,
        "batch_size": 64,
        "lr": 3e-3,
        "warmup_epochs": 0.5,
    },
}


def preset(name: str) -> dict:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[name].items()}
