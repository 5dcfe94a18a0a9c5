"""Executors: where files are decoded and embedded during indexing (xsearch.engine.executors.base has the protocol).

- ``local`` (default): DataLoader worker processes decode a few batches ahead; the model runs in this process.
- ``ray``: Ray Data actors, each building its own encoder from the model spec (needs the 'ray' extra).

An executor is one module and one line in :data:`EXECUTORS`; its module is imported only when it is made, so a
missing extra is reported then, as a UsageError.
"""

from __future__ import annotations

import importlib

from xsearch.core.errors import UsageError
from xsearch.engine.executors.base import Executor

#: Executor name → ``"module:Class"``; the class is built as ``Class(workers=..., files_per_batch=..., **options)``.
#: A module that fails to import needs the extra named like the executor.
EXECUTORS: dict[str, str] = {
    "local": "xsearch.engine.executors.local:LocalExecutor",
    "ray": "xsearch.engine.executors.ray:RayExecutor",
}


def make_executor(name: str = "local", *, workers: int = 2, files_per_batch: int = 32, **options) -> Executor:
    """The executor called ``name`` (a key of :data:`EXECUTORS`; ``options`` go to it, e.g. ``address`` for Ray).

    UsageError codes: ``executor.unknown`` (no such name), ``executor.unavailable`` (its extra is not installed),
    ``executor.bad_option`` (an option it does not take).
    """
    if name not in EXECUTORS:
        raise UsageError(f"unknown executor {name!r}; choose {', '.join(EXECUTORS)}", code="executor.unknown",
                         executor=name, choices=", ".join(EXECUTORS))
    module, _, cls_name = EXECUTORS[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except ImportError as e:
        raise UsageError(f"the {name} executor needs the '{name}' extra ({e})", code="executor.unavailable",
                         executor=name) from None
    try:
        return cls(workers=workers, files_per_batch=files_per_batch, **options)
    except TypeError as e:  # an option this executor does not know
        raise UsageError(f"bad option for the {name} executor: {e}", code="executor.bad_option",
                         executor=name, options=", ".join(sorted(options))) from None


__all__ = ["EXECUTORS", "Executor", "make_executor"]
