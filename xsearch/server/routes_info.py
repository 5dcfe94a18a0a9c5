"""Collections: the list, one collection's stats, near-duplicate pairs, zero-shot tagging."""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from xsearch.core.errors import XsearchError
from xsearch.server.schemas import ERRORS, CollectionsOut, DuplicatesOut, TagsIn, TagsOut

router = APIRouter(tags=["collections"])
DISCONNECT_POLL_S = 0.25  # how often a long request checks that its client is still there


@router.get("/api/collections", response_model=CollectionsOut, responses=ERRORS,
            summary="The collections this server serves, with their file counts")
def collections(request: Request) -> dict:
    state = request.app.state.xs
    out = []
    for name in state.collections.names():
        engine = state.collections.get(name)
        entry = {"name": name, "exists": False}
        try:
            if engine.exists():
                stats = engine.stats()
                entry.update(exists=True, model_spec=stats.get("model_spec"),
                             files={m: s["files"] for m, s in stats["modalities"].items() if s.get("files")})
        except XsearchError as e:
            entry["error"] = e.to_dict()
        out.append(entry)
    return {"collections": out}


@router.get("/api/collections/{name}", responses=ERRORS,
            summary="One collection's stats: model, and files / items / index per modality")
def collection(name: str, request: Request) -> dict:
    return {"name": name, **request.app.state.xs.collections.get(name).stats()}


@router.get("/api/collections/{name}/duplicates", response_model=DuplicatesOut, responses=ERRORS,
            summary="Pairs of different files whose vectors are nearly the same, best first")
def duplicates(name: str, request: Request,
               modality: str = Query("image", description="image, audio or text"),
               threshold: float = Query(0.95, gt=0, le=1, description="Cosine score at or above which two files "
                                                                      "are near-duplicates."),
               limit: int = Query(100, ge=1, le=1000, description="Pairs to return.")) -> dict:
    state = request.app.state.xs
    engine = state.collections.get(name)
    with state.collections.slot():
        pairs = engine.duplicates(modality, threshold)
    return {"collection": name, "modality": modality, "threshold": threshold, "pairs": pairs[:limit],
            "total": len(pairs)}


@router.post("/api/collections/{name}/tags", response_model=TagsOut, responses=ERRORS,
             summary="Tag every file with its best labels (zero-shot, prompt-ensembled); replaces earlier tags. "
                     "Search with ?tag=LABEL; the collection's stats count files per tag")
async def tag(name: str, body: TagsIn, request: Request) -> dict:
    """Runs in a search slot on a worker thread; a client that goes away stops it (nothing is stored)."""
    state = request.app.state.xs
    engine = state.collections.get(name)
    gone = threading.Event()

    def progress(done: int, total: int) -> None:
        if gone.is_set():
            raise XsearchError("the client went away; tagging stopped", code="request.cancelled")

    def work() -> dict:
        with state.collections.slot():
            progress(0, 0)
            return engine.tag(body.labels, top=body.top, min_score=body.min_score, on_progress=progress,
                              max_labels=state.limits.max_labels)

    task = asyncio.ensure_future(run_in_threadpool(work))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and await request.is_disconnected():
                gone.set()
    finally:
        if not task.done():  # this request was cancelled (the server shuts down): stop the thread too
            gone.set()
    report = task.result()
    report["collection"] = name
    return report
