"""Media layer: find files, decode images / audio / text, and cut them into embeddable segments.

Which modalities exist, and how each is recognised and decoded, is data: :mod:`xsearch.media.modalities`.

Only the plain types are imported eagerly; everything else (PIL, soundfile, torch) loads on first use,
so ``import xsearch.media`` stays cheap.
"""

# decode and discover share their names with their modules; binding the functions here (both imports
# are cheap) keeps ``xsearch.media.decode`` / ``.discover`` the functions whatever is imported later.
from xsearch.media.decode import decode
from xsearch.media.discover import discover
from xsearch.media.types import (
    AUDIO,
    IMAGE,
    TEXT,
    DecodeOptions,
    MediaFile,
    Segment,
    Skipped,
)

_LAZY = {
    "iter_decoded": "xsearch.media.loader",
    "load_image": "xsearch.media.image",
    "load_audio": "xsearch.media.audio",
    "split_windows": "xsearch.media.audio",
    "LogMelSpectrogram": "xsearch.media.melspec",
    "read_text": "xsearch.media.text",
    "split_passages": "xsearch.media.text",
    "normalize_query": "xsearch.media.text",
}

__all__ = [
    "AUDIO",
    "IMAGE",
    "MODALITIES",
    "TEXT",
    "DecodeOptions",
    "LogMelSpectrogram",
    "MediaFile",
    "Segment",
    "Skipped",
    "decode",
    "discover",
    "iter_decoded",
    "load_audio",
    "load_image",
    "normalize_query",
    "read_text",
    "split_passages",
    "split_windows",
]


def __getattr__(name: str):
    if name == "MODALITIES":  # the registered names, read each time (xsearch.media.modalities)
        from xsearch.media.modalities import names

        return names()
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
