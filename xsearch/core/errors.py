"""User-facing errors with stable machine codes.

Every error a user can cause is an :class:`XsearchError`: a one-sentence ``message`` that names no command-line
flag, a stable dotted ``code`` (``"collection.model_mismatch"``, ``"query.empty"``, ...) and the ``params`` the
message was built from. Front ends map the code: the CLI to an exit code and flag advice
(``xsearch/cli/errors.py``), a server to an HTTP status. Codes are part of the public API: never rename one.

Advice that only the raising layer knows travels with the error as its ``hint`` (a Milvus store's "check that
Milvus runs there"), so a front end prints it without knowing which store, model or medium raised it.
"""

from __future__ import annotations

from typing import Any


class XsearchError(Exception):
    """An error caused by user input or environment, not a bug. ``str(e)`` is one sentence.

    ``hint``: what the user can do about it, from the layer that raised it (e.g. "check that Milvus runs there"),
    worded for every front end; "" when the front ends' own advice for the code is all there is.
    """

    code = "error"
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None, hint: str = "", **params: Any):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.hint = hint
        self.params = params

    def to_dict(self) -> dict:
        """``{"code", "message", "params"}`` with JSON-safe params, and ``"hint"`` when the error has one (what
        ``--json`` and a server print)."""
        out = {"code": self.code, "message": self.message,
               "params": {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                          for k, v in self.params.items()}}
        if self.hint:
            out["hint"] = self.hint
        return out


class UsageError(XsearchError):
    """Bad arguments: empty query, k <= 0, mismatched weights, unknown modality."""

    code = "usage"
    exit_code = 2


class MediaError(XsearchError):
    """A file could not be decoded (corrupt, truncated, unsupported, too large, unreadable)."""

    code = "media"


class ModelError(XsearchError):
    """A model spec or checkpoint could not be resolved or loaded."""

    code = "model"


class CollectionError(XsearchError):
    """A collection is missing, locked, damaged, read-only, or was built with another model."""

    code = "collection"


class CollectionLockedError(CollectionError):
    """Another writer holds the collection's lock."""

    code = "collection.locked"
    exit_code = 3
