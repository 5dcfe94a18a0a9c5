"""Shared CLI plumbing: consoles, one-line errors, JSON output.

Human-readable output shows user data (file names, file contents, query text) as plain text: never as Rich
markup or emoji codes, and with terminal control characters made visible (:func:`visible`), so a file named
``\x1b]0;pwned\x07.png`` cannot retitle or clear the user's terminal. ``--json`` output stays exact.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

#: C0 controls, DEL, C1 controls, Unicode line/paragraph separators, bidirectional overrides and isolates (which
#: can make a terminal show text in another order than it is), and lone surrogates (undecodable file-name bytes).
_OTHER_UNSAFE = r"\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(rf"[\x00-\x1f{_OTHER_UNSAFE}]")
_UNSAFE_KEEP_LINES = re.compile(rf"[\x00-\x08\x0b-\x1f{_OTHER_UNSAFE}]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    o = ord(c)
    if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape): show the byte
        return f"\\x{o - 0xDC00:02x}"
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def visible(text: Any) -> str:
    """``text`` with every control character shown as a visible escape (ESC → ``\\x1b``, newline → ``\\n``):
    what every human-readable line built from user data goes through. Idempotent."""
    return _UNSAFE.sub(_escape, str(text))


class _PlainConsole(Console):
    """A console whose plain strings (table cells, titles) are never markup or emoji, and cannot carry terminal
    control sequences (newlines and tabs pass: they are layout, not data; data goes through :func:`visible`)."""

    def render_str(self, text: str, **kwargs) -> Text:
        return super().render_str(_UNSAFE_KEEP_LINES.sub(_escape, text), **kwargs)


console = _PlainConsole(markup=False, emoji=False, highlight=False)  # results
err_console = _PlainConsole(stderr=True, markup=False, emoji=False, highlight=False)  # progress, notes, errors


def plain(text: Any) -> Text:
    """User data as a Rich renderable (a table cell): shown as typed, control characters escaped, no markup."""
    return Text(visible(text))


def say(message: Any) -> None:
    """One human-readable line of results on stdout; user data in it is shown through :func:`visible`."""
    console.print(plain(message), soft_wrap=True)


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON to stdout: paths and numpy values made plain, NaN and infinities as null (strict JSON;
    never ``NaN``), strings exact (file names that are not UTF-8 as ``\\udcXX`` escapes)."""
    text = json.dumps(_finite(obj), indent=2, ensure_ascii=False, allow_nan=False, default=_plain)
    if _SURROGATE.search(text):
        text = json.dumps(_finite(obj), indent=2, ensure_ascii=True, allow_nan=False, default=_plain)
    sys.stdout.write(text + "\n")


def _finite(o: Any) -> Any:
    """``o`` with non-finite floats (also numpy ones, in arrays or nested containers) replaced by None."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if type(o).__module__ == "numpy" and hasattr(o, "tolist"):  # numpy scalars and arrays
        return _finite(o.tolist())
    return o


def _plain(o: Any):
    return str(o)


def note(message: str) -> None:
    """A one-line remark on stderr (not part of the results); user data in it is shown through :func:`visible`."""
    err_console.print(plain(message), soft_wrap=True)


def warn_model_fit(fit: dict | None) -> None:
    """The builtin model on media that is not its world (xsearch.engine.fit): one warning paragraph on stderr."""
    if fit and fit.get("message"):
        note(f"warning: {fit['message']}")


def fail(message: str, code: int = 1) -> "NoReturn":  # noqa: F821
    """Print ``error: message`` on stderr (one line) and exit with ``code``."""
    err_console.print(plain(f"error: {message}"), soft_wrap=True)
    raise SystemExit(code)


def progress_bar(description: str, *, disable: bool = False):
    """A Rich progress bar on stderr (files done / total, time left); shown only when stderr is a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), console=err_console, transient=True, disable=disable or not err_console.is_terminal,
    )


def collection_option():
    import typer

    return typer.Option(None, "--collection", "-c", envvar="XSEARCH_COLLECTION",
                        help="Collection name (under $XSEARCH_HOME) or directory; or milvus-lite:PATH.db (embedded "
                        "Milvus), milvus://HOST:PORT/NAME (a Milvus server). Default: 'default'.")


#: Where a store reads the credential the CLI was given (one variable for every store; index/milvus reads it).
STORE_TOKEN_ENV = "XSEARCH_STORE_TOKEN"

#: Old option names still accepted, hidden from --help (click's ``token_normalize_func``, set on the app).
OPTION_ALIASES = {"milvus-token": "store-token"}


def option_alias(name: str) -> str:
    """An option's name (without dashes) as the commands declare it: an old alias becomes its new name."""
    return OPTION_ALIASES.get(name, name)


def _pass_store_token(value):
    if value:
        import os

        os.environ[STORE_TOKEN_ENV] = value  # the one place the CLI hands a store its credential
    return value


def store_token_option():
    """``--store-token``: the credential of a store server (default $XSEARCH_STORE_TOKEN; the old
    ``--milvus-token`` / $XSEARCH_MILVUS_TOKEN still work). The command function takes it as a parameter it never
    reads (typer builds options from parameters); the value goes to the store."""
    import typer

    return typer.Option(None, "--store-token", envvar=STORE_TOKEN_ENV, expose_value=False,
                        callback=_pass_store_token, show_default=False,
                        help="Credential for a store server: for a milvus:// collection, user:password or an API key.")


def prepare_model(engine, spec: str | None = None, quiet: bool = False) -> None:
    """Run a model's one-time preparation (a bridged pair's vocabulary) behind a progress bar, if it has any."""
    if not engine.needs_prepare(spec):
        return
    with progress_bar("preparing the text bridge (once)", disable=quiet) as bar:
        task = bar.add_task("bridge", total=None)
        engine.prepare(spec, progress=lambda done, total: bar.update(task, completed=done, total=total))
