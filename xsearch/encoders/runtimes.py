"""Which runtime runs an encoder's towers: ``torch``, ``onnx`` (ONNX Runtime, fp32) or ``onnx-int8`` (dynamic int8).

The spec picks the model; the runtime is a setting: ``--runtime`` on the command line, ``XSEARCH_RUNTIME`` in the
environment, else the machine's default (:func:`default_runtime`: ONNX Runtime on a CPU-only machine where it is
installed, torch where a GPU is visible or onnxruntime is missing). Nothing here imports torch or onnxruntime.

Exported towers are cached per model id under ``$XSEARCH_CACHE`` (default ``$XDG_CACHE_HOME/xsearch``, i.e.
``~/.cache/xsearch``, beside the Hugging Face cache): ``onnx/v<format>/<model id>/<tower>.onnx`` (+
``<tower>.int8.onnx``).
The first use exports them (this needs torch, once); later processes load them without importing torch.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

RUNTIMES = ("torch", "onnx", "onnx-int8")
EXPORT_FORMAT = 2  # bumped when what an export writes changes: older exports (and their .failed marks) are not reused
_chosen: str | None = None  # set by --runtime for this process


def gpu_visible() -> bool:
    """An NVIDIA GPU device node or driver is present (checked without importing torch)."""
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def default_runtime() -> str:
    """``onnx`` on a CPU-only machine with onnxruntime installed, else ``torch``."""
    return "onnx" if onnx_available() and not gpu_visible() else "torch"


def check_runtime(name: str) -> str:
    from xsearch.core.errors import UsageError

    value = (name or "").strip().lower()
    if value not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}; use {', '.join(RUNTIMES)}.", code="model.bad_runtime",
                         runtime=name)
    if value != "torch" and not onnx_available():
        raise UsageError(f"runtime {value} needs onnxruntime: pip install 'xsearch[onnx]'.",
                         code="model.no_onnxruntime", runtime=name)
    return value


def set_runtime(name: str | None) -> None:
    """Choose the runtime for this process (``None``: back to the environment / machine default)."""
    global _chosen
    _chosen = check_runtime(name) if name else None


def current_runtime() -> str:
    """The runtime in force: ``--runtime``, else ``XSEARCH_RUNTIME``, else :func:`default_runtime`."""
    if _chosen:
        return _chosen
    env = os.environ.get("XSEARCH_RUNTIME")
    return check_runtime(env) if env else default_runtime()


def describe() -> dict:
    """What ``xsearch info`` prints about runtimes."""
    env = os.environ.get("XSEARCH_RUNTIME")
    source = "--runtime" if _chosen else ("XSEARCH_RUNTIME" if env else "machine default")
    return {"runtime": current_runtime(), "chosen_by": source, "default": default_runtime(),
            "onnxruntime": onnx_available(), "cache": str(cache_dir())}


def cache_dir() -> Path:
    env = os.environ.get("XSEARCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "xsearch"


def export_dir(model_id: str) -> Path:
    """Where a model's exported towers live, keyed by its model id (spec + weights hash + dims)."""
    return cache_dir() / "onnx" / f"v{EXPORT_FORMAT}" / re.sub(r"[^A-Za-z0-9._@-]+", "_", model_id)


def note(message: str) -> None:
    """One line on stderr (an export, a fallback): said, never silent."""
    print(message, file=sys.stderr, flush=True)
