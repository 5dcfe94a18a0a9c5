"""The `xsearch` command: maps command names to the modules that implement them (thin, as in clip-retrieval).

Heavy libraries are imported inside the commands, so ``xsearch --help`` is instant.
"""

from __future__ import annotations

import sys

import typer

from xsearch.cli import demo_cmd, eval_cmd, index_cmd, info_cmd, search_cmd, train_cmd, world_cmd
from xsearch.cli.errors import cli_message
from xsearch.cli.output import fail, print_json
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
app.command("eval")(eval_cmd.eval_)
app.command("demo")(demo_cmd.demo)
app.add_typer(world_cmd.app, name="world")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv``; user errors become one line on stderr (with ``--json``: an
    ``{"error": {"code", "message", ...}}`` object on stdout). Returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=args, prog_name="xsearch")  # click's standalone mode reports usage errors and exits
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except XsearchError as e:
        return _fail(e, as_json="--json" in args)
    except KeyboardInterrupt:
        return _fail(XsearchError("interrupted", code="interrupted"), code=130)
    return 0


def _fail(error: XsearchError, *, as_json: bool = False, code: int | None = None) -> int:
    code = error.exit_code if code is None else code
    message = cli_message(error)
    if as_json:
        print_json({"error": {**error.to_dict(), "message": message, "exit_code": code}})
    try:
        fail(message, code)
    except SystemExit:
        pass
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
