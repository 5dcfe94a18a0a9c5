"""The registry of media modalities: what a modality is, as data.

A :class:`Modality` says how files of one kind are found (extensions, a content sniffer), decoded into
segments, and where a segment sits in its file (``offset_unit``). Discovery, sniffing and decoding all read this
registry, so a new modality (say video) is one :func:`register` call here plus its support in the encoders
(``embed(modality, batch)``; see ``xsearch.encoders.base.ModalityDispatch``)::

    register(Modality("video", extensions=(".mp4", ".mkv"), decoder="xsearch.media.video:decode_video",
                      offset_unit="s", sniff=is_video))

Files are recognised by content first: the first registered modality whose ``sniff`` accepts the file's first
bytes wins, whatever the extension says. A file no sniffer recognises is taken by its extension: a modality with
a sniffer then refuses it (its content is not what the extension promises); one without a sniffer (text) takes
it unless ``check_content`` gives a reason not to.

This module imports nothing heavy: a decoder named as ``"module:function"`` is imported on its first use, so
``import xsearch.media`` stays cheap and the decoders' modules may import :mod:`xsearch.media.types` freely.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from xsearch.errors import UsageError
from xsearch.media.signatures import is_audio, is_image, is_video, text_content_problem

#: How an offset reads for each ``offset_unit`` ('' = a file is one segment, no offset worth showing).
_OFFSET_FORMATS: dict[str, Callable[[float], str]] = {
    "": lambda offset: "",
    "s": lambda offset: f"{offset:.1f}s",
    "passage": lambda offset: f"¶{int(offset) + 1}",
}


@dataclass(frozen=True)
class Modality:
    """One kind of media, as data.

    - ``name``: the modality's name everywhere (catalog rows, encoder ``modalities``, ``--to``), e.g. ``"audio"``.
    - ``extensions``: the file extensions (with the dot, any case) that discovery looks at for it.
    - ``decoder``: ``decoder(file: MediaFile, opts: DecodeOptions) -> list[Segment]``, or ``"module:function"``
      naming it (imported on first use). Failures raise MediaError (or OSError) with a one-line reason.
    - ``offset_unit``: what ``Segment.offset`` counts: ``""`` (one segment per file, offset 0), ``"s"``
      (seconds: a window's start) or ``"passage"`` (the passage's index in the file).
    - ``label``: a short human label for reports (default: the name).
    - ``sniff``: ``sniff(head: bytes) -> bool``, True when a file's first bytes are this modality's content;
      None for a modality without magic numbers (text).
    - ``check_content``: only for modalities without ``sniff``: ``check_content(head) -> reason | None``, why a
      file with one of its extensions is not really of this kind (None: take it).
    """

    name: str
    extensions: frozenset[str]
    decoder: Callable[[Any, Any], list] | str
    offset_unit: str = ""
    label: str = ""
    sniff: Callable[[bytes], bool] | None = None
    check_content: Callable[[bytes], str | None] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.isidentifier() and self.name == self.name.lower()):
            raise ValueError(f"a modality name is a lower-case identifier, not {self.name!r}")
        if isinstance(self.extensions, str):
            raise ValueError(f"extensions of {self.name!r} must be a collection of suffixes, not one string")
        extensions = frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in self.extensions)
        object.__setattr__(self, "extensions", extensions)
        if not self.label:
            object.__setattr__(self, "label", self.name)
        if isinstance(self.decoder, str) and ":" not in self.decoder:
            raise ValueError(f"decoder of {self.name!r}: give a callable or 'module:function', not {self.decoder!r}")
        if self.sniff is not None and self.check_content is not None:
            raise ValueError(f"modality {self.name!r}: check_content is for modalities without a sniffer")

    def decode(self, file, opts) -> list:
        """``file`` (a MediaFile of this modality) decoded into its Segments."""
        decoder = _import(self.decoder) if isinstance(self.decoder, str) else self.decoder
        return decoder(file, opts)

    def where(self, offset: float) -> str:
        """A segment's offset for display: ``""`` (image), ``"12.0s"`` (audio window start), ``"¶3"`` (passage 3)."""
        fmt = _OFFSET_FORMATS.get(self.offset_unit)
        return fmt(offset) if fmt is not None else f"{offset:g} {self.offset_unit}"


@cache
def _import(target: str) -> Callable:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


_registry: dict[str, Modality] = {}  # registration order is sniffing order
_lock = threading.Lock()


def register(modality: Modality, *, replace: bool = False) -> Modality:
    """Add ``modality`` (or, with ``replace=True``, put it in place of the one with its name)."""
    with _lock:
        if modality.name in _registry and not replace:
            raise ValueError(f"modality {modality.name!r} is already registered")
        for other in _registry.values():
            shared = modality.extensions & other.extensions
            if other.name != modality.name and shared:
                raise ValueError(f"{', '.join(sorted(shared))} already belong(s) to modality {other.name!r}")
        _registry[modality.name] = modality
    return modality


def unregister(name: str) -> Modality | None:
    """Remove a modality (plugins, tests); returns it, or None when it was not registered."""
    with _lock:
        return _registry.pop(name, None)


def get(name: str) -> Modality:
    """The registered modality called ``name``; a UsageError (``usage.unknown_modality``) for any other name."""
    found = _registry.get(name)
    if found is None:
        known = names()
        raise UsageError(f"unknown modality {name!r}; known: {', '.join(known)}", code="usage.unknown_modality",
                         modality=str(name), choices=", ".join(known))
    return found


def names() -> tuple[str, ...]:
    """The registered modality names, in registration order (``("image", "audio", "text")`` built in)."""
    return tuple(_registry)


def registered() -> tuple[Modality, ...]:
    """The registered modalities, in registration order."""
    return tuple(_registry.values())


def for_extension(suffix: str) -> Modality | None:
    """The modality a file extension (with its dot, any case) belongs to, or None."""
    suffix = suffix.lower()
    return next((m for m in registered() if suffix in m.extensions), None)


def labels(modalities: Iterable[Modality] | None = None) -> str:
    """``"image, audio or text"``: the labels of ``modalities`` (default: all registered), for messages."""
    items = [m.label for m in (registered() if modalities is None else modalities)]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


# -- the built-in modalities --------------------------------------------------------------------------------------

register(Modality(
    "image",
    extensions=frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}),
    decoder="xsearch.media.image:decode_image",
    sniff=is_image,
))
register(Modality(
    "audio",
    extensions=frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"}),
    decoder="xsearch.media.audio:decode_audio",
    offset_unit="s",
    sniff=is_audio,
))
register(Modality(
    "text",
    extensions=frozenset({".txt", ".md", ".markdown"}),
    decoder="xsearch.media.text:decode_text",
    offset_unit="passage",
    check_content=text_content_problem,
))
register(Modality(
    "video",
    extensions=frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}),
    decoder="xsearch.media.video:decode_video",
    offset_unit="s",
    sniff=is_video,
))
