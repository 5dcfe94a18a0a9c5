"""The local store's words of given files, as ``xsearch copy`` reads them (index/store.py: file_words)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from . import keywords


class WordsOfFiles:
    """Mixed into the local reader (``self._collection()``, ``self._lock``)."""

    def file_words(self, file_ids: Sequence[int]) -> dict[int, tuple[list[dict], list[str]]]:
        ids = sorted({int(i) for i in file_ids})
        out: dict[int, tuple[list[dict], list[str]]] = {}
        with self._lock:
            conn = self._collection().catalog.sql()
            if not ids or not keywords.exists(conn):
                return {}
            for start in range(0, len(ids), 900):
                chunk = ids[start:start + 900]
                marks = ",".join("?" * len(chunk))
                for fid, track in conn.execute(f"SELECT file_id, track FROM text_reads WHERE file_id IN ({marks}) "
                                               "ORDER BY file_id, track", chunk):
                    out.setdefault(int(fid), ([], []))[1].append(track)
                rows = conn.execute(f"SELECT file_id, track, offset, text, box, confidence FROM text_lines WHERE "
                                    f"file_id IN ({marks}) AND track != ? ORDER BY file_id, id",
                                    [*chunk, keywords.NAME_TRACK])
                for fid, track, offset, text, box, confidence in rows:
                    line = {"track": track, "text": text, "offset": float(offset)}
                    if box is not None:
                        line["box"] = json.loads(box)
                    if confidence is not None:
                        line["confidence"] = float(confidence)
                    out.setdefault(int(fid), ([], []))[0].append(line)
        return out
