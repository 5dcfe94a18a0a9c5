"""The registry of media modalities: what a modality is, as data.

A :class:`Modality` says how files of one kind are found (extensions, a content sniffer), decoded into
segments, where a segment sits in its file (``offset_unit``), which :class:`Track` (index) its segments go to
and which modality's tower embeds each track. Discovery, sniffing, decoding, indexing and search all read this
registry, so a new modality is one :func:`register` call here plus its support in the encoders
(``embed(modality, batch)``; see ``xsearch.encoders.base.ModalityDispatch``)::

    register(Modality("video", extensions=(".mp4", ".mkv"), decoder="xsearch.media.video:decode_video",
                      offset_unit="s", sniff=is_video,
                      tracks=(Track("video", embed_as="image", pooled=True, matched="picture"),
                              Track("soundtrack", embed_as="audio", matched="sound"))))

A modality without ``tracks`` has one, named like it and embedded by its own tower (image, audio, text). A track
embedded by another modality's tower (a video's pictures by the image tower) is indexed by every encoder that has
that tower, in that tower's space. A modality with several tracks is searched through all of them, each file
keeping its best moment (``Track.matched`` says which track it came from).

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

from xsearch.core.errors import UsageError
from xsearch.media.signatures import is_audio, is_image, is_video, text_content_problem

#: How an offset reads for each ``offset_unit`` ('' = a file is one segment, no offset worth showing).
_OFFSET_FORMATS: dict[str, Callable[[float], str]] = {
    "": lambda offset: "",
    "s": lambda offset: f"{offset:.1f}s",
    "passage": lambda offset: f"¶{int(offset) + 1}",
}


@dataclass(frozen=True)
class Track:
    """One index that a modality's segments go to.

    - ``name``: the index's name (catalog rows, vector files, ``Segment.track``), unique across modalities.
    - ``embed_as``: the modality whose tower embeds its segments, in that tower's space (default: ``name``).
    - ``pooled``: each segment is a clip, a list of ``embed_as`` segments (frames) embedded and mean-pooled into
      one vector.
    - ``matched``: what a hit says it matched when its file's modality has several tracks ("picture", "sound").
    """

    name: str
    embed_as: str = ""
    pooled: bool = False
    matched: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and self.name.isidentifier() and self.name == self.name.lower()):
            raise ValueError(f"a track name is a lower-case identifier, not {self.name!r}")
        if not self.embed_as:
            object.__setattr__(self, "embed_as", self.name)


@dataclass(frozen=True)
class TextTrack:
    """Words read from a file and kept for keyword search (no vectors): a text file's passages, the lines OCR
    reads in a picture or a video's frames.

    - ``name``: the track's name in the keyword index (``"ocr"``, ``"passage"``); several modalities may share one.
    - ``reader``: ``reader(file, segments, opts) -> list[dict]`` (or ``"module:function"``), run in the decode
      worker after the decoder; each line a dict with ``text`` and optionally ``box`` (four [x, y] corners, in the
      file's pixels), ``confidence`` (0–1) and ``offset`` (the modality's ``offset_unit``).
    - ``opt_in``: read only when the collection asks for it (``DecodeOptions.text_tracks`` names it: OCR is
      ``xsearch index --ocr``); otherwise always.
    - ``label``: what a hit says it matched (``"words"``).
    """

    name: str
    reader: Callable[[Any, Any, Any], list] | str
    opt_in: bool = False
    label: str = "words"

    def read(self, file, segments, opts) -> list:
        reader = _import(self.reader) if isinstance(self.reader, str) else self.reader
        return reader(file, segments, opts)


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
    - ``tracks``: the indexes its segments go to (default: one :class:`Track` named like the modality). Offsets
      of every track count in ``offset_unit``; with ``"s"`` the tracks are *windowed* (a hit has an end).
    - ``truncation``: what the indexing report says of a file cut at a decoding limit, a ``str.format`` template
      with ``{duration}`` (s), ``{segments}`` (how many were indexed) and ``{opts}`` (the DecodeOptions).
    - ``text_tracks``: :class:`TextTrack` s, words read from its files for the keyword index.
    """

    name: str
    extensions: frozenset[str]
    decoder: Callable[[Any, Any], list] | str
    offset_unit: str = ""
    label: str = ""
    sniff: Callable[[bytes], bool] | None = None
    check_content: Callable[[bytes], str | None] | None = None
    tracks: tuple[Track, ...] = ()
    truncation: str = "only part of it was indexed"
    text_tracks: tuple[TextTrack, ...] = ()  # words read from its files for keyword search (OCR, passages)

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
        tracks = tuple(self.tracks) or (Track(self.name),)
        if len({t.name for t in tracks}) != len(tracks):
            raise ValueError(f"modality {self.name!r} names a track twice")
        object.__setattr__(self, "tracks", tracks)

    def decode(self, file, opts) -> list:
        """``file`` (a MediaFile of this modality) decoded into its Segments."""
        decoder = _import(self.decoder) if isinstance(self.decoder, str) else self.decoder
        return decoder(file, opts)

    def where(self, offset: float) -> str:
        """A segment's offset for display: ``""`` (image), ``"12.0s"`` (audio window start), ``"¶3"`` (passage 3)."""
        fmt = _OFFSET_FORMATS.get(self.offset_unit)
        return fmt(offset) if fmt is not None else f"{offset:g} {self.offset_unit}"

    @property
    def track_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tracks)

    @property
    def windowed(self) -> bool:
        """Whether its offsets are window starts in seconds (a hit then has an end: start + window)."""
        return self.offset_unit == "s"

    def truncation_note(self, duration: float, segments: int, opts) -> str:
        """What the report says of a file of this modality cut at a decoding limit (no path)."""
        return self.truncation.format(duration=duration, segments=segments, opts=opts)


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
            taken = set(modality.track_names) & (set(other.track_names) | {other.name})
            if other.name != modality.name and taken:
                raise ValueError(f"track(s) {', '.join(sorted(taken))} already belong to modality {other.name!r}")
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


def find(name: str) -> Modality | None:
    """The registered modality called ``name``, or None."""
    return _registry.get(name)


def names() -> tuple[str, ...]:
    """The registered modality names, in registration order (``("image", "audio", "text")`` built in)."""
    return tuple(_registry)


def registered() -> tuple[Modality, ...]:
    """The registered modalities, in registration order."""
    return tuple(_registry.values())


def tracks_of(name: str) -> tuple[str, ...]:
    """The tracks (indexes) a modality is searched through, e.g. ``("video", "soundtrack")``; a name that is no
    registered modality (a track such as ``"soundtrack"``) is its own one track."""
    found = find(name)
    return found.track_names if found is not None else (name,)


def multi_track(name: str) -> bool:
    """Whether modality ``name`` is searched through several tracks, merged per file (a video)."""
    return len(tracks_of(name)) > 1


def owner(track: str) -> Modality | None:
    """The registered modality one of whose tracks is ``track`` (``"soundtrack"`` → video), or None."""
    return next((m for m in registered() if track in m.track_names), None)


def track(name: str) -> Track:
    """The registered track called ``name``; a name no modality declares is a track embedded as itself."""
    found = owner(name)
    return next(t for t in found.tracks if t.name == name) if found is not None else Track(name)


def embed_as(track_name: str) -> str:
    """The modality whose tower embeds ``track_name`` (``"soundtrack"`` → audio; image / audio / text: itself)."""
    return track(track_name).embed_as


def derived_tracks() -> dict[str, str]:
    """{track: modality whose tower embeds it} for every track that another modality's tower embeds, in
    registration order (``{"video": "image", "soundtrack": "audio"}`` built in)."""
    return {t.name: t.embed_as for m in registered() for t in m.tracks if t.embed_as != t.name}


def windowed(track_name: str) -> bool:
    """Whether ``track_name``'s (or a modality's) offsets are window starts in seconds (a hit then has an end)."""
    found = owner(track_name)
    return found is not None and found.windowed


def text_tracks(opt_in: bool | None = None) -> tuple[str, ...]:
    """The names of every registered modality's text tracks (only the opt-in ones / only the others when
    ``opt_in`` is given), in registration order, each once."""
    found = [t.name for m in registered() for t in m.text_tracks if opt_in is None or t.opt_in == opt_in]
    return tuple(dict.fromkeys(found))


def reading(track_name: str) -> tuple[str, ...]:
    """The modalities whose files the text track ``track_name`` reads (``"ocr"`` → image, video)."""
    return tuple(m.name for m in registered() if track_name in {t.name for t in m.text_tracks})


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
    text_tracks=(TextTrack("ocr", reader="xsearch.media.ocr:read_image", opt_in=True),),
))
register(Modality(
    "audio",
    extensions=frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"}),
    decoder="xsearch.media.audio:decode_audio",
    offset_unit="s",
    sniff=is_audio,
    truncation="{duration:.0f} s long; only the first {opts.max_audio_s:.0f} s were indexed",
))
register(Modality(
    "text",
    extensions=frozenset({".txt", ".md", ".markdown"}),
    decoder="xsearch.media.text:decode_text",
    offset_unit="passage",
    check_content=text_content_problem,
    text_tracks=(TextTrack("passage", reader="xsearch.media.words:passage_lines", label="passage"),),
    truncation=("longer than {opts.max_text_chars:,} characters; only the first {opts.max_text_chars:,} were indexed "
                "({segments} passages)"),
))
register(Modality(
    "video",
    extensions=frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"}),
    decoder="xsearch.media.video:decode_video",
    offset_unit="s",
    sniff=is_video,
    # a video is two tracks on one time grid: its pictures (each window's frames pooled in the image space) and
    # its sound (audio windows); a search merges them per file
    tracks=(Track("video", embed_as="image", pooled=True, matched="picture"),
            Track("soundtrack", embed_as="audio", matched="sound")),
    truncation="{duration:.0f} s long; only the first {opts.max_video_s:.0f} s were indexed",
    text_tracks=(TextTrack("ocr", reader="xsearch.media.ocr:read_video", opt_in=True),),
))
