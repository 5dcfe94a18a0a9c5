"""Sizes and durations as people write them ("200MB", "1.5GB", "512MiB"; "5ms", "0.01s"), parsed once for every
front end (the CLI's --memory-budget / --latency-budget, the Python API's memory_budget / latency_budget)."""

from __future__ import annotations

import math
import re

from xsearch.core.errors import UsageError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_TIME_UNITS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}


def parse_size(value) -> int | None:
    """Bytes from ``200MB``, ``1.5GB``, ``512MiB``, ``2e9`` or a number (None stays None). MB = 10**6 bytes,
    MiB = 2**20."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"memory budget {value!r} is not a size", code="usage.bad_budget", budget=str(value))
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
        if m is None or m.group(2).lower() not in _UNITS:
            raise UsageError(f"memory budget {value!r} is not a size (e.g. 200MB, 1.5GB, 512MiB or a number of "
                             "bytes)", code="usage.bad_budget", budget=str(value))
        number, unit = float(m.group(1)), m.group(2).lower()
    size = number * _UNITS[unit]
    if not math.isfinite(size) or size <= 0:
        raise UsageError(f"memory budget {value!r} must be positive", code="usage.bad_budget", budget=str(value))
    return int(size)


def parse_latency(value) -> float | None:
    """Milliseconds from ``5ms``, ``0.01s``, ``800us`` or a number of milliseconds (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"latency budget {value!r} is not a duration", code="usage.bad_budget", budget=str(value))
    if isinstance(value, (int, float)):
        ms = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zµ]*)\s*", str(value).lower())
        if m is None or m.group(2) not in _TIME_UNITS:
            raise UsageError(f"latency budget {value!r} is not a duration (e.g. 5ms, 0.01s or a number of "
                             "milliseconds)", code="usage.bad_budget", budget=str(value))
        ms = float(m.group(1)) * _TIME_UNITS[m.group(2)]
    if not math.isfinite(ms) or ms <= 0:
        raise UsageError(f"latency budget {value!r} must be positive", code="usage.bad_budget", budget=str(value))
    return ms
