"""The engine's argument checks, in one place: every misuse becomes a UsageError with a stable code and the params
its message was built from, so the CLI and the server word it their own way (flags, HTTP fields) from the code.

The session (xsearch.engine.session) calls these at the API edge; a front end that must check something before it
has an engine (the CLI refuses a search without any query before opening the collection) calls the same function.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Sequence

import numpy as np

from xsearch.core.errors import UsageError
from xsearch.core.types import Filters, Query
from xsearch.media.types import MODALITIES

#: The index search knobs a search may pass (``params``), and their largest value.
SEARCH_PARAMS = ("nprobe", "efSearch")
MAX_SEARCH_PARAM = 1 << 16
_INT64_MAX = 2**63 - 1


def check_int(name: str, value, minimum: int | None) -> int:
    """A whole number (not a bool) of at least ``minimum`` (code ``usage.bad_value``, params name / value)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or abs(int(value)) > _INT64_MAX:
        raise UsageError(f"{name} must be a whole number, not {value!r}", code="usage.bad_value", name=name,
                         value=value)
    if minimum is not None and value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, not {value}", code="usage.bad_value", name=name,
                         value=value)
    return int(value)


def check_number(name: str, value, minimum: float | None) -> float | None:
    """None, or a finite number of at least ``minimum`` (code ``usage.bad_value``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise UsageError(f"{name} must be a finite number, not {value!r}", code="usage.bad_value", name=name,
                         value=value)
    if minimum is not None and value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, not {value}", code="usage.bad_value", name=name,
                         value=value)
    return float(value)


# -- k --------------------------------------------------------------------------------------------------------


def check_k(k) -> int | None:
    """None (the default count), or a whole number of at least 1 (code ``usage.bad_k``)."""
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise UsageError(f"k must be a whole number, not {k!r}", code="usage.bad_k", k=k)
    if k <= 0:
        raise UsageError(f"k must be at least 1, not {k}", code="usage.bad_k", k=k)
    return int(k)


def check_k_fits(k: int, held: int, modality: str) -> int:
    """``k`` when the collection holds at least that many files of ``modality`` (``held``); else code
    ``usage.k_too_large`` with ``n`` = what it holds (a server pages with that)."""
    if k > held:
        raise UsageError(f"k={k} is larger than the collection: it holds {held} {modality} file(s)",
                         code="usage.k_too_large", k=k, n=held, modality=modality)
    return k


# -- queries and weights --------------------------------------------------------------------------------------


def check_queries(queries) -> list[Query]:
    """The queries as a list (one given bare counts as one): each a Query of a known modality with a text, or a
    file path for media (code ``query.invalid``), and at least one (code ``query.none``)."""
    if isinstance(queries, (str, bytes, Query)):  # one query given bare: not a sequence of its characters
        queries = [queries]
    queries = list(queries or [])
    for q in queries:
        if not isinstance(q, Query) or q.modality not in MODALITIES or not (
                isinstance(q.value, str) or (q.modality != "text" and isinstance(q.value, os.PathLike))):
            raise UsageError(f"not a query: {q!r} (give Query(modality, text or file path))",
                             code="query.invalid")
    if not queries:
        raise UsageError("no query: give a text, an image file or an audio file", code="query.none")
    return queries


def parse_weights(text: str | None, n: int) -> list[float]:
    """``"0.7,0.3"`` → floats, one per query (default: all 1). Mismatch, non-numbers, NaN/inf → UsageError."""
    if not text:
        return [1.0] * n
    try:
        weights = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"weights {text!r} are not comma-separated numbers such as 0.7,0.3",
                         code="usage.bad_weights", text=text) from None
    return check_weights(weights, n, text)


def check_weights(weights: Sequence[float], n: int, text: str | None = None) -> list[float]:
    """One finite weight per query, not all zero (codes ``usage.bad_weights``, ``usage.weights_count``,
    ``usage.zero_weights``)."""
    try:
        weights = [float(w) for w in weights]
    except (TypeError, ValueError):
        raise UsageError(f"weights {weights!r} are not numbers", code="usage.bad_weights",
                         text=str(text or weights)) from None
    if len(weights) != n:
        raise UsageError(f"{len(weights)} weight(s) for {n} queries", code="usage.weights_count",
                         given=len(weights), queries=n)
    if not all(math.isfinite(w) and abs(w) <= 1e6 for w in weights):
        raise UsageError(f"weights must be finite numbers of at most 1e6 in size, not {weights}",
                         code="usage.bad_weights", text=str(text or ",".join(map(str, weights))))
    if all(w == 0 for w in weights):
        raise UsageError("at least one weight must be non-zero", code="usage.zero_weights")
    return weights


def check_fusion(fusion: str, choices: Sequence[str]) -> str:
    """One of the fusion methods ``choices`` (code ``usage.bad_fusion``)."""
    if fusion not in choices:
        raise UsageError(f"unknown fusion {fusion!r}; choose {', '.join(choices)}", code="usage.bad_fusion",
                         fusion=fusion, choices=", ".join(choices))
    return fusion


# -- what a search keeps and how it searches ------------------------------------------------------------------


def check_threshold(threshold) -> float | None:
    """None, or a finite number (code ``usage.bad_threshold``)."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(threshold)):
        raise UsageError(f"threshold must be a finite number, not {threshold!r}", code="usage.bad_threshold",
                         value=threshold, range="")
    return float(threshold)


def check_filters(filters) -> Filters:
    """Filters with finite, in-range numbers and dates the catalog can compare (code ``usage.bad_filter``)."""
    if not isinstance(filters, Filters):
        raise UsageError(f"filters must be a Filters value, not {type(filters).__name__}", code="usage.bad_filter",
                         name="filters", value=str(filters))
    for name in ("min_duration", "max_duration"):
        value = getattr(filters, name)
        if value is not None and (check_number(name, value, 0) is None):
            raise UsageError(f"{name} must be a number", code="usage.bad_filter", name=name, value=value)
    for name in ("min_size", "max_size"):
        value = getattr(filters, name)
        if value is not None:
            check_int(name, value, 0)
            if value > _INT64_MAX:
                raise UsageError(f"{name} is larger than any file can be: {value}", code="usage.bad_filter",
                                 name=name, value=value)
    for name in ("since", "until"):
        value = getattr(filters, name)
        if value is not None and not isinstance(value, (dt.date, dt.datetime)):
            check_number(name, value, None)
    for name in ("path_glob", "tag"):
        value = getattr(filters, name)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{name} must be a string, not {value!r}", code="usage.bad_filter", name=name,
                             value=value)
    return filters


def check_params(params: dict | None) -> dict:
    """Index search knobs: only :data:`SEARCH_PARAMS`, each a whole number from 1 to :data:`MAX_SEARCH_PARAM`
    (code ``usage.bad_search_param``)."""
    out = {}
    for key, value in dict(params or {}).items():
        if key not in SEARCH_PARAMS:
            raise UsageError(f"unknown search parameter {key!r}; known: {', '.join(SEARCH_PARAMS)}",
                             code="usage.bad_search_param", name=key, value=value)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_SEARCH_PARAM:
            raise UsageError(f"{key} must be a whole number from 1 to {MAX_SEARCH_PARAM}, not {value!r}",
                             code="usage.bad_search_param", name=key, value=value)
        out[key] = int(value)
    return out


def check_flag(name: str, value) -> bool:
    """A true / false argument (code ``usage.bad_value``)."""
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false, not {value!r}", code="usage.bad_value", name=name,
                         value=value)
    return value


def check_cosine_threshold(threshold) -> float:
    """A cosine score in (0, 1] (code ``usage.bad_threshold``)."""
    if threshold is None or check_threshold(threshold) is None or not 0 < threshold <= 1:
        raise UsageError(f"threshold must be in (0, 1], not {threshold}", code="usage.bad_threshold",
                         value=threshold, range=" in (0, 1]")
    return float(threshold)


# -- target modalities ----------------------------------------------------------------------------------------


def _choices() -> str:
    return ", ".join(MODALITIES) + " or all"


def check_targets(to) -> tuple[list[str], bool]:
    """``to`` (a modality, a list of them, or ``"all"``) as a list of modalities, and whether it named them
    explicitly (``"all"`` does not); code ``usage.bad_target`` with the choices."""
    if to == "all":
        return list(MODALITIES), False
    if not (isinstance(to, str) or to is None or isinstance(to, (list, tuple, set, frozenset))):
        raise UsageError(f"target {to!r}: choose {_choices()}", code="usage.bad_target", target=str(to),
                         choices=_choices())
    targets = [to] if isinstance(to, str) or to is None else list(to)
    if not targets:
        raise UsageError("no target modality", code="usage.bad_target", target="", choices=_choices())
    for t in targets:
        if not isinstance(t, str) or t not in MODALITIES:
            raise UsageError(f"target {t!r}: choose {_choices()}", code="usage.bad_target", target=t,
                             choices=_choices())
    return targets, True


def check_modality(modality) -> str:
    """One modality (not "all"; code ``usage.bad_target``, param name ``modality``)."""
    if not isinstance(modality, str) or modality not in MODALITIES:
        choices = ", ".join(MODALITIES)
        raise UsageError(f"modality {modality!r}: choose {choices}", code="usage.bad_target",
                         target=str(modality), choices=choices, name="modality")
    return modality
