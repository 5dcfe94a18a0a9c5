"""Model specs → encoders. One factory, like open_clip's ``create_model_and_transforms``.

The spec forms and the table of kinds, each naming its factory, are in :mod:`xsearch.encoders.specs` (re-exported
here). ``auto`` is resolved in one place, :func:`resolve_spec`; :func:`load_encoder` builds through it and keeps
the last few encoders for reuse in this process (thread-safe: concurrent callers of one spec share a single build).

Module graph (no cycles): ``registry`` → ``specs``, ``auto``, ``bridge`` (and lazily the backends);
``auto`` → ``specs``, ``_hub``; ``bridge`` → ``base``. Nothing imports ``registry`` back.
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict

from xsearch.encoders import auto
from xsearch.encoders.bridge import load_pair
from xsearch.encoders.specs import (
    DEFAULT_CLAP,
    DEFAULT_OPENCLIP,
    DEFAULT_PAIR,
    KINDS,
    ModelSpec,
    SpecPart,
    parse_spec,
)

__all__ = [
    "DEFAULT_CLAP",
    "DEFAULT_OPENCLIP",
    "DEFAULT_PAIR",
    "KINDS",
    "ModelSpec",
    "SpecPart",
    "clear_cache",
    "list_models",
    "load_encoder",
    "parse_spec",
    "resolve_spec",
]

CACHE_SIZE = 4

_cache: OrderedDict[tuple[str, str | None, str], object] = OrderedDict()  # most recently used last
_building: dict[tuple[str, str | None, str], threading.Lock] = {}  # one lock per spec being built
_lock = threading.Lock()  # guards _cache and _building, never held while a model builds


def resolve_spec(spec: str) -> tuple[str, str]:
    """(concrete spec, note). ``auto`` becomes the pretrained pair or ``builtin`` and the note says which and why
    (``"model: <spec> (<reason>)"``); any other spec is checked and comes back as written, with the note ``""``."""
    parsed = parse_spec(spec)
    if not parsed.is_auto:
        return parsed.text, ""
    chosen, reason = auto.resolve_auto()
    return chosen, f"model: {chosen} ({reason})"


def load_encoder(spec: str, device: str | None = None, *, quiet: bool = False):
    """The encoder a spec names, built once per (spec, device, runtime) and kept for reuse in this process.

    ``auto`` is resolved first (by :func:`resolve_spec`), so the cache holds concrete specs only. Threads asking
    for the same spec wait for one build; different specs build concurrently.
    """
    from xsearch.encoders.runtimes import current_runtime

    concrete, _note = resolve_spec(spec)
    key = (concrete, device, current_runtime())
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        building = _building.setdefault(key, threading.Lock())
    with building:
        with _lock:  # another thread may have finished this build while we waited
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        try:
            encoder = _build(parse_spec(concrete), device)
        except BaseException:
            with _lock:
                _building.pop(key, None)
            raise
        with _lock:  # cached and no longer "building" in one step, so no later caller starts a second build
            _cache[key] = encoder
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
            _building.pop(key, None)
    return encoder


def clear_cache() -> None:
    """Forget the kept encoders (tests; freeing GPU memory)."""
    with _lock:
        _cache.clear()


def _build(parsed: ModelSpec, device: str | None):
    """The encoder of a concrete spec: a pair through the bridge, else its kind's factory (specs.KINDS)."""
    if len(parsed.parts) > 1:
        return load_pair(parsed, device, load=load_encoder)
    part = parsed.parts[0]
    factory = KINDS[part.kind].factory
    if not factory:  # auto is resolved, bind/bridge stand alone
        raise AssertionError(f"parse_spec let through {parsed.text!r}")
    return _factory(factory)(*part.args, device=device)


def _factory(target: str):
    """The callable a ``"module:callable"`` names (its module imported now, on first use)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def list_models() -> list[dict]:
    """The spec forms with a one-line description each (what the CLI's model list prints)."""
    rows = [
        {"spec": "auto", "modalities": "image, audio, text", "about": "pretrained pair when available, else builtin"},
        {"spec": "builtin", "modalities": "image, audio, text", "about": "shipped offline model (generated world)"},
        {"spec": "builtin:<dir>", "modalities": "image, audio, text", "about": "checkpoint from `xsearch train`"},
        {"spec": DEFAULT_CLAP, "modalities": "audio, text", "about": "LAION CLAP via transformers; hub id or dir"},
        {"spec": DEFAULT_PAIR, "modalities": "image, audio, text", "about": "CLIP + CLAP joined through text"},
        {"spec": DEFAULT_PAIR + "+bind:<dir>", "modalities": "image, audio, text", "about": "with trained projection"},
    ]
    try:
        import open_clip

        for arch, tag in open_clip.list_pretrained():
            rows.append(
                {"spec": f"openclip:{arch}:{tag}", "modalities": "image, text", "about": "open_clip pretrained"}
            )
    except Exception:  # pragma: no cover - open_clip is a hard dependency
        pass
    return rows
