"""The `xsearch` command: maps command names to the modules that implement them (thin, as in clip-retrieval).

Heavy libraries are imported inside the commands, so ``xsearch --help`` is instant.
"""

from __future__ import annotations

import typer

from xsearch.cli import world_cmd
from xsearch.cli.output import fail
from xsearch.errors import XsearchError

app = typer.Typer(
    name="xsearch",
    help="Search your images, sounds and texts by meaning, in any direction.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.add_typer(world_cmd.app, name="world")


def run() -> None:
    """Console-script entry point: user errors become one line and a non-zero exit."""
    try:
        app()
    except XsearchError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
