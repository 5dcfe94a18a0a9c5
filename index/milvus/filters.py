"""Filters → Milvus filter expressions over item rows, and the same test in Python.

Path globs compile to ``like`` (``*`` → ``%``, ``?`` → ``_``, exact); a glob with ``[...]`` or a literal ``%``, ``_``
or ``\\`` compiles to a wider ``like`` and the exact glob is applied to the results (post-filter,
:meth:`Compiled.keep`). Milvus 2.3 takes only prefix and exact ``like`` patterns (``%`` elsewhere: "unsupported
pattern"; ``_`` literal): there a glob narrows by its literal prefix and the post-filter does the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xsearch.core.types import Filters

from ..store import to_ns


def quote(text: str) -> str:
    """A Milvus string literal (escapes the characters both milvus-lite's and Milvus's parsers need escaped)."""
    out = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + out.replace("\t", "\\t") + '"'


def _glob_tokens(pattern: str) -> list[tuple[str, str]] | None:
    """SQLite GLOB tokens: ("*", ""), ("?", ""), ("class", regex), ("lit", char); None if a ``[`` never closes
    (SQLite matches nothing then)."""
    tokens, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            tokens.append(("*", ""))
        elif c == "?":
            tokens.append(("?", ""))
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] == "^"
            if negate:
                j += 1
            start = j
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                return None
            body = pattern[start:j]
            parts, k = [], 0
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    parts.append(f"{re.escape(body[k])}-{re.escape(body[k + 2])}")
                    k += 3
                else:
                    parts.append(re.escape(body[k]))
                    k += 1
            tokens.append(("class", f"[{'^' if negate else ''}{''.join(parts)}]"))
            i = j
        else:
            tokens.append(("lit", c))
        i += 1
    return tokens


def glob_to_like(pattern: str) -> tuple[str, re.Pattern | None]:
    """(``like`` pattern, exact regex or None): the regex is None when the ``like`` is exact; otherwise the ``like``
    selects a superset and the regex (SQLite GLOB semantics) must be applied to its results."""
    tokens = _glob_tokens(pattern)
    if tokens is None:
        return "", re.compile(r"(?!)")
    like, exact, regex = [], True, []
    for kind, value in tokens:
        if kind == "*":
            like.append("%")
            regex.append(".*")
        elif kind == "?":
            like.append("_")
            regex.append(".")
        elif kind == "class":
            like.append("_")
            regex.append(value)
            exact = False
        else:
            if value in "%_\\":
                like.append("_")
                exact = False
            else:
                like.append(value)
            regex.append(re.escape(value))
    return "".join(like), None if exact else re.compile("".join(regex), re.DOTALL)


def prefix_like(pattern: str) -> tuple[str, str] | None:
    """For a Milvus whose ``like`` takes only a prefix or an exact string (2.3): ("==" or "like", literal) covering
    the glob's leading literal part, or None when it has none (everything is post-filtered then)."""
    tokens = _glob_tokens(pattern)
    if tokens is None:
        return None
    head = []
    for kind, value in tokens:
        if kind != "lit" or value in "%_\\":
            break
        head.append(value)
    if len(head) == len(tokens):
        return "==", "".join(head)
    return ("like", "".join(head) + "%") if head else None


def _glob_regex(pattern: str) -> re.Pattern:
    tokens = _glob_tokens(pattern)
    if tokens is None:
        return re.compile(r"(?!)")
    return re.compile("".join(".*" if k == "*" else "." if k == "?" else v if k == "class" else re.escape(v)
                              for k, v in tokens), re.DOTALL)


@dataclass
class Compiled:
    """Filters as a Milvus expression plus what it could not say exactly (checked in Python on each hit)."""

    expr: str
    glob_field: str | None = None
    glob_regex: re.Pattern | None = None

    def keep(self, entity: Mapping) -> bool:
        if self.glob_regex is None:
            return True
        return self.glob_regex.fullmatch(str(entity.get(self.glob_field, ""))) is not None


def compile_filters(filters: Filters | None, *, exclude_paths: Sequence[str] = (), gen: int | None = None,
                    extra: Sequence[str] = (), like_full: bool = True) -> Compiled:
    """Filters (xsearch.core.types.Filters) → a Milvus filter expression over item rows (path globs: the module
    docstring); ``gen`` hides items of commits after that generation, ``extra`` are more terms; without
    ``like_full`` (Milvus 2.3: prefix and exact ``like`` only) a glob narrows by its literal prefix and is
    post-filtered."""
    terms = list(extra)
    glob_field, glob_regex = None, None
    active = filters.active() if filters else {}
    if gen is not None:
        terms.append(f"gen <= {int(gen)}")
    if "path_glob" in active:
        pattern = str(active["path_glob"])
        glob_field = "path" if "/" in pattern else "name"
        like, glob_regex = glob_to_like(pattern)
        if not like_full and like:
            glob_regex = _glob_regex(pattern)
            narrow = prefix_like(pattern)
            if narrow is not None:
                terms.append(f"{glob_field} {narrow[0]} {quote(narrow[1])}")
        else:
            terms.append(f"{glob_field} like {quote(like)}" if like else "id < 0")
    if "tag" in active:
        terms.append(f"array_contains(tags, {quote(str(active['tag']))})")
    if "min_duration" in active:
        terms.append(f"duration >= {max(0.0, float(active['min_duration']))!r}")
    if "max_duration" in active:
        terms.append(f"(duration >= 0.0 and duration <= {float(active['max_duration'])!r})")
    if "min_size" in active:
        terms.append(f"size >= {int(active['min_size'])}")
    if "max_size" in active:
        terms.append(f"size <= {int(active['max_size'])}")
    if "since" in active:
        terms.append(f"mtime_ns >= {to_ns(active['since'])}")
    if "until" in active:
        terms.append(f"mtime_ns < {to_ns(active['until'])}")
    if exclude_paths:
        terms.append(f"path not in [{', '.join(quote(p) for p in exclude_paths)}]")
    return Compiled(" and ".join(terms), glob_field, glob_regex)


def matches(filters: Filters | None, meta: Mapping) -> bool:
    """The same test as :func:`compile_filters` in Python, on an item's metadata (rows.item_meta): for a writer's
    uncommitted items."""
    active = filters.active() if filters else {}
    if "path_glob" in active:
        pattern = str(active["path_glob"])
        value = meta["path"] if "/" in pattern else meta["name"]
        if _glob_tokens(pattern) is None or _glob_regex(pattern).fullmatch(value) is None:
            return False
    if "tag" in active and str(active["tag"]) not in meta.get("tags", ()):
        return False
    duration = meta.get("duration", -1.0)
    if "min_duration" in active and not duration >= float(active["min_duration"]):
        return False
    if "max_duration" in active and not (duration >= 0 and duration <= float(active["max_duration"])):
        return False
    if "min_size" in active and meta["size"] < int(active["min_size"]):
        return False
    if "max_size" in active and meta["size"] > int(active["max_size"]):
        return False
    if "since" in active and meta["mtime_ns"] < to_ns(active["since"]):
        return False
    if "until" in active and meta["mtime_ns"] >= to_ns(active["until"]):
        return False
    return True
