"""Milvus collection arguments: ``milvus-lite:PATH.db`` and ``milvus://HOST:PORT/NAME``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from xsearch.core.errors import UsageError

LITE_PREFIX = "milvus-lite:"
SERVER_PREFIX = "milvus://"
LITE_NAME = "xsearch"  # the xsearch collection inside a milvus-lite .db
DEFAULT_PORT = 19530

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")


@dataclass(frozen=True)
class Target:
    """A parsed Milvus collection argument."""

    uri: str  # canonical: milvus-lite:/abs/x.db or milvus://host:port/NAME
    lite: bool
    name: str
    path: str = ""  # milvus-lite: the .db (a directory)
    address: str = ""  # server: host:port

    def coll(self, part: str) -> str:
        """The Milvus collection holding ``part`` (meta, files or a track) of this xsearch collection."""
        return f"{self.name}__{part}"


def parse_uri(uri: str) -> Target:
    """The Target a collection argument names (UsageError code store.bad_uri when it names none)."""
    text = str(uri)
    if text.startswith(LITE_PREFIX):
        raw = text[len(LITE_PREFIX):]
        if not raw.strip():
            raise _bad_uri(text, "give the path of a .db after milvus-lite:")
        path = os.path.abspath(os.path.expanduser(raw))
        if not path.endswith(".db"):
            raise _bad_uri(text, "a milvus-lite database path must end in .db")
        return Target(LITE_PREFIX + path, True, LITE_NAME, path=path)
    if text.startswith(SERVER_PREFIX):
        from urllib.parse import urlsplit

        parts = urlsplit(text)
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise _bad_uri(text, "the port must be a number") from None
        host = parts.hostname
        name = parts.path.strip("/")
        if not host:
            raise _bad_uri(text, "use milvus://HOST:PORT/NAME")
        if not _NAME_RE.fullmatch(name):
            raise _bad_uri(text, "NAME must be letters, digits and _ (not starting with a digit), as in "
                                 "milvus://localhost:19530/photos")
        return Target(f"{SERVER_PREFIX}{host}:{port}/{name}", False, name, address=f"{host}:{port}")
    raise _bad_uri(text, "use milvus-lite:PATH.db or milvus://HOST:PORT/NAME")


def _bad_uri(uri: str, why: str) -> UsageError:
    return UsageError(f"bad Milvus collection {uri!r}: {why}", code="store.bad_uri", collection=uri, reason=why)
