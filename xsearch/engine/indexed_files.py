"""Reading an indexed file again (to serve it, thumbnail it, show its passage, embed it for ``similar``): the path
the catalog holds must still lead to the file that was indexed, not to whatever a link put there since.

A path with no symlink on its way (its real path is itself) is read as it is: editing the file in place is the
owner's business. A path that goes through a link (a link swapped in after indexing, or a folder replaced by a
link) is read only while the file it reaches still has the size and modification time the catalog recorded;
``/etc/shadow`` linked over an indexed photo does not. Anything that is not a regular file is never read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from xsearch.core.errors import UsageError


def checked_file(path: str | os.PathLike, record, *, item_id: int | None = None) -> Path:
    """``path`` when it is still the indexed regular file (``record``: the store's FileRecord of it, or None);
    else 404-class UsageError ``media.gone`` (not on disk) or ``media.replaced`` (a link to something else, or
    no longer a regular file)."""
    p = Path(path)
    which = f"the file of item {item_id}" if item_id is not None else f"the indexed file {p.name}"
    params = {"item_id": item_id} if item_id is not None else {"name": p.name}
    try:
        st = os.stat(p)
    except (OSError, ValueError):
        raise UsageError(f"{which} is no longer on disk; re-run xsearch index", code="media.gone",
                         **params) from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{which} is no longer a regular file; re-run xsearch index", code="media.replaced",
                         **params)
    if os.path.realpath(p) != os.path.abspath(p):
        same = record is not None and (st.st_size, st.st_mtime_ns) == (record.size, record.mtime_ns)
        if not same:
            raise UsageError(f"{which} is now a link to another file than the one indexed; it is not read. "
                             "Re-run xsearch index", code="media.replaced", **params)
    return p
