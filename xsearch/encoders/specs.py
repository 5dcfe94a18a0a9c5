"""Model spec strings: the defaults and the parser. No model code, so every other encoders module may import it.

Specs:
  builtin                                   the shipped offline tri-modal model
  builtin:<checkpoint dir>                  a builtin-architecture checkpoint from training
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

from xsearch.core.errors import ModelError

DEFAULT_OPENCLIP = "openclip:ViT-B-32:laion2b_s34b_b79k"
DEFAULT_CLAP = "clap:laion/clap-htsat-unfused"
DEFAULT_PAIR = f"{DEFAULT_OPENCLIP}+{DEFAULT_CLAP}"

KINDS = ("builtin", "openclip", "clap", "bind", "bridge", "auto")
_SPLIT = re.compile(r"\+(?=(?:%s)(?::|$))" % "|".join(KINDS))


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

    @property
    def is_auto(self) -> bool:
        return self.parts[0].kind == "auto"


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string; raise ModelError (code ``model.bad_spec``) with the accepted forms when it is malformed."""
    text = (spec or "").strip()
    if not text:
        raise ModelError("empty model spec; try 'builtin'.", code="model.bad_spec", spec=spec or "")
    parts = []
    for chunk in _SPLIT.split(text):
        kind, _, rest = chunk.partition(":")
        if kind not in KINDS:
            raise ModelError(f"unknown model spec {spec!r}; known kinds: {', '.join(KINDS)}.", code="model.bad_spec",
                             spec=spec)
        if kind == "openclip":
            arch, _, pretrained = rest.partition(":")
            if not arch:
                raise ModelError(f"{chunk!r}: use openclip:<arch>:<pretrained tag or checkpoint path>.",
                                 code="model.bad_spec", spec=spec)
            parts.append(SpecPart(kind, (arch, pretrained), chunk))
        elif kind in ("clap", "bind"):
            if not rest:
                raise ModelError(
                    f"{chunk!r}: use {kind}:<{'hub id or local dir' if kind == 'clap' else 'checkpoint dir'}>.",
                    code="model.bad_spec", spec=spec,
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
                "[+bind:<dir> | +bridge[:<vocab>]], e.g. openclip:…+clap:… (builtin checkpoints work on either side).",
                code="model.bad_spec", spec=spec,
            )
    elif kinds[0] in ("bind", "bridge"):
        raise ModelError(f"{spec!r} needs an openclip:…+clap:… pair before it.", code="model.bad_spec", spec=spec)
    return ModelSpec(text, tuple(parts))
