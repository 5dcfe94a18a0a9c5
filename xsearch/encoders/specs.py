"""Model spec strings: the defaults, the table of spec kinds and the parser. No model code (a kind names its factory
as ``"module:callable"``), so every other encoders module may import it.

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


@dataclass(frozen=True)
class EncoderKind:
    """One kind of spec part, as data: how its arguments are written and what builds its encoder.

    - ``name``: the part's prefix (``openclip`` in ``openclip:ViT-B-32:laion2b_s34b_b79k``).
    - ``factory``: ``"module:callable"`` called as ``factory(*args, device=device)`` to build the encoder, imported
      on first use; ``""`` for a part that only joins a pair (bind, bridge) or is resolved first (auto).
    - ``usage``: the written form when the part needs its first argument (a missing one is a ``model.bad_spec``
      error quoting it); ``""`` when its arguments are optional.
    - ``fields``: how many ``:``-separated arguments it takes (the last one keeps any further ``:``).
    - ``sides``: where it may stand in a combined spec: ``"image"`` (the image+text model), ``"audio"`` (the
      audio+text model), ``"join"`` (what joins them).
    """

    name: str
    factory: str = ""
    usage: str = ""
    fields: int = 1
    sides: tuple[str, ...] = ()


#: Every spec kind, by name; a new encoder is its module plus one line here.
KINDS: dict[str, EncoderKind] = {kind.name: kind for kind in (
    EncoderKind("builtin", "xsearch.encoders.onnx_builtin:load_builtin", sides=("image", "audio")),
    EncoderKind("openclip", "xsearch.encoders.openclip_query:load_openclip",
                "openclip:<arch>:<pretrained tag or checkpoint path>", fields=2, sides=("image",)),
    EncoderKind("clap", "xsearch.encoders.clap:ClapEncoder", "clap:<hub id or local dir>", sides=("audio",)),
    EncoderKind("bind", usage="bind:<checkpoint dir>", sides=("join",)),
    EncoderKind("bridge", sides=("join",)),
    EncoderKind("auto"),
)}
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
    parts = tuple(_parse_part(chunk, spec) for chunk in _SPLIT.split(text))
    sides = [KINDS[p.kind].sides for p in parts]
    if len(parts) > 1:
        if ("image" not in sides[0] or "audio" not in sides[1] or len(parts) > 3
                or (len(parts) == 3 and "join" not in sides[2])):
            raise ModelError(
                f"cannot combine {spec!r}; the combined form is <image+text model>+<audio+text model>"
                "[+bind:<dir> | +bridge[:<vocab>]], e.g. openclip:…+clap:… (builtin checkpoints work on either side).",
                code="model.bad_spec", spec=spec,
            )
    elif "join" in sides[0]:
        raise ModelError(f"{spec!r} needs an openclip:…+clap:… pair before it.", code="model.bad_spec", spec=spec)
    return ModelSpec(text, parts)


def _parse_part(chunk: str, spec: str) -> SpecPart:
    kind, _, rest = chunk.partition(":")
    if kind not in KINDS:
        raise ModelError(f"unknown model spec {spec!r}; known kinds: {', '.join(KINDS)}.", code="model.bad_spec",
                         spec=spec)
    form = KINDS[kind]
    if not rest and not form.usage:
        return SpecPart(kind, (), chunk)
    args = tuple(rest.split(":", form.fields - 1))
    args += ("",) * (form.fields - len(args))
    if form.usage and not args[0]:
        raise ModelError(f"{chunk!r}: use {form.usage}.", code="model.bad_spec", spec=spec)
    return SpecPart(kind, args, chunk)
