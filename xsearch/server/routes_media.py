"""Items by id: metadata, the file itself (with HTTP Range), an image thumbnail, a text passage; uploads by id.

A file is only ever found through the catalog (``Engine.item``): no route takes a path from the client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from xsearch.core.types import Hit
from xsearch.server.files import content_type, file_of, passage
from xsearch.server.schemas import ERRORS, HitOut, PassageOut

router = APIRouter(tags=["items"])
CACHE = {"Cache-Control": "private, max-age=3600"}
MAX_ID = 2**63 - 1  # what the catalog's INTEGER holds
ItemId = Annotated[int, PathParam(ge=0, le=MAX_ID, description="An item id, as search results give it.")]


def item_url(collection: str, item_id: int, what: str = "") -> str:
    return f"/api/collections/{quote(collection, safe='')}/items/{item_id}" + (f"/{what}" if what else "")


def hit_out(collection: str, hit: Hit) -> dict:
    """A Hit as the API shows it: every field of ``Hit.to_dict()``, the file's name and the URLs to show it."""
    out = hit.to_dict()
    out["name"] = Path(hit.path).name
    out["media_url"] = item_url(collection, hit.item_id, "media")
    out["thumb_url"] = item_url(collection, hit.item_id, "thumb") if hit.modality == "image" else None
    out["passage_url"] = item_url(collection, hit.item_id, "passage") if hit.modality == "text" else None
    return out


@router.get("/api/collections/{name}/items/{item_id}", response_model=HitOut, responses=ERRORS,
            summary="An item's metadata")
def item(name: str, item_id: ItemId, request: Request) -> dict:
    engine = request.app.state.xs.collections.get(name)
    hit = engine.item(item_id)
    hit.rank = 0
    return hit_out(name, hit)


@router.get("/api/collections/{name}/items/{item_id}/media", responses=ERRORS,
            summary="The item's file (HTTP Range supported, so audio players can seek)")
def media(name: str, item_id: ItemId, request: Request) -> FileResponse:
    engine = request.app.state.xs.collections.get(name)
    hit = engine.item(item_id)
    path = file_of(engine, hit)
    return FileResponse(path, media_type=content_type(path, hit.modality), headers=CACHE,
                        content_disposition_type="inline", filename=path.name)


@router.get("/api/collections/{name}/items/{item_id}/thumb", responses=ERRORS,
            summary="A JPEG thumbnail of an image item (made on first request, then cached on disk)")
def thumb(name: str, item_id: ItemId, request: Request,
          size: int = Query(256, ge=16, le=1024, description="Longest side in pixels (rounded up to 128, 256 "
                                                             "or 512).")) -> FileResponse:
    state = request.app.state.xs
    engine = state.collections.get(name)
    hit = engine.item(item_id)
    return FileResponse(state.thumbs.get(engine, hit, size), media_type="image/jpeg", headers=CACHE)


@router.get("/api/collections/{name}/items/{item_id}/passage", response_model=PassageOut, responses=ERRORS,
            summary="A text item's whole passage")
def text_passage(name: str, item_id: ItemId, request: Request) -> dict:
    engine = request.app.state.xs.collections.get(name)
    hit = engine.item(item_id)
    return {"item_id": hit.item_id, "path": hit.path, "index": int(hit.offset), "passage": passage(engine, hit)}


@router.get("/api/uploads/{upload_id}", responses=ERRORS, tags=["search"], summary="A kept upload, as sent")
def upload_file(upload_id: str, request: Request) -> FileResponse:
    upload = request.app.state.xs.uploads.get(upload_id)
    return FileResponse(upload.path, media_type=upload.content_type, headers=CACHE)
