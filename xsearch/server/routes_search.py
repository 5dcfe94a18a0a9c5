"""Search: text, uploaded files and "more like this" items, alone or fused; uploads."""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile

from xsearch.core.errors import UsageError, XsearchError
from xsearch.core.types import Filters
from xsearch.core.types import Query as EngineQuery
from xsearch.server.files import file_of, passage
from xsearch.server.routes_media import MAX_ID, hit_out
from xsearch.server.schemas import ERRORS, SearchOut, UploadOut
from xsearch.server.uploads import scrub

router = APIRouter(tags=["search"])
#: Epoch seconds a date filter is clamped to: the catalog compares modification times as signed 64-bit
#: nanoseconds (years 1677 to 2262), so an earlier or later date selects the same files as these bounds.
EPOCH_RANGE = (-9.2e9, 9.2e9)


@dataclass
class SearchArgs:
    q: list[str]
    upload: list[str]
    like: list[int]
    weights: str | None
    fusion: str
    to: str
    limit: int
    offset: int
    threshold: float | None
    filters: Filters
    params: dict = field(default_factory=dict)
    rerank: bool = False
    mode: str | None = None


def search_args(
    q: list[str] = Query([], description="A text query (repeat for several)."),
    upload: list[str] = Query([], description="The id of a file sent to POST /api/uploads (repeatable)."),
    like: list[int] = Query([], description="An item id: search with that item (\"more like this\"; repeatable)."),
    weights: str | None = Query(None, description="Comma-separated weight per query, in the order: q, upload "
                                                  "(then files posted with the request), like.", examples=["0.7,0.3"]),
    fusion: str = Query("mean", description="How several queries combine: mean, weighted, rrf, vote or hybrid."),
    to: str = Query("image", description="Target modality: image, audio, text, video, or all (one list per "
                                          "modality)."),
    limit: int = Query(20, ge=1, description="Results per target in this page."),
    offset: int = Query(0, ge=0, description="Results to skip (pagination)."),
    threshold: float | None = Query(None, description="Drop results with a cosine score below this."),
    path_glob: str | None = Query(None, description="Only files matching this glob ('*.wav', '*/holiday/*')."),
    min_duration: float | None = Query(None, ge=0, description="Only audio or video at least this long (s)."),
    max_duration: float | None = Query(None, ge=0, description="Only audio or video at most this long (s)."),
    min_size: int | None = Query(None, ge=0, le=2**63 - 1, description="Only files of at least this many bytes."),
    max_size: int | None = Query(None, ge=0, le=2**63 - 1, description="Only files of at most this many bytes."),
    since: str | None = Query(None, description="Only files modified on or after this date (2024-01-31)."),
    until: str | None = Query(None, description="Only files modified before this date."),
    tag: str | None = Query(None, description="Only files carrying this zero-shot tag (POST .../tags)."),
    nprobe: int | None = Query(None, description="IVF lists to visit (recall vs speed)."),
    ef_search: int | None = Query(None, description="HNSW search breadth (recall vs speed)."),
    rerank: bool = Query(False, description="Re-score the best max(offset + limit, 50) candidates per target with "
                                            "the cross-attention re-ranker; each hit keeps the index's score as "
                                            "retrieval_score."),
    mode: str | None = Query(None, description="hybrid (vectors and words: OCR lines, text passages, file names, "
                                               "fused by rank), vector or keyword; default: hybrid for one text "
                                               "query where the collection has words indexed. A hit found by its "
                                               "words lists them (text, box, confidence) in 'words'."),
) -> SearchArgs:
    filters = Filters(path_glob or None, min_duration, max_duration, min_size, max_size, _epoch("since", since),
                      _epoch("until", until), tag or None)
    params = {k: v for k, v in (("nprobe", nprobe), ("efSearch", ef_search)) if v is not None}
    return SearchArgs([t for t in q], upload, like, weights, fusion, to, limit, offset, threshold, filters, params,
                      rerank, mode or None)


@router.get("/api/collections/{name}/search", response_model=SearchOut, responses=ERRORS,
            summary="Search with texts, uploaded files (by id) and items (by id)")
def search_get(name: str, request: Request, args: SearchArgs = Depends(search_args)) -> dict:
    return run_search(request.app.state.xs, name, args, [])


@router.post("/api/collections/{name}/search", response_model=SearchOut, responses=ERRORS,
             summary="Search with image, audio or video files posted as multipart 'file' parts (plus any GET "
                     "parameter)")
def search_post(name: str, request: Request, args: SearchArgs = Depends(search_args),
                file: list[UploadFile] | None = File(None, description="Image, audio or video query files.")) -> dict:
    state = request.app.state.xs
    state.collections.get(name)
    check_count(state.limits, len(args.q) + len(args.upload) + len(file or []) + len(args.like))  # before storing
    posted = [state.uploads.save(f.file, f.filename) for f in file or []]
    return run_search(state, name, args, posted)


@router.post("/api/uploads", response_model=UploadOut, responses=ERRORS,
             summary="Keep an image, a sound or a video clip as a query; use its id as ?upload=ID")
def upload(request: Request, file: UploadFile = File(..., description="An image, a sound or a video clip.")) -> dict:
    return request.app.state.xs.uploads.save(file.file, file.filename).to_dict()


def run_search(state, name: str, args: SearchArgs, posted: list) -> dict:
    """Parse into engine queries, search in one of the server's slots, and cut the page out of the ranking."""
    engine = state.collections.get(name)
    limits = state.limits
    if args.limit > limits.max_limit:
        raise UsageError(f"limit may be at most {limits.max_limit}, not {args.limit}", code="usage.bad_limit",
                         limit=args.limit, max=limits.max_limit)
    window = args.offset + args.limit
    if window > limits.max_window:
        raise UsageError(f"offset + limit may be at most {limits.max_window}; refine the query instead",
                         code="usage.bad_window", window=window, max=limits.max_window)
    uploads = [state.uploads.get(u) for u in args.upload] + list(posted)
    check_count(limits, len(args.q) + len(uploads) + len(args.like))
    for i in args.like:
        if not 0 <= i <= MAX_ID:
            raise UsageError(f"like: {i} is not an item id", code="usage.bad_value", name="like", value=i)
    likes = [engine.item(i) for i in args.like]
    queries = [EngineQuery("text", t) for t in args.q] + [EngineQuery(u.modality, str(u.path)) for u in uploads]
    queries += [EngineQuery("text", passage(engine, h)) if h.modality == "text"
                else EngineQuery(h.modality, str(file_of(engine, h))) for h in likes]
    weights = _weights(args.weights)
    echo = [{"kind": "text", "modality": "text", "value": t} for t in args.q]
    echo += [{"kind": "upload", "modality": u.modality, "upload": u.id, "value": u.name} for u in uploads]
    echo += [{"kind": "like", "modality": h.modality, "item_id": h.item_id, "value": h.path} for h in likes]
    for i, e in enumerate(echo):
        e["weight"] = weights[i] if weights is not None and i < len(weights) else 1.0
    t0 = time.perf_counter()
    with state.collections.slot(), _client_names(uploads):
        alone = len(likes) == 1 and len(queries) == 1 and args.threshold is None and not args.filters.active() \
            and not args.params and not args.rerank and args.mode is None
        if alone:
            results = _similar(engine, likes[0].item_id, args.to, window + 1)
        else:
            results = _with_k(lambda k: engine.search(queries, to=args.to, k=k, weights=weights, fusion=args.fusion,
                                                      threshold=args.threshold, filters=args.filters,
                                                      params=args.params, rerank=args.rerank, mode=args.mode),
                               window + 1)
            own = {h.path for h in likes}
            results = {t: _reranked([h for h in hits if h.path not in own]) for t, hits in results.items()}
    took = (time.perf_counter() - t0) * 1000.0
    return {"collection": name, "queries": echo, "fusion": args.fusion, "mode": args.mode,
            "rerank": _reranker_info(engine) if args.rerank else None, "to": list(results), "offset": args.offset,
            "limit": args.limit, "results": {t: [hit_out(name, h) for h in hits[args.offset:window]]
                                             for t, hits in results.items()},
            "has_more": {t: len(hits) > window for t, hits in results.items()}, "took_ms": round(took, 2)}


@contextmanager
def _client_names(uploads: list):
    """Errors raised while searching name an upload by the name its client sent, never by its server path."""
    try:
        yield
    except XsearchError as e:
        names = {}
        for u in uploads:
            names.update({str(u.path): u.name, u.path.name: u.name})
        if names:
            e.message = scrub(e.message, names)
            e.args = (e.message,)
            e.params = {k: scrub(v, names) if isinstance(v, str) else v for k, v in e.params.items()}
        raise


def check_count(limits, count: int) -> None:
    if count > limits.max_queries:
        raise UsageError(f"{count} queries; at most {limits.max_queries} at once", code="usage.too_many_queries",
                         count=count, max=limits.max_queries)


def _with_k(call, k: int):
    """``call(k)``, or ``call(n)`` when k is more than the collection holds (the engine says n)."""
    try:
        return call(k)
    except UsageError as e:
        if e.code != "usage.k_too_large" or not isinstance(e.params.get("n"), int) or e.params["n"] < 1:
            raise
        return call(e.params["n"])


def _similar(engine, item_id: int, to: str, k: int) -> dict:
    if to != "all":
        return _with_k(lambda n: engine.similar_item(item_id, to=to, k=n), k)
    results = {}
    for target in engine.targets("all")[0]:
        try:
            results.update(_with_k(lambda n: engine.similar_item(item_id, to=target, k=n), k))
        except UsageError as e:
            if e.code not in ("collection.no_items", "collection.empty", "model.modality_unsupported"):
                raise
    if not results:
        raise UsageError("the collection is empty", code="collection.empty")
    return results


def _reranker_info(engine) -> dict:
    """The re-ranker that scored the results, without where it lives on the server's disk."""
    return {k: v for k, v in engine.reranker().describe().items() if k != "path"}


def _reranked(hits: list) -> list:
    for rank, h in enumerate(hits, 1):
        h.rank = rank
    return hits


def _weights(text: str | None) -> list[float] | None:
    if text is None or not text.strip():
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"weights {text!r} are not comma-separated numbers such as 0.7,0.3",
                         code="usage.bad_weights", text=text) from None


def _epoch(name: str, text: str | None) -> float | None:
    """A date (2024-01-31), a date and time (2024-01-31T12:00) or epoch seconds, as epoch seconds (local time)."""
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise UsageError(f"{name} must be a date such as 2024-01-31, not {text!r}", code="usage.bad_filter",
                             name=name, value=text) from None
        try:
            value = when.timestamp()
        except (OverflowError, OSError, ValueError):  # before 1970 or after 3000 on some platforms
            value = EPOCH_RANGE[0] if when.year < 1970 else EPOCH_RANGE[1]
    if not math.isfinite(value):
        raise UsageError(f"{name} must be a date such as 2024-01-31, not {text!r}", code="usage.bad_filter",
                         name=name, value=text)
    return min(max(value, EPOCH_RANGE[0]), EPOCH_RANGE[1])
