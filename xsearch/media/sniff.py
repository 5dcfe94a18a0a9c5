"""Recognise media files: by content (magic numbers, through the modality registry) and by extension.

The byte-level checks live in :mod:`xsearch.media.signatures`; which modality owns which sniffer and extensions
is the registry's (:mod:`xsearch.media.modalities`).
"""

from __future__ import annotations

from xsearch.media import modalities
from xsearch.media.signatures import HEAD_BYTES, describe_content, has_text_bom, looks_like_text

__all__ = ["HEAD_BYTES", "describe_content", "has_text_bom", "looks_like_text", "modality_for_extension",
           "sniff_media"]


def modality_for_extension(suffix: str) -> str | None:
    """The modality a file extension (with its dot, any case) promises, or None."""
    found = modalities.for_extension(suffix)
    return found.name if found is not None else None


def sniff_media(head: bytes) -> str | None:
    """The modality whose content the bytes ``head`` start with (the first registered sniffer that accepts
    them: IMAGE or AUDIO built in), or None if no sniffer recognises them."""
    return next((m.name for m in modalities.registered() if m.sniff is not None and m.sniff(head)), None)
