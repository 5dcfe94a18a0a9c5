"""Where xsearch keeps its data: XSEARCH_HOME, else the XDG data dir."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_COLLECTION = "default"


def data_home() -> Path:
    """Root of xsearch's data: ``$XSEARCH_HOME`` or ``$XDG_DATA_HOME/xsearch`` (~/.local/share/xsearch)."""
    env = os.environ.get("XSEARCH_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "xsearch"


def collection_dir(name_or_path: str | os.PathLike | None = None) -> Path:
    """Resolve a collection argument: a path (contains a separator or exists) or a name under data_home()."""
    if name_or_path is None or str(name_or_path) == "":
        return data_home() / "collections" / DEFAULT_COLLECTION
    text = str(name_or_path)
    p = Path(text).expanduser()
    if os.sep in text or text.startswith(".") or p.exists():
        return p.resolve()
    return data_home() / "collections" / text


def not_a_file(path: str | os.PathLike, what: str) -> str:
    """Why ``path`` cannot be read as the ``what`` file a command asked for ("" when it is a regular file), worded
    for an error: "manifest FOLDER is a folder, not a file" rather than "not found"."""
    p = Path(path)
    if p.is_file():
        return ""
    if p.is_dir():
        return f"{what} {p} is a folder, not a file; give the file inside it"
    if p.exists():
        return f"{what} {p} is not a regular file"
    return f"{what} not found: {p}"
