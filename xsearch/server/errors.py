"""Errors as HTTP: an XsearchError's code picks the status; the body is always ``{"error": {code, message, params}}``,
plus ``hint`` when the error carries one (what to do, from the layer that raised it: "check that Milvus runs there").

Nothing else reaches a client: request-validation errors become ``usage.bad_request`` (422), unknown routes
``http.404``, and any unexpected exception a 500 ``internal`` whose traceback goes to the server log only.
"""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from xsearch.core.errors import CollectionError, MediaError, ModelError, UsageError, XsearchError

log = logging.getLogger("xsearch.server")

#: Exact codes first, then the first matching code prefix, then the error's class.
STATUS_BY_CODE = {
    "collection.missing": 404,
    "collection.unknown": 404,
    "collection.empty": 404,
    "collection.no_items": 404,
    "item.missing": 404,
    "media.gone": 404,
    "media.none": 404,
    "media.replaced": 404,
    "upload.missing": 404,
    "upload.too_large": 413,
    "upload.too_long": 413,
    "upload.unsupported": 415,
    "media.unreadable": 422,
    "query.bad_file": 422,
    "query.wrong_modality": 422,
    "collection.locked": 503,
    "server.busy": 503,
    "auth.required": 401,
    "auth.bad_token": 401,
    "http.bad_host": 400,
    "http.cross_origin": 403,
}
STATUS_BY_CLASS = ((UsageError, 400), (MediaError, 422), (ModelError, 500), (CollectionError, 500),
                   (XsearchError, 500))
ECHO_CHARS = 200  # the most of a client's input an error repeats
RETRY_AFTER = {"server.busy": "2", "collection.locked": "5"}


def status_of(error: XsearchError) -> int:
    """The HTTP status for ``error``."""
    if error.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[error.code]
    return next(status for cls, status in STATUS_BY_CLASS if isinstance(error, cls))


def error_body(code: str, message: str, params: dict | None = None, hint: str = "") -> dict:
    error = {"code": code, "message": message, "params": _json_safe(params or {})}
    if hint:
        error["hint"] = hint
    return {"error": error}


def _json_safe(params: dict) -> dict:
    """Params as strict JSON: NaN and infinities (JSON has none) and anything not a plain value as text."""
    return {k: v if isinstance(v, (int, str, bool, type(None))) or (isinstance(v, float) and math.isfinite(v))
            else str(v) for k, v in params.items()}


def error_response(error: XsearchError) -> JSONResponse:
    status = status_of(error)
    headers = {"Retry-After": RETRY_AFTER[error.code]} if error.code in RETRY_AFTER else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(error_body(error.code, error.message, error.params, error.hint), status_code=status,
                        headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, dict]:
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
    message = f"{where}: {first.get('msg', 'invalid value')}" if where else first.get("msg", "invalid request")
    return message[:ECHO_CHARS], {"name": where[:ECHO_CHARS], "value": _echo(first.get("input"))}


def _echo(value):
    """A client's value as an error may show it back: plain values as they are, anything long cut to ECHO_CHARS
    (a 1 MB form field must not come back as a 2 MB error)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else \
        value if isinstance(value, str) else repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + f"… ({len(text)} characters)"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the one JSON error shape."""

    @app.exception_handler(XsearchError)
    async def _xsearch(request: Request, exc: XsearchError) -> JSONResponse:
        if status_of(exc) >= 500:
            log.warning("%s %s: %s (%s)", request.method, request.url.path, exc.message, exc.code)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, params = _validation_message(exc)
        return JSONResponse(error_body("usage.bad_request", message, params), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return JSONResponse(error_body(f"http.{exc.status_code}", message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal", "internal server error; the server log has the details"),
                            status_code=500)
