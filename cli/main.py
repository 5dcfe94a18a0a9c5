"""The `xsearch` command: maps command names to the modules that implement them (thin, as in clip-retrieval).

Heavy libraries are imported inside the commands, so ``xsearch --help`` is instant.
"""

from __future__ import annotations

import typer

from xsearch.cli import index_cmd, info_cmd, search_cmd, train_cmd, world_cmd
from xsearch.cli.output import fail
from xsearch.errors import XsearchError

app = typer.Typer(
    name="xsearch",
    help="Search your images, sounds and texts by meaning, in any direction.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

app.command("index")(index_cmd.index)
app.command("search")(search_cmd.search)
app.command("similar")(search_cmd.similar)
app.command("duplicates")(search_cmd.duplicates)
app.command("remove")(index_cmd.remove)
app.command("info")(info_cmd.info)
app.command("models")(info_cmd.models)
app.command("train")(train_cmd.train)
app.add_typer(world_cmd.app, name="world")


def run() -> None:
    """Console-script entry point: user errors become one line and a non-zero exit."""
    try:
        app()
    except XsearchError as e:
        fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)


if __name__ == "__main__":
    run()
