"""Plain types shared by every layer: queries, hits, filters, index reports. No heavy imports here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Query:
    """One query: a text string (modality "text"), or the path of a media file of ``modality``."""

    modality: str
    value: str

    @property
    def label(self) -> str:
        return f'"{self.value}"' if self.modality == "text" else f"{self.modality}:{Path(self.value).name}"


def make_queries(texts: Sequence[str] = (), files: dict[str, Sequence] | None = None) -> list[Query]:
    """Queries in a stable order: texts first, then each modality's files in the order given
    (``files={"image": [...], "audio": [...]}``). Weights are given in the same order."""
    queries = [Query("text", str(t)) for t in texts]
    for modality, paths in (files or {}).items():
        queries += [Query(modality, str(p)) for p in paths]
    return queries


@dataclass
class Hit:
    """One result: a file, its score, and where in it (audio window start in s, text passage index)."""

    rank: int
    score: float
    path: str
    modality: str
    offset: float
    item_id: int
    snippet: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    size: int | None = None
    end: float | None = None  # where the matched window ends (s), for windowed media (audio, video)
    matched: str | None = None  # which track of a video matched: "picture" or "sound"
    retrieval_score: float | None = None  # re-ranked: the index's score before re-ranking (score: the re-ranker's)
    words: list | None = None  # found by its words: the lines that matched ({track, text, offset, box, confidence})
    relevance: float | None = None  # score above the query's baseline in this collection (xsearch.engine.relevance)
    weak: bool | None = None  # relevance below the model's calibrated gap (None: no calibration for this model)

    def to_dict(self) -> dict:
        """JSON-safe: None fields dropped, a non-finite score becomes None (JSON has no NaN)."""
        out = {k: v for k, v in asdict(self).items() if v is not None}
        for key in ("score", "retrieval_score"):
            if not math.isfinite(out.get(key, 0.0)):
                out[key] = None
        return out


@dataclass
class Filters:
    """Which files a search may return. Each store compiles these to its own filter language.

    - ``path_glob``: a pattern with a ``/`` matches the whole path (``*/holiday/*``), one without matches the file
      name (``*.jpg``); ``*``, ``?`` and ``[...]`` as in shell globs, case-sensitive;
    - ``min_duration`` / ``max_duration``: seconds, inclusive; files without a duration never pass;
    - ``min_size`` / ``max_size``: bytes, inclusive;
    - ``since`` / ``until``: modification time, inclusive / exclusive; a datetime, date or epoch seconds;
    - ``tag``: only files tagged with it.
    """

    path_glob: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    min_size: int | None = None
    max_size: int | None = None
    since: object = None
    until: object = None
    tag: str | None = None  # files carrying this zero-shot tag (`xsearch tag`)

    def active(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class IndexReport:
    """What one indexing run did."""

    root: str
    collection: str
    model_spec: str
    model_id: str
    model_note: str = ""
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    renamed: int = 0
    removed: int = 0
    prune_refused: int = 0  # files gone from disk that were kept because too many vanished at once
    vectors_added: dict = field(default_factory=dict)
    lines_added: dict = field(default_factory=dict)  # text track -> lines of words stored (OCR, passages)
    skipped: list = field(default_factory=list)  # [{"path", "reason"}]
    unsupported: dict = field(default_factory=dict)  # modality -> files the model cannot embed
    ignored: dict = field(default_factory=dict)  # extension -> files that are no media (hidden ones not counted)
    notes: list = field(default_factory=list)
    reindexed: dict = field(default_factory=dict)
    repaired: str = ""
    seconds: float = 0.0
    model_fit: dict | None = None  # builtin on media that is not its world: xsearch.engine.fit's verdict

    @property
    def embedded(self) -> int:
        return self.added + self.updated

    def to_dict(self) -> dict:
        return asdict(self)
