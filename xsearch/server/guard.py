"""The ASGI layer in front of every route: Host check, bearer token, request-body limit, security headers."""

from __future__ import annotations

import json
import secrets
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from xsearch.server.errors import error_body

TOKEN_COOKIE = "xsearch_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"), (b"cross-origin-resource-policy", b"same-origin")]


class Guard:
    """- ``hosts``: accepted Host header names (None: any). A server on localhost accepts only local names, so
      a web page elsewhere cannot reach it through DNS rebinding.
    - ``token``: when set, every ``/api`` request needs ``Authorization: Bearer TOKEN`` or the
      ``xsearch_token`` cookie (the page sets it from ``?token=`` in its URL).
    - cross-site writes: a request that changes state (any method but GET, HEAD, OPTIONS) is refused 403
      ``http.cross_origin`` when the browser says it comes from another site (``Sec-Fetch-Site``) or another
      origin (``Origin`` not this server's Host). A browser sends a form or ``no-cors`` POST to any address
      without asking first; it only hides the answer. Clients that are not browsers send neither header.
    - ``body_limit``: a larger request body is answered 413 ``upload.too_large``, before it is read when the
      client says its length, else as soon as it passes the limit.
    """

    def __init__(self, app, *, token: str | None = None, hosts: list[str] | None = None, body_limit: int,
                 limit_message: str = "the upload is too large"):
        self.app = app
        self.token = token.encode() if token else None
        self.hosts = [h.lower() for h in hosts] if hosts else None
        self.body_limit = body_limit
        self.limit_message = limit_message

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)

        async def send_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)

        send_secured = JsonErrors(send_headers)

        refused = self._refusal(scope, headers)
        if refused is not None:
            return await _send_json(send_secured, *refused)
        over = {"over": False, "answered": False}
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.body_limit:
                    over["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if over["over"]:  # whatever the route answered to the cut-off body, the client gets the 413
                if not over["answered"]:
                    over["answered"] = True
                    await _send_json(send_secured, *self._too_large())
                return
            await send_secured(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over["over"]:
                raise
        if over["over"] and not over["answered"]:
            await _send_json(send_secured, *self._too_large())

    def _too_large(self) -> tuple[int, dict, list]:
        return 413, error_body("upload.too_large", self.limit_message, {"limit": self.body_limit}), []

    def _refusal(self, scope, headers: Headers) -> tuple[int, dict, list] | None:
        if self.hosts is not None:
            host = headers.get("host", "").lower()
            name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0] if ":" in host else host
            if name not in self.hosts:
                return 400, error_body("http.bad_host", "this server only answers requests addressed to "
                                       + ", ".join(self.hosts)), []
        if scope.get("method", "GET") not in SAFE_METHODS and _cross_site(headers):
            return 403, error_body("http.cross_origin", "this server does not accept changes from pages of another "
                                   "site; open the page `xsearch serve` printed"), []
        if self.token is not None and scope["path"].startswith("/api"):
            given = _bearer(headers) or cookie_parser(headers.get("cookie", "")).get(TOKEN_COOKIE, "")
            if not secrets.compare_digest(given.encode(), self.token):
                code, message = ("auth.bad_token", "the access token is wrong") if given else \
                    ("auth.required", "this server needs an access token: open the link `xsearch serve` printed, "
                                      "or send Authorization: Bearer TOKEN")
                return 401, error_body(code, message), [(b"www-authenticate", b"Bearer")]
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, error_body("usage.bad_request", "Content-Length is not a number"), []
            if int(length) > self.body_limit:
                return self._too_large()
        return None


class JsonErrors:
    """An ASGI ``send`` that turns any error answer not already JSON (starlette's own: a Range it cannot satisfy is
    416 with an empty body, a malformed Range 400 plain text) into the one error shape, keeping its status and
    headers such as ``Content-Range``."""

    def __init__(self, send):
        self.send = send
        self.held: dict | None = None
        self.body = b""

    async def __call__(self, message):
        kind = message["type"]
        if kind == "http.response.start":
            headers = Headers(raw=message.get("headers", []))
            if message["status"] >= 400 and not headers.get("content-type", "").startswith("application/json"):
                self.held = message
                return
        elif kind == "http.response.body" and self.held is not None:
            self.body += message.get("body", b"")[:4096]
            if not message.get("more_body", False):
                await self._send_json()
            return
        await self.send(message)

    async def _send_json(self) -> None:
        status, headers = self.held["status"], Headers(raw=self.held.get("headers", []))
        text = " ".join(self.body.decode("utf-8", "replace").split())[:200].rstrip(".")
        if status == 416:
            size = headers.get("content-range", "").rpartition("/")[2]
            text = f"the range asked for lies outside the file ({size} bytes)" if size.isdigit() else \
                "the range asked for lies outside the file"
        try:
            phrase = HTTPStatus(status).phrase.lower()
        except ValueError:
            phrase = "request failed"
        body = error_body(f"http.{status}", text or phrase)
        data = json.dumps(body).encode()
        keep = [(k, v) for k, v in self.held.get("headers", [])
                if k.lower() not in (b"content-type", b"content-length")]
        await self.send({**self.held, "headers": keep + [(b"content-type", b"application/json"),
                                                          (b"content-length", str(len(data)).encode())]})
        await self.send({"type": "http.response.body", "body": data})
        self.held = None


def _cross_site(headers: Headers) -> bool:
    """Whether a browser says this request comes from a page of another origin."""
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    scheme, sep, rest = origin.partition("://")
    if not sep:  # "null": a sandboxed page, a file:// page or a redirect; never this server's own page
        return True
    return rest.rstrip("/").lower() != headers.get("host", "").lower()


def _bearer(headers: Headers) -> str:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


async def _send_json(send, status: int, body: dict, extra: list) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": data})
