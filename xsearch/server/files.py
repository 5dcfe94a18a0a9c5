"""Catalog files as responses: a file found by item id (never by a client's path), its content type (by content,
not extension), a text item's passage, and image thumbnails made on demand and cached on disk."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from xsearch.core.errors import UsageError
from xsearch.core.types import Hit
from xsearch.media import modalities
from xsearch.media.signatures import HEAD_BYTES
from xsearch.server.uploads import media_format

THUMB_SIZES = (128, 256, 512)


def file_of(engine, hit: Hit) -> Path:
    """The item's file on disk: 404 ``media.gone`` when it was moved or deleted since it was indexed,
    ``media.replaced`` when a link now leads elsewhere (see :mod:`xsearch.engine.indexed_files`)."""
    from xsearch.engine.indexed_files import checked_file

    return checked_file(hit.path, engine.store().file(hit.path), item_id=hit.item_id)


def content_type(path: Path, modality: str) -> str:
    """What the file really is: media by its first bytes; text as UTF-8 when it decodes so. ``modality`` may be a
    track (a video's ``soundtrack``): the file is then of the modality the track belongs to."""
    with open(path, "rb") as f:
        head = f.read(max(HEAD_BYTES, 65536))
    owner = modalities.owner(modality)
    modality = owner.name if owner is not None else modality
    if modality == "text":
        try:
            head.decode("utf-8")
            return "text/plain; charset=utf-8"
        except UnicodeDecodeError as e:
            return "text/plain; charset=utf-8" if e.start > len(head) - 4 else "text/plain"
    if modality == "video":  # a video's item: one of its picture windows or sound windows
        return video_type(head)
    found = media_format(head)
    if found is not None:
        return found[2]
    return "application/octet-stream"


def video_type(head: bytes) -> str:
    """A video item's content type by its first bytes, as browsers play it (an upload keeps media_format's)."""
    if head[4:8] == b"ftyp":  # MP4, M4V, MOV (QuickTime's H.264 plays as video/mp4 in browsers)
        return "video/mp4"
    if head.startswith(b"\x1aE\xdf\xa3"):  # EBML: WebM, Matroska
        return "video/webm"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    return "application/octet-stream"


def passage(engine, hit: Hit) -> str:
    """The full passage of a text item (the catalog keeps only a snippet), split as the indexer splits it."""
    from xsearch.media.text import read_text, split_passages
    from xsearch.media.types import DecodeOptions

    if hit.modality != "text":
        raise UsageError(f"item {hit.item_id} is {hit.modality}, not a text passage", code="media.none",
                         item_id=hit.item_id)
    opts = DecodeOptions()
    text, _ = read_text(file_of(engine, hit), opts.max_text_chars)
    passages = split_passages(text, opts.text_passage_chars)
    index = int(hit.offset)
    return passages[index] if 0 <= index < len(passages) else (hit.snippet or "")


class Thumbs:
    """JPEG thumbnails under ``root``, keyed by collection, item, the file's mtime and size, and the size asked."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def get(self, engine, hit: Hit, size: int) -> Path:
        if hit.modality != "image":
            raise UsageError(f"item {hit.item_id} is {hit.modality}: only images have thumbnails",
                             code="media.none", item_id=hit.item_id)
        source = file_of(engine, hit)
        size = next((s for s in THUMB_SIZES if s >= size), THUMB_SIZES[-1])
        st = source.stat()
        folder = self.root / hashlib.sha1(engine.uri.encode()).hexdigest()[:16]
        out = folder / f"{hit.item_id}-{st.st_mtime_ns}-{st.st_size}-{size}.jpg"
        if out.is_file():
            return out
        image = _load(source)
        image.thumbnail((size, size))
        folder.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        image.save(tmp, "JPEG", quality=85)
        os.replace(tmp, out)
        for stale in folder.glob(f"{hit.item_id}-*-{size}.jpg"):  # thumbnails of the file's older versions
            if stale != out:
                stale.unlink(missing_ok=True)
        return out


def _load(path: Path):
    from xsearch.core.errors import MediaError
    from xsearch.media.image import load_image

    try:
        return load_image(path)
    except MediaError as e:
        raise UsageError(f"{path.name}: {e}", code="media.unreadable", path=path.name) from None
