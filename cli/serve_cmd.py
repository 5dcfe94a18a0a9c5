"""`xsearch serve`: the HTTP API and the search page (FastAPI + uvicorn, the `serve` extra)."""

from __future__ import annotations

import ipaddress
from typing import List, Optional

import typer

from xsearch.cli.output import console, note, store_token_option

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
MAX_UPLOAD_MB = 4096.0  # a request body the server accepts at most (a body limit of 1e300 MB is no limit)
MAX_UPLOAD_SECONDS = 24 * 3600.0


def serve(
    collection: List[str] = typer.Option(
        [], "--collection", "-c",
        help="Collection name (under $XSEARCH_HOME) or directory; repeat to serve several. "
        "Default: $XSEARCH_COLLECTION, else 'default'.",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on. Anything but localhost prints a warning: "
                             "use --token there."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    token: Optional[str] = typer.Option(None, envvar="XSEARCH_TOKEN",
                                        help="Require this bearer token on every API request."),
    max_upload_mb: float = typer.Option(25.0, help=f"Largest upload (and request body), in MB (0.01 to "
                                                   f"{MAX_UPLOAD_MB:g})."),
    max_upload_seconds: float = typer.Option(120.0, help=f"Longest audio upload, in seconds (0.1 to "
                                                         f"{MAX_UPLOAD_SECONDS:g})."),
    concurrency: int = typer.Option(8, min=1, help="Searches run at once; more wait, then get 'server busy'."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    store_token: Optional[str] = store_token_option(),
) -> None:
    """Serve the search page and a JSON API over one long-lived session per collection.

    The model and indexes load once at start-up; commits from a concurrent `xsearch index` are picked up without
    a restart. Examples: xsearch serve -c demo;  xsearch serve -c photos -c sounds --port 8080.
    """
    import logging

    from xsearch.core.errors import XsearchError

    try:
        import uvicorn

        from xsearch.server import Limits, create_app
    except ImportError as e:
        raise XsearchError(f"xsearch serve needs the serve extra ({e.name} is missing): pip install "
                           "'xsearch[serve]'", code="serve.missing_extra", module=str(e.name)) from None
    _check_limits(token, max_upload_mb, max_upload_seconds)
    local = _is_local(host)
    if not local:
        note(f"warning: listening on {host}: anyone who can reach this machine on port {port} can "
             + ("search with the token" if token else "search the collections and download their files; pass "
                "--token SECRET") + " (and the traffic is not encrypted: put a TLS proxy in front).")
    limits = Limits(upload_bytes=int(max_upload_mb * 1024 * 1024), upload_seconds=max_upload_seconds,
                    concurrency=concurrency)
    sock = _listen(host, port)  # before the collections load: a busy port fails at once, with the way out
    try:
        app = create_app(collection or None, token=token, limits=limits, warm=False,
                         hosts=list(LOCAL_NAMES) if local else None)
        logging.getLogger("xsearch.server").addHandler(logging.StreamHandler())
        app.state.xs.collections.load(on_loaded=_report)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}/"
        console.print(f"xsearch is serving {', '.join(app.state.xs.collections.names())}: open {url}"
                      + (f"?token={token}" if token else "") + f" in a browser (the API is described at {url}docs); "
                      "Ctrl-C stops it.", highlight=False, markup=False, soft_wrap=True)
        config = uvicorn.Config(app, log_level="warning", access_log=access_log, timeout_graceful_shutdown=5)
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # stopping a server is what Ctrl-C is for: not an error
        pass
    finally:
        sock.close()
    note("stopped.")


def _listen(host: str, port: int):
    """A socket bound to host:port (not yet listening); a taken port is one clear error that suggests another."""
    import socket

    from xsearch.core.errors import XsearchError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit this: without it, a keep-alive client waits ~40 ms per response (Nagle's
    # algorithm against delayed ACKs), as asyncio does not set it on sockets handed to it
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        import errno

        hint = (f" (another program, perhaps another `xsearch serve`, is using it): try --port {port + 1}"
                if e.errno == errno.EADDRINUSE and port < 65535 else "")
        raise XsearchError(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}", code="serve.cannot_listen",
                           host=host, port=port) from None
    sock.listen(2048)  # claimed now: a second `xsearch serve` on this port fails at once instead of after loading
    return sock


def _check_limits(token: str | None, max_upload_mb: float, max_upload_seconds: float) -> None:
    """Usage errors for settings that would silently mean "no limit" or "no authentication"."""
    import os

    from xsearch.core.errors import UsageError

    if token is None and "XSEARCH_TOKEN" in os.environ:  # click reads a set but empty variable as not set
        token = os.environ["XSEARCH_TOKEN"]
    if token is not None and not token.strip():
        raise UsageError("--token (or XSEARCH_TOKEN) is empty, which would leave the server open to anyone; give a "
                         "secret, or unset it to serve without a token", code="serve.empty_token")
    for flag, value, low, high in (("--max-upload-mb", max_upload_mb, 0.01, MAX_UPLOAD_MB),
                                   ("--max-upload-seconds", max_upload_seconds, 0.1, MAX_UPLOAD_SECONDS)):
        if not low <= value <= high:  # NaN fails this too
            raise UsageError(f"{flag} must be a number from {low:g} to {high:g}, not {value:g}",
                             code="usage.bad_value", name=flag, value=str(value))


def _is_local(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _report(name: str, stats: dict | None, error) -> None:
    if error is not None and error.code == "collection.not_a_folder":
        raise error  # `xsearch index` cannot create it there either: serving it would only say "not yet"
    if error is not None:
        note(f"warning: {name}: {error.message}")
    elif stats is None:
        note(f"note: {name}: no collection there yet; the page says so until `xsearch index` creates it.")
    else:
        files = ", ".join(f"{s['files']} {m}" for m, s in stats["modalities"].items() if s.get("files")) or "empty"
        note(f"{name}: {files} files ({stats.get('model_spec')})")
