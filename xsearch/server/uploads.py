"""Query files sent by clients: kept in one private temp folder, named by a random id, recognised by content.

A client's file name and declared content type are never trusted: the first bytes decide which registered
modality an upload is (``xsearch.media.sniff``: any modality with a content sniffer — an image, a sound, a video
clip) and which extension and content type it is stored under; a sound's or a video's length is read from its
header (a video's container is opened with PyAV, nothing decoded) and checked against ``Limits.upload_seconds``.
Nothing is written outside the folder; the oldest uploads are dropped beyond ``Limits.uploads_kept`` uploads or
``Limits.uploads_total_bytes`` bytes, and the folder goes at shutdown.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from xsearch.core.errors import UsageError
from xsearch.media import modalities
from xsearch.media.signatures import HEAD_BYTES, describe_content
from xsearch.media.sniff import sniff_media
from xsearch.server.sessions import Limits

_ID = re.compile(r"^[A-Za-z0-9_-]{16,32}$")
_CHUNK = 1 << 20

#: (modality, first bytes, extension, content type); checked in order, after sniff_media named the modality.
_FORMATS = (
    ("image", lambda h: h.startswith(b"\x89PNG"), ".png", "image/png"),
    ("image", lambda h: h.startswith(b"\xff\xd8\xff"), ".jpg", "image/jpeg"),
    ("image", lambda h: h.startswith(b"GIF8"), ".gif", "image/gif"),
    ("image", lambda h: h.startswith((b"II", b"MM")), ".tif", "image/tiff"),
    ("image", lambda h: h.startswith(b"BM"), ".bmp", "image/bmp"),
    ("image", lambda h: h[8:12] == b"WEBP", ".webp", "image/webp"),
    ("audio", lambda h: h[8:12] == b"WAVE", ".wav", "audio/wav"),
    ("audio", lambda h: h.startswith(b"FORM"), ".aiff", "audio/aiff"),
    ("audio", lambda h: h.startswith(b"fLaC"), ".flac", "audio/flac"),
    ("audio", lambda h: h.startswith(b"OggS"), ".ogg", "audio/ogg"),
    ("audio", lambda h: True, ".mp3", "audio/mpeg"),  # MPEG audio: frame sync or an ID3 tag
    # ISO base media: the major brand says QuickTime, an MPEG-4 sound (a video container with sound only) or MP4
    ("video", lambda h: h[4:8] == b"ftyp" and h[8:12] == b"qt  ", ".mov", "video/quicktime"),
    ("video", lambda h: h[4:8] == b"ftyp" and h[8:12] in (b"M4A ", b"M4B "), ".m4a", "audio/mp4"),
    ("video", lambda h: h[4:8] == b"ftyp", ".mp4", "video/mp4"),
    ("video", lambda h: h[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"), ".mov", "video/quicktime"),
    ("video", lambda h: h.startswith(b"\x1aE\xdf\xa3") and b"webm" in h[:64], ".webm", "video/webm"),
    ("video", lambda h: h.startswith(b"\x1aE\xdf\xa3"), ".mkv", "video/x-matroska"),
    ("video", lambda h: h.startswith(b"RIFF") and h[8:12] == b"AVI ", ".avi", "video/x-msvideo"),
)


def media_format(head: bytes) -> tuple[str, str, str] | None:
    """(modality, extension, content type) of a file starting with ``head``, by content; None if not media."""
    modality = sniff_media(head)
    if modality is None:
        return None
    for kind, test, ext, mime in _FORMATS:
        if kind == modality and test(head):
            return modality, ext, mime
    return modality, "", "application/octet-stream"


@dataclass(frozen=True)
class Upload:
    id: str
    modality: str
    path: Path
    name: str
    size: int
    content_type: str
    duration: float | None = None

    def to_dict(self) -> dict:
        out = {"id": self.id, "modality": self.modality, "name": self.name, "size": self.size,
               "content_type": self.content_type, "url": f"/api/uploads/{self.id}"}
        if self.duration is not None:
            out["duration"] = round(self.duration, 3)
        return out


def too_large(limit: int) -> UsageError:
    return UsageError(f"the upload is larger than the {_mb(limit)} limit", code="upload.too_large", limit=limit)


def _mb(n: int) -> str:
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


class Uploads:
    """The upload area of one server."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._dir: Path | None = None
        self._kept: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def dir(self) -> Path:
        """The private upload folder (mode 0700, made on first use)."""
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="xsearch-uploads-"))
            return self._dir

    def save(self, stream: BinaryIO, name: str | None) -> Upload:
        """Copy ``stream`` into the upload area and check it: size, kind (by content), a sound's or video's length."""
        upload_id = secrets.token_urlsafe(12)
        tmp = self.dir / f"{upload_id}.part"
        size = 0
        try:
            with open(tmp, "xb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > self.limits.upload_bytes:
                        raise too_large(self.limits.upload_bytes)
                    out.write(chunk)
            with open(tmp, "rb") as f:
                head = f.read(HEAD_BYTES)
            shown = _display_name(name)
            found = media_format(head) if head else None
            if found is None:
                what = "empty" if not head else describe_content(head)
                why = "it is empty" if not head else f"it looks like {what}"
                raise UsageError(f"{shown} is not {accepted()} xsearch can read ({why})",
                                 code="upload.unsupported", name=shown, content=what)
            modality, ext, mime = found
            length = _DURATIONS.get(modality)
            duration = length(tmp, shown, self.limits.upload_seconds) if length is not None else None
            if duration is not None and duration > self.limits.upload_seconds:
                raise UsageError(f"{shown} lasts {duration:.0f} s; uploads may last at most "
                                 f"{self.limits.upload_seconds:g} s", code="upload.too_long",
                                 name=shown, seconds=round(duration, 1), limit=self.limits.upload_seconds)
            path = self.dir / f"{upload_id}{ext}"
            os.replace(tmp, path)
            try:
                _check_decodes(path, modality, shown)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        finally:
            tmp.unlink(missing_ok=True)
        upload = Upload(upload_id, modality, path, shown, size, mime, duration)
        with self._lock:
            self._kept[upload_id] = upload
            total = sum(u.size for u in self._kept.values())
            while len(self._kept) > 1 and (len(self._kept) > self.limits.uploads_kept
                                           or total > self.limits.uploads_total_bytes):
                _, old = self._kept.popitem(last=False)
                old.path.unlink(missing_ok=True)
                total -= old.size
        return upload

    def get(self, upload_id: str) -> Upload:
        """A kept upload by id (404 ``upload.missing`` for an unknown, malformed or dropped one)."""
        with self._lock:
            upload = self._kept.get(upload_id) if _ID.match(upload_id or "") else None
        if upload is None or not upload.path.is_file():
            raise UsageError("that upload is gone from the server (it keeps recent uploads only); upload the file "
                             "again", code="upload.missing", upload=str(upload_id)[:40])
        return upload

    def close(self) -> None:
        with self._lock:
            folder, self._dir = self._dir, None
            self._kept.clear()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _display_name(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable())[:120]
    return base or "the upload"


def accepted() -> str:
    """What an upload may be, for messages: every registered modality recognised by content ("an image, a sound or
    a video clip" built in; text has no content sniffer, so a text file is never a query upload)."""
    phrases = [_PHRASES.get(m.name, f"a {m.label} file") for m in modalities.registered() if m.sniff is not None]
    return phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} or {phrases[-1]}"


#: How messages name an upload of a modality where "a LABEL file" would read badly.
_PHRASES = {"image": "an image", "audio": "a sound", "video": "a video clip"}


def _video_duration(path: Path, shown: str, limit_s: float) -> float | None:
    """Seconds of a video clip as its container says (None when it does not say); an unreadable container, or
    one with neither picture nor sound, is refused now (422 ``query.bad_file``) rather than at search time."""
    from xsearch.core.errors import MediaError
    from xsearch.media.video import probe

    try:
        found = probe(path, stop_after_s=limit_s + 1.0)
    except MediaError as e:
        raise UsageError(f"{shown} is not a video clip xsearch can read: {e}", code="query.bad_file",
                         name=shown) from None
    return found["duration"] or None


def _audio_duration(path: Path, shown: str, limit_s: float) -> float | None:
    """Seconds of audio in ``path`` from its header (None when the header does not say); an undecodable header is
    left to the engine's decoder, which gives the real reason at search time."""
    try:
        import soundfile

        info = soundfile.info(str(path))
        return float(info.frames) / info.samplerate if info.samplerate else None
    except Exception:  # an undecodable header: the engine's decoder gives the real reason later
        return None


def _check_decodes(path: Path, modality: str, shown: str) -> None:
    """Decode the upload as a search would, so a file the engine cannot read (a decompression bomb, a sound with
    no channels or a sample rate of 0) is refused now, under its own name (422 ``query.bad_file``), not at search
    time; a video clip was probed above and is not decoded twice."""
    if modality == "video":
        return
    from xsearch.core.errors import MediaError
    from xsearch.media.decode import decode
    from xsearch.media.types import MediaFile

    try:
        decode(MediaFile(path, modality, path.stat().st_size, 0))
    except MediaError as e:
        reason = scrub(e.message, {str(path): shown, path.name: shown})
        raise UsageError(f"{shown} is not {_PHRASES.get(modality, 'a file')} xsearch can read: {reason}",
                         code="query.bad_file", name=shown) from None


def scrub(text: str, names: dict[str, str]) -> str:
    """``text`` with each server path in ``names`` replaced by the name the client knows it by (longest first)."""
    for server, client in sorted(names.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(server, client)
    return text


#: How the length of an upload of each modality is read (checked against ``Limits.upload_seconds``); an upload
#: of a modality not named here has no length to check.
_DURATIONS = {"audio": _audio_duration, "video": _video_duration}
