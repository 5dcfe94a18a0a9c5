"""The Hugging Face cache and network, as the pretrained backends see them.

huggingface_hub reads ``HF_HOME`` / ``HF_HUB_CACHE`` / ``HF_HUB_OFFLINE`` once, when it is imported; these
helpers read them at call time, so a process (or a test) that sets them later is still honoured, and the
backends pass the cache dir and ``local_files_only`` explicitly.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

from xsearch.encoders.base import weights_digest

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks for no network."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return True
    return False


def offline_reason() -> str:
    """A few words for error messages: why the hub could not be used."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return "HF_HUB_OFFLINE=1"
    if os.environ.get("TRANSFORMERS_OFFLINE", "").strip().lower() in _TRUE:
        return "TRANSFORMERS_OFFLINE=1"
    return "the hub could not be reached"


def hub_cache_dir() -> Path:
    """The hub cache huggingface_hub would use with the current environment."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def cached_file(repo_id: str, filename: str) -> Path | None:
    """The cached path of ``repo_id/filename`` (main revision), or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache_dir()))
    return Path(found) if isinstance(found, str) else None


def file_digest(path: Path | str) -> str:
    """``weights_digest`` of one file; free for hub-cached files, whose blob name is their SHA-256."""
    blob = Path(path).resolve()
    if blob.parent.name == "blobs" and _SHA256.match(blob.name):
        return blob.name[:12]
    return weights_digest([path])


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """Whether the hub endpoint answers an HTTP request within ``timeout_s`` (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(hub_endpoint(), method="HEAD"), timeout=timeout_s)
            result.append(True)
        except urllib.error.HTTPError:
            result.append(True)  # it answered, even if not with 200
        except Exception:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s + 0.2)
    return bool(result and result[0])


def short_reason(exc: BaseException, limit: int = 160) -> str:
    """``Type: first line`` of an exception, trimmed, for a one-sentence error message."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {first}".rstrip(".") if first else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
