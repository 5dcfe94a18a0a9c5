"""Response shapes, for the OpenAPI page (``/docs``). Results carry every field of ``Hit.to_dict()``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    """An error: its stable code, one sentence, the params it was built from, and a ``hint`` (what to do) when the
    layer that raised it knows one."""

    model_config = ConfigDict(extra="allow")  # "hint" only when there is one: bodies without it stay as they were
    code: str
    message: str
    params: dict = {}


class ErrorOut(BaseModel):
    error: ErrorDetail


class HitOut(BaseModel):
    """One result: a file, its score, where in it it matched, and the URLs to show it."""

    model_config = ConfigDict(extra="allow")
    rank: int
    score: float | None = None
    item_id: int
    path: str
    name: str
    modality: str
    offset: float = 0.0
    end: float | None = None
    snippet: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    size: int | None = None
    media_url: str
    thumb_url: str | None = None
    passage_url: str | None = None
    matched: str | None = None  # which track matched ("picture", "sound"; "words": found only by its words)
    words: list[dict] | None = None  # the lines of words that matched: track, text, offset, box, confidence


class QueryOut(BaseModel):
    kind: str  # text, upload or like
    modality: str
    value: str | None = None
    upload: str | None = None
    item_id: int | None = None
    weight: float


class SearchOut(BaseModel):
    collection: str
    queries: list[QueryOut]
    fusion: str
    mode: str | None = None  # the mode asked for (None: the default, xsearch.engine.hybrid)
    rerank: dict | None = None  # the re-ranker that re-scored the results (rerank=true)
    to: list[str]
    offset: int
    limit: int
    results: dict[str, list[HitOut]]
    has_more: dict[str, bool]
    took_ms: float


class UploadOut(BaseModel):
    id: str
    modality: str
    name: str
    size: int
    content_type: str
    url: str
    duration: float | None = None


class CollectionSummary(BaseModel):
    name: str
    exists: bool
    model_spec: str | None = None
    files: dict[str, int] = {}
    error: ErrorDetail | None = None


class CollectionsOut(BaseModel):
    collections: list[CollectionSummary]


class TagsIn(BaseModel):
    """Labels to tag every file with (zero-shot, through the text tower), as `xsearch tag` does."""

    labels: list[str] | str  # a list, or one string split at commas ("dog, cat, rain")
    top: int = 3  # the best labels kept per file
    min_score: float | None = None  # keep only labels scoring at least this cosine


class TagsOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    collection: str
    labels: list[str]
    files: int
    tagged: int
    untagged: int
    tag_counts: dict[str, int]


class PassageOut(BaseModel):
    item_id: int
    path: str
    index: int
    passage: str


class DuplicatePair(BaseModel):
    a: str
    b: str
    score: float


class DuplicatesOut(BaseModel):
    collection: str
    modality: str
    threshold: float
    pairs: list[DuplicatePair]
    total: int


#: The error statuses every route may answer, for the OpenAPI page.
ERRORS = {status: {"model": ErrorOut} for status in (400, 401, 404, 413, 415, 422, 500, 503)}
