"""`--help` that reads like git's or rclip's: `--image FILE`, `-k N`, no `<list[Path]>` type labels, no
`[0<=x<=9223372036854775807]` ranges, `DIR` rather than `{DIR}` in the usage line.

Typer renders each parameter's type as ``<label>`` and its bounds as a range; we give every option a plain
metavar once, when the click command tree is built (`tidy`), and leave the rest of the rendering to click.
"""

from __future__ import annotations

#: Options that take a file to search with (FILE), not any path.
_FILE_OPTIONS = {"image", "audio", "video", "labels", "reranker"}
#: Bounds wider than this are the type's limits, not advice: not shown.
_SHOWN_BOUND = 2**31


def tidy(command):
    """Plain metavars and no machine-limit ranges on every parameter of ``command`` and its subcommands."""
    for sub in getattr(command, "commands", {}).values():
        tidy(sub)
    for param in command.params:
        if param.param_type_name == "argument":
            _tidy_argument(param)
        elif not getattr(param, "is_flag", False) and not getattr(param, "count", False):
            if param.metavar is None:
                param.metavar = metavar(param)
            if max(abs(getattr(param, "min", None) or 0), abs(getattr(param, "max", None) or 0)) > _SHOWN_BOUND:
                param._get_number_range_help_str = lambda: None
    return command


def metavar(param) -> str:
    """N for whole numbers, NUM for other numbers, DATE, FILE or PATH, else the option's own name (TO, WEIGHT)."""
    kind = _bare(param).lower()
    if kind.startswith("list[") and kind.endswith("]"):
        kind = kind[5:-1]
    if kind == "int":
        return "N"
    if kind == "float":
        return "NUM"
    if kind == "datetime":
        return "DATE"
    if kind == "path":
        return "FILE" if param.name in _FILE_OPTIONS else "PATH"
    return (param.name or "value").upper()


def _tidy_argument(param) -> None:
    name = (param.metavar or param.name or "arg").upper()
    many = param.nargs != 1
    param.metavar = name + ("..." if many else "")
    param.display_type_rich = lambda ctx: None
    usage = (name if param.required else f"[{name}]") + ("..." if many else "")
    param._usage_display_name = lambda: usage


def _bare(param) -> str:
    try:
        return str(param.bare_type())
    except Exception:  # noqa: BLE001 - an unknown parameter class: fall back to its name
        return ""
