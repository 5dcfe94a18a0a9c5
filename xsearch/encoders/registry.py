"""Model specs → encoders. One factory, like open_clip's ``create_model_and_transforms``.

Specs:
  builtin                                   the shipped offline tri-modal model
  builtin:<checkpoint dir>                  a builtin-architecture checkpoint from `xsearch train`
  openclip:<arch>:<pretrained tag | path>   image + text (open_clip_torch)
  clap:<hf id | local dir>                  audio + text (transformers ClapModel)
  openclip:…+clap:…                         all three; audio joined to images through a text vocabulary
  openclip:…+clap:…+bridge:<vocab file>     the same, with your own vocabulary
  openclip:…+clap:…+bind:<checkpoint dir>   all three; audio projected into CLIP space by a trained head
  builtin:<dir>+builtin:<dir>[+bridge:…]    the same joins over two builtin checkpoints (experiments, tests)
  auto                                      the pretrained pair when its weights can be had, else builtin
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from xsearch.errors import ModelError

DEFAULT_OPENCLIP = "openclip:ViT-B-32:laion2b_s34b_b79k"
DEFAULT_CLAP = "clap:laion/clap-htsat-unfused"
DEFAULT_PAIR = f"{DEFAULT_OPENCLIP}+{DEFAULT_CLAP}"

_KINDS = ("builtin", "openclip", "clap", "bind", "bridge", "auto")
_SPLIT = re.compile(r"\+(?=(?:%s)(?::|$))" % "|".join(_KINDS))


@dataclass(frozen=True)
class SpecPart:
    kind: str
    args: tuple[str, ...] = ()
    text: str = ""  # the part as written, e.g. "clap:laion/clap-htsat-unfused"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: one part, or an open_clip + CLAP pair with an optional bind/bridge part."""

    text: str
    parts: tuple[SpecPart, ...] = field(default_factory=tuple)

    def part(self, kind: str) -> SpecPart | None:
        return next((p for p in self.parts if p.kind == kind), None)


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string; raise ModelError with the accepted forms when it is malformed."""
    text = (spec or "").strip()
    if not text:
        raise ModelError("empty model spec; try 'builtin' or see `xsearch models`.")
    parts = []
    for chunk in _SPLIT.split(text):
        kind, _, rest = chunk.partition(":")
        if kind not in _KINDS:
            raise ModelError(f"unknown model spec {spec!r}; known kinds: {', '.join(_KINDS)} (see `xsearch models`).")
        if kind == "openclip":
            arch, _, pretrained = rest.partition(":")
            if not arch:
                raise ModelError(f"{chunk!r}: use openclip:<arch>:<pretrained tag or checkpoint path>.")
            parts.append(SpecPart(kind, (arch, pretrained), chunk))
        elif kind in ("clap", "bind"):
            if not rest:
                raise ModelError(
                    f"{chunk!r}: use {kind}:<{'hub id or local dir' if kind == 'clap' else 'checkpoint dir'}>."
                )
            parts.append(SpecPart(kind, (rest,), chunk))
        else:
            parts.append(SpecPart(kind, (rest,) if rest else (), chunk))
    kinds = [p.kind for p in parts]
    if len(parts) > 1:
        if (kinds[0] not in ("openclip", "builtin") or kinds[1] not in ("clap", "builtin") or len(parts) > 3
                or (len(parts) == 3 and kinds[2] not in ("bind", "bridge"))):
            raise ModelError(
                f"cannot combine {spec!r}; the combined form is <image+text model>+<audio+text model>"
                "[+bind:<dir> | +bridge[:<vocab>]], e.g. openclip:…+clap:… (builtin checkpoints work on either side)."
            )
    elif kinds[0] in ("bind", "bridge"):
        raise ModelError(f"{spec!r} needs an openclip:…+clap:… pair before it.")
    return ModelSpec(text, tuple(parts))


_CACHE: dict[tuple[str, str | None], object] = {}
_CACHE_SIZE = 4


def load_encoder(spec: str, device: str | None = None, *, quiet: bool = False):
    """Build the encoder a spec names (kept for reuse in this process). ``auto`` resolves first."""
    key = (spec, device)
    if key not in _CACHE or parse_spec(spec).parts[0].kind == "auto":
        encoder = _build(spec, device, quiet=quiet)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = encoder
    return _CACHE[key]


def _build(spec: str, device: str | None, *, quiet: bool = False):
    parsed = parse_spec(spec)
    first = parsed.parts[0]
    if first.kind == "auto":
        from xsearch.encoders.auto import resolve_auto

        chosen, _reason = resolve_auto()
        return load_encoder(chosen, device, quiet=quiet)
    if first.kind == "builtin" and len(parsed.parts) == 1:
        from xsearch.encoders.builtin import load_builtin

        return load_builtin(first.args[0] if first.args else None, device=device)
    if first.kind == "openclip" and len(parsed.parts) == 1:
        from xsearch.encoders.openclip import OpenClipEncoder

        return OpenClipEncoder(*first.args, device=device)
    if first.kind == "clap":
        from xsearch.encoders.clap import ClapEncoder

        return ClapEncoder(first.args[0], device=device)
    from xsearch.encoders.bridge import load_pair

    return load_pair(parsed, device=device)


def list_models() -> list[dict]:
    """The spec forms with a one-line description each (what `xsearch models` prints)."""
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
