"""The `xsearch` command: maps command names to the modules that implement them (thin, as in clip-retrieval).

Heavy libraries are imported inside the commands, so ``xsearch --help`` is instant.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

import typer

from xsearch.cli import copy_cmd, demo_cmd, eval_cmd, index_cmd, info_cmd, search_cmd, serve_cmd, train_cmd, world_cmd
from xsearch.cli.errors import OPTION_FLAGS, cli_message
from xsearch.cli.output import fail, option_alias, print_json
from xsearch.core.errors import UsageError, XsearchError

app = typer.Typer(
    name="xsearch",
    help="Search your images, sounds and texts by meaning, in any direction.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help, like git's and rclip's: no boxes, no <type> labels
    add_completion=False,
    context_settings={"token_normalize_func": option_alias},  # old option names (--milvus-token) still work
)

RUNTIME_HELP = ("Where encoders run: onnx (ONNX Runtime, CPU), onnx-int8 (int8 weights, faster) or torch; "
                "default: onnx on a CPU-only machine with onnxruntime installed, else torch (see `xsearch info`). "
                "Also XSEARCH_RUNTIME.")


@app.callback()
def _options(runtime: Optional[str] = typer.Option(None, "--runtime", metavar="onnx|onnx-int8|torch",
                                                    help=RUNTIME_HELP)) -> None:
    """Search your images, sounds and texts by meaning, in any direction."""
    from xsearch.encoders.runtimes import set_runtime

    set_runtime(runtime)  # None: back to XSEARCH_RUNTIME / the machine default (in-process callers run many commands)


#: One line each in `xsearch --help` (the docstrings say more under `xsearch COMMAND --help`).
SHORT = {
    "index": "Index a folder (only new and changed files are embedded)",
    "search": "Search by text, image, audio or video, towards any modality",
    "similar": "Find files like a given file",
    "duplicates": "List near-duplicate files",
    "remove": "Drop files from the collection (the files stay on disk)",
    "info": "Show the collection, its model, versions and devices",
    "copy": "Copy a collection to another store without re-embedding",
    "models": "List the model specs you can index with",
    "train": "Train the builtin model (or a CLAP-to-CLIP projection head)",
    "eval": "Recall@K, mAP and median rank per direction, against chance",
    "demo": "Index a generated world and search it three ways",
    "serve": "Serve the search page and the JSON API",
    "tag": "Tag every file with the labels it matches best",
}
for _name, _fn in (("index", index_cmd.index), ("search", search_cmd.search), ("similar", search_cmd.similar),
                   ("duplicates", search_cmd.duplicates), ("remove", index_cmd.remove), ("info", info_cmd.info),
                   ("copy", copy_cmd.copy), ("models", info_cmd.models), ("train", train_cmd.train),
                   ("eval", eval_cmd.eval_), ("demo", demo_cmd.demo), ("serve", serve_cmd.serve),
                   ("tag", importlib.import_module("xsearch.cli.tag_cmd").tag)):
    app.command(_name, short_help=SHORT[_name])(_fn)
app.add_typer(world_cmd.app, name="world", short_help="Generate the synthetic world of shapes, sounds and captions")


def _click_classes(name: str) -> tuple[type, ...]:
    """Click's exception class ``name``: typer's vendored copy (typer >= 0.2x) and/or the click package."""
    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


_CLICK_ERRORS = _click_classes("ClickException")
_USAGE_ERRORS = _click_classes("UsageError")
_ABORTS = _click_classes("Abort")


def command():
    """The click command tree of ``app``, its help made plain (xsearch.cli.helptext)."""
    from xsearch.cli.helptext import tidy

    return tidy(typer.main.get_command(app))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv``; user errors become one line on stderr (with ``--json``: an
    ``{"error": {"code", "message", ...}}`` object on stdout). Returns the exit code.

    Exit codes: 0 success, 1 error, 2 usage error (bad option or argument: one ``error: ...`` line, not click's
    usage box), 3 collection locked, 4 ``index --strict`` skipped files, 130 interrupted.
    """
    args = _lift_runtime(list(sys.argv[1:] if argv is None else argv))
    as_json = "--json" in args
    try:
        # not standalone: click hands usage errors back instead of printing its multi-line box
        rv = command().main(args=args, prog_name="xsearch", standalone_mode=False)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except XsearchError as e:
        return _fail(e, as_json=as_json)
    except _CLICK_ERRORS as e:
        return _click_error(e, as_json=as_json)
    except (KeyboardInterrupt, *_ABORTS):
        return _fail(_interrupted(args), as_json=as_json, code=130)
    except OSError as e:  # the environment refused (disk full, permission, not a folder): one line, no traceback
        where = f": {e.filename}" if e.filename else ""
        return _fail(XsearchError(f"{e.strerror or e}{where}", code="os", errno=e.errno, path=e.filename),
                     as_json=as_json)
    if isinstance(rv, int) and not isinstance(rv, bool):  # typer.Exit(code) and click's ctx.exit(code)
        if rv == 130:  # click turns Ctrl-C inside a command into Exit(130)
            return _fail(_interrupted(args), as_json=as_json, code=130)
        return rv
    return 0


def _lift_runtime(args: list[str]) -> list[str]:
    """``--runtime X`` may follow the command (``xsearch search q --runtime onnx``): moved before it, where the
    app-wide option is parsed. Nothing after a ``--`` is touched."""
    end = args.index("--") if "--" in args else len(args)
    for i, arg in enumerate(args[:end]):
        if arg.startswith("--runtime="):
            return [arg] + args[:i] + args[i + 1:]
        if arg == "--runtime" and i + 1 < end:
            return args[i:i + 2] + args[:i] + args[i + 2:]
    return args


#: What Ctrl-C leaves behind, per command (the default: nothing was changed half-way).
INTERRUPTED = {
    "index": "interrupted: the files embedded up to the last commit (every 512 items or 30 s) are kept; run the "
             "same `xsearch index` again to carry on, only what is missing is embedded",
}


def _interrupted(args: list[str]) -> XsearchError:
    command = next((a for a in args if not a.startswith("-")), "")
    return XsearchError(INTERRUPTED.get(command, "interrupted"), code="interrupted", command=command)


def _click_error(e: Exception, *, as_json: bool) -> int:
    """Click's usage errors (unknown option, bad or missing value) as one ``error: ...`` line, exit 2."""
    if type(e).__name__ == "NoArgsIsHelpError":  # `xsearch world`: the help was printed already (typer) or is here
        message = e.format_message()
        if message:
            typer.echo(message)
        return e.exit_code
    message = " ".join(e.format_message().split("\n")).strip()
    ctx = getattr(e, "ctx", None)
    usage = isinstance(e, _USAGE_ERRORS)
    if usage and ctx is not None:
        see = f"see `{ctx.command_path} --help`"
        message = f"{message} ({see})" if message.endswith("?") else f"{message.rstrip('.')}; {see}"
    code = "usage.cli" if usage else "cli"
    error = UsageError(message, code=code) if e.exit_code == 2 else XsearchError(message, code=code)
    return _fail(error, as_json=as_json, code=e.exit_code)


def _fail(error: XsearchError, *, as_json: bool = False, code: int | None = None) -> int:
    code = error.exit_code if code is None else code
    if "name" in error.params and "flag" not in error.params:  # the option the user typed, for FLAG_MESSAGES
        name = str(error.params["name"])
        error.params["flag"] = OPTION_FLAGS.get(name, "--" + name.replace("_", "-"))
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
