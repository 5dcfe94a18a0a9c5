"""The page without a query: a collection's overview (the model's fit, example queries), pages of its files, an
item's details for the preview pane, a sound's waveform."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from xsearch.server.files import file_of
from xsearch.server.routes_media import ItemId, hit_out
from xsearch.server.schemas import ERRORS

router = APIRouter(tags=["browse"])


@router.get("/api/collections/{name}/overview", responses=ERRORS,
            summary="What the page shows first: files per modality, whether the model knows these files "
                    "(model_fit), and example queries drawn from the collection")
def overview(name: str, request: Request) -> dict:
    engine = request.app.state.xs.collections.get(name)
    stats = engine.stats()
    files = {m: s["files"] for m, s in stats["modalities"].items() if s.get("files")}
    return {"name": name, "model_spec": stats.get("model_spec"), "files": files,
            "model_fit": stats.get("model_fit"), "examples": engine.examples()}


@router.get("/api/collections/{name}/browse", responses=ERRORS,
            summary="A page of the collection's files of one modality: newest first, or shuffled")
def browse(name: str, request: Request,
           modality: str = Query("image", pattern="^(image|audio|text|video)$"),
           order: str = Query("recent", pattern="^(recent|random)$"),
           offset: int = Query(0, ge=0, le=10_000_000), limit: int = Query(24, ge=1, le=200),
           seed: int = Query(0, ge=0, le=2**31)) -> dict:
    engine = request.app.state.xs.collections.get(name)
    total, hits = engine.browse(modality, order=order, offset=offset, limit=limit, seed=seed)
    return {"modality": modality, "total": total, "items": [hit_out(name, h) for h in hits],
            "has_more": offset + limit < total}


@router.get("/api/collections/{name}/items/{item_id}/details", responses=ERRORS,
            summary="An item for the preview pane: its metadata, folder, modification date and tags")
def details(name: str, item_id: ItemId, request: Request) -> dict:
    hit, more = request.app.state.xs.collections.get(name).details(item_id)
    return {**hit_out(name, hit), **more}


@router.get("/api/collections/{name}/items/{item_id}/waveform", responses=ERRORS,
            summary="A sound's outline for drawing: peak levels (0-1) and its duration")
def waveform(name: str, item_id: ItemId, request: Request,
             points: int = Query(160, ge=8, le=1000)) -> dict:
    engine = request.app.state.xs.collections.get(name)
    return engine.waveform(str(file_of(engine, engine.item(item_id))), points)
