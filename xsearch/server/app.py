"""The FastAPI application: routes, error handlers, the page, and the server's long-lived state.

    from xsearch.server import create_app
    app = create_app({"photos": "~/photos-collection"}, token=None)   # or a list of collection names / paths
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from xsearch.core.paths import data_home
from xsearch.server import errors, routes_browse, routes_info, routes_media, routes_search
from xsearch.server.files import Thumbs
from xsearch.server.guard import Guard
from xsearch.server.sessions import Collections, Limits
from xsearch.server.uploads import Uploads, too_large

STATIC = Path(__file__).parent / "static"
#: The page loads nothing from elsewhere and runs no inline code.
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; script-src 'self'; "
            "style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
LOCAL_HOSTS = ["localhost", "127.0.0.1", "::1"]
DOCS_ASSETS = "/static/api-docs"

DESCRIPTION = """Search images, sounds, texts and videos by meaning. Every error answers
`{"error": {"code", "message", "params"}}` (and a `"hint"` when the error comes with advice) with a status from its
code (400 bad arguments, 401 token, 404 missing collection / item / upload, 413 upload too large or too long, 415
not an image, a sound or a video clip, 422 unreadable query file or invalid parameter, 503 busy)."""


@dataclass
class ServerState:
    collections: Collections
    uploads: Uploads
    thumbs: Thumbs
    limits: Limits


def create_app(collections: Mapping[str, str] | Iterable[str | Path | None] | None = None, *,
               token: str | None = None, limits: Limits | None = None, thumbs_dir: str | Path | None = None,
               hosts: list[str] | None = None, warm: bool = True) -> FastAPI:
    """The server for ``collections`` (``{url name: collection}``, or collection names / paths, named by their
    folder; default: the default collection).

    ``token``: required on every ``/api`` request when set. ``hosts``: accepted Host names (None: any; the
    ``serve`` command passes the local names when it listens on localhost). ``warm``: load every collection's
    model and index at start-up instead of on the first query.
    """
    from xsearch import __version__
    from xsearch.core.errors import UsageError

    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise UsageError("the access token is empty: that would turn authentication off; pass None to serve "
                         "without one", code="serve.empty_token")
    limits = limits or Limits()
    state = ServerState(Collections([None] if collections is None else collections, limits), Uploads(limits),
                        Thumbs(Path(thumbs_dir) if thumbs_dir else data_home() / "cache" / "thumbs"), limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm:
            await run_in_threadpool(state.collections.load)
        try:
            yield
        finally:
            state.collections.close()
            state.uploads.close()

    # /docs: Swagger UI from files installed with the package (FastAPI's own loads it from a CDN). No /redoc: its
    # bundle still fetches a logo from the network.
    app = FastAPIOffline(title="xsearch", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                         static_url=DOCS_ASSETS, redoc_url=None)
    app.state.xs = state
    errors.install(app)
    for router in (routes_info.router, routes_search.router, routes_media.router, routes_browse.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"})

    app.add_middleware(Guard, token=token, hosts=hosts, body_limit=limits.upload_bytes + 64 * 1024,
                       limit_message=too_large(limits.upload_bytes).message)
    return app
