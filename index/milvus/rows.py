"""The Milvus row layout of a collection (the schemas of its meta, files and track collections) and the conversion
of rows to and from file records and search hits.

Milvus columns have no NULL: a missing width, height, duration or fps is stored as -1, a missing hash as "".
Every collection needs a vector field: the meta and files collections carry a constant 2-d ``v``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from xsearch.core.types import Hit

from ..store import FileRecord

VARCHAR_MAX = 65_535
MAX_TAGS = 256  # tags copied onto an item row (a file's best ones); a file row keeps them all
TAG_CHARS = 256
SNIPPET_BYTES = 4096

FILE_FIELDS = ["id", "path", "modality", "size", "mtime_ns", "hash", "width", "height", "duration", "model_id",
               "added_at", "updated_at", "fps", "has_audio", "tracks", "tag_scores"]
HIT_FIELDS = ["file_id", "gen", "path", "name", "at", "snippet", "width", "height", "duration", "size"]


# -- schemas --------------------------------------------------------------------------------------------------------


def _schema(client, fields):
    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    for name, dtype, kw in fields:
        s.add_field(name, dtype, **kw)
    return s


def meta_schema(client):
    """``NAME__meta``: key → JSON value."""
    from pymilvus import DataType

    return _schema(client, [("key", DataType.VARCHAR, {"is_primary": True, "max_length": 256}),
                            ("value", DataType.VARCHAR, {"max_length": VARCHAR_MAX}),
                            ("v", DataType.FLOAT_VECTOR, {"dim": 2})])


def files_schema(client):
    """``NAME__files``: one row per indexed file."""
    from pymilvus import DataType

    varchar = DataType.VARCHAR
    return _schema(client, [("id", DataType.INT64, {"is_primary": True}),
                            ("path", varchar, {"max_length": VARCHAR_MAX}),
                            ("modality", varchar, {"max_length": 64}),
                            ("size", DataType.INT64, {}), ("mtime_ns", DataType.INT64, {}),
                            ("hash", varchar, {"max_length": 256}),
                            ("width", DataType.INT64, {}), ("height", DataType.INT64, {}),
                            ("duration", DataType.DOUBLE, {}),
                            ("model_id", varchar, {"max_length": 2048}),
                            ("added_at", DataType.DOUBLE, {}), ("updated_at", DataType.DOUBLE, {}),
                            ("fps", DataType.DOUBLE, {}), ("has_audio", DataType.INT64, {}),
                            ("tracks", varchar, {"max_length": 1024}),
                            ("tag_scores", varchar, {"max_length": VARCHAR_MAX}),
                            ("v", DataType.FLOAT_VECTOR, {"dim": 2})])


def items_schema(client, dim: int):
    """``NAME__<track>``: one row per item, with its file's metadata copied onto it (filters need no join)."""
    from pymilvus import DataType

    varchar = DataType.VARCHAR
    return _schema(client, [("id", DataType.INT64, {"is_primary": True}),
                            ("file_id", DataType.INT64, {}), ("gen", DataType.INT64, {}),
                            ("at", DataType.DOUBLE, {}), ("snippet", varchar, {"max_length": SNIPPET_BYTES}),
                            ("path", varchar, {"max_length": VARCHAR_MAX}),
                            ("name", varchar, {"max_length": VARCHAR_MAX}),
                            ("size", DataType.INT64, {}), ("mtime_ns", DataType.INT64, {}),
                            ("width", DataType.INT64, {}), ("height", DataType.INT64, {}),
                            ("duration", DataType.DOUBLE, {}),
                            ("tags", DataType.ARRAY, {"element_type": varchar, "max_capacity": MAX_TAGS,
                                                      "max_length": TAG_CHARS}),
                            ("vector", DataType.FLOAT_VECTOR, {"dim": int(dim)})])


# -- file rows ------------------------------------------------------------------------------------------------------


def none_if_negative(v):
    return None if v is None or v < 0 else v


def file_record(r: Mapping) -> FileRecord:
    """A files-collection row as a FileRecord."""
    has_audio = int(r.get("has_audio", -1))
    return FileRecord(id=int(r["id"]), path=r["path"], modality=r["modality"], size=int(r["size"]),
                      mtime_ns=int(r["mtime_ns"]), hash=r["hash"] or None, width=none_if_negative(int(r["width"])),
                      height=none_if_negative(int(r["height"])), duration=none_if_negative(float(r["duration"])),
                      model_id=r["model_id"], added_at=float(r["added_at"]), updated_at=float(r["updated_at"]),
                      fps=none_if_negative(float(r.get("fps", -1.0))),
                      has_audio=None if has_audio < 0 else has_audio)


def file_row(record: FileRecord, tracks: Mapping[str, int], tags: Sequence[tuple[str, float]] = ()) -> dict:
    """A FileRecord with its item count per track and its tags as a files-collection row."""
    fps, has_audio = record.fps, record.has_audio
    return {"id": record.id, "path": record.path, "modality": record.modality, "size": int(record.size),
            "mtime_ns": int(record.mtime_ns), "hash": record.hash or "",
            "width": -1 if record.width is None else int(record.width),
            "height": -1 if record.height is None else int(record.height),
            "duration": -1.0 if record.duration is None else float(record.duration), "model_id": record.model_id,
            "added_at": float(record.added_at), "updated_at": float(record.updated_at),
            "fps": -1.0 if fps is None else float(fps), "has_audio": -1 if has_audio is None else int(bool(has_audio)),
            "tracks": json.dumps(dict(tracks), separators=(",", ":")), "tag_scores": _tags_json(list(tags)),
            "v": [1.0, 0.0]}


def _tags_json(tags: Sequence[tuple[str, float]]) -> str:
    text = json.dumps([[t, float(sc)] for t, sc in tags], separators=(",", ":"))
    while len(text.encode("utf-8")) > VARCHAR_MAX and tags:  # keep the best ones that fit
        tags = tags[:len(tags) * 3 // 4]
        text = json.dumps([[t, float(sc)] for t, sc in tags], separators=(",", ":"))
    return text


def sorted_tags(tags: Iterable) -> list[tuple[str, float]]:
    """(tag, score) pairs, best first (ties by name)."""
    return sorted(((str(t), float(sc)) for t, sc in tags), key=lambda ts: (-ts[1], ts[0]))


# -- item rows ------------------------------------------------------------------------------------------------------


def item_meta(record: FileRecord, tags: Sequence[tuple[str, float]] = ()) -> dict:
    """The file metadata copied onto each of its item rows."""
    return {"path": record.path, "name": record.path.rsplit("/", 1)[-1], "size": int(record.size),
            "mtime_ns": int(record.mtime_ns), "width": -1 if record.width is None else int(record.width),
            "height": -1 if record.height is None else int(record.height),
            "duration": -1.0 if record.duration is None else float(record.duration),
            "tags": [t for t, _ in tags if len(t.encode("utf-8")) <= TAG_CHARS][:MAX_TAGS]}


def clip_snippet(text) -> str:
    """An item's snippet as stored: at most SNIPPET_BYTES of UTF-8, "" for none."""
    if not text:
        return ""
    data = str(text).encode("utf-8", "surrogatepass")[:SNIPPET_BYTES]
    return data.decode("utf-8", "ignore")


def hit_from_entity(track: str, item_id: int, score: float, e: Mapping) -> Hit:
    """An item row (its HIT_FIELDS) as a Hit (rank 0: the caller ranks)."""
    return Hit(0, float(score), e["path"], track, float(e["at"]), int(item_id), e.get("snippet") or None,
               none_if_negative(int(e["width"])), none_if_negative(int(e["height"])),
               none_if_negative(float(e["duration"])), int(e["size"]))


def unpack_hit(h) -> tuple[int, float, Mapping]:
    """(id, score, entity) of one pymilvus search hit."""
    entity = h.get("entity") if hasattr(h, "get") else None
    if entity is None:
        entity = h["entity"]
    return int(h["id"]), float(h["distance"]), entity
