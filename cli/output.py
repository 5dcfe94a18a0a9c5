"""Shared CLI plumbing: consoles, one-line errors, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console()  # results
err_console = Console(stderr=True)  # progress, notes, errors


def print_json(obj: Any) -> None:
    """Write ``obj`` as JSON to stdout (paths and numpy scalars made plain)."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=_plain) + "\n")


def _plain(o: Any):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def note(message: str) -> None:
    """A one-line remark on stderr (not part of the results)."""
    err_console.print(message, highlight=False, markup=False)


def fail(message: str, code: int = 1) -> "NoReturn":  # noqa: F821
    """Print ``error: message`` on stderr and exit with ``code``."""
    err_console.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
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
                        help="Collection name (under $XSEARCH_HOME) or directory. Default: 'default'.")


def prepare_model(engine, spec: str | None = None, quiet: bool = False) -> None:
    """Run a model's one-time preparation (a bridged pair's vocabulary) behind a progress bar, if it has any."""
    if not engine.needs_prepare(spec):
        return
    with progress_bar("preparing the text bridge (once)", disable=quiet) as bar:
        task = bar.add_task("bridge", total=None)
        engine.prepare(spec, progress=lambda done, total: bar.update(task, completed=done, total=total))
