"""What the Milvus at the other end supports, detected once per connection (its version, asked when first needed):
the store picks its search path, filter compilation and index check from it instead of finding out from a failed —
or, worse, a silently ignored — call.

=====================  ===========  =================================================================
feature                milvus-lite  server
=====================  ===========  =================================================================
``group_by``           yes          2.4+ (2.3 accepts ``group_by_field`` and ignores it)
``like_full``          yes          2.4+ (2.3: prefix and exact ``like`` only; the rest is post-filtered)
index types            LITE_INDEX   2.3: FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW (+ HNSW_SQ from 2.5)
``full_text``          3.x          2.5+ (a BM25 ``Function`` into a sparse vector field: keyword search)
=====================  ===========  =================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .connection import milvus_error
from .indexes import LITE_INDEX_TYPES

SERVER_INDEX_TYPES = ("FLAT", "AUTOINDEX", "HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ")


@dataclass(frozen=True)
class Features:
    version: str
    group_by: bool
    like_full: bool
    index_types: tuple[str, ...]
    full_text: bool = False

    def no_full_text(self, where: str) -> str:
        """Why keyword search is not available on this Milvus (for store.keyword_unsupported)."""
        return (f"keyword search (and OCR) needs Milvus 2.5 or later (its BM25 full-text search); the Milvus at "
                f"{where} is {self.version}")


LITE = Features("milvus-lite", True, True, LITE_INDEX_TYPES)


def _lite_features() -> Features:
    """milvus-lite's: 3.x (pure Python) has BM25 full-text search, 2.4 does not."""
    try:
        from milvus_lite import __version__ as version
    except Exception:  # noqa: BLE001 - no version: assume the older one
        version = "0"
    return Features(f"milvus-lite {version}", True, True, LITE_INDEX_TYPES,
                    full_text=parse_version(version) >= (3, 0, 0))


def parse_version(text: str) -> tuple[int, int, int]:
    """``v2.3.5-lite`` → (2, 3, 5); unknown parts are 0 (an unparsable version reads as 0.0.0)."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else (0, 0, 0)


def server_features(version: str) -> Features:
    v = parse_version(version)
    newer = v >= (2, 4, 0)
    types = SERVER_INDEX_TYPES + (("HNSW_SQ",) if v >= (2, 5, 0) else ())
    return Features(str(version), group_by=newer, like_full=newer, index_types=types, full_text=v >= (2, 5, 0))


def detect(conn) -> Features:
    """The features of ``conn``'s Milvus (cached on the connection)."""
    found = getattr(conn, "_features", None)
    if found is None:
        if conn.target.lite:
            found = _lite_features()
        else:
            try:
                version = conn.client.get_server_version()
            except Exception as exc:  # noqa: BLE001
                raise milvus_error(exc, conn.target, "inspect") from None
            found = server_features(version)
        conn._features = found
    return found
