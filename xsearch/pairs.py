"""Paired-data manifests (JSONL): one record per item group, any subset of image / audio / text.

A record: ``{"group": "g1", "image": "img/a.png", "audio": "snd/a.wav", "text": ["caption", ...],
"split": "train", "attributes": {...}}``. Paths are relative to the manifest's folder and must stay inside it
(a path leading out of it, even through a link, is reported and skipped). ``text`` may be a string
or a list (the first is the canonical caption used for evaluation). Bad lines are skipped and reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from xsearch.core.errors import XsearchError


@dataclass
class PairRecord:
    """One item group: the files and captions that describe the same thing."""

    group: str
    image: Path | None = None
    audio: Path | None = None
    texts: list[str] = field(default_factory=list)
    split: str | None = None
    attributes: dict | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, present in (("image", self.image), ("audio", self.audio), ("text", self.texts))
                     if present)

    @property
    def label(self) -> str:
        """What makes two records relevant to each other: equal attributes if known, else the same group."""
        if self.attributes:
            return json.dumps(self.attributes, sort_keys=True)
        return self.group


@dataclass
class Manifest:
    path: Path
    records: list[PairRecord]
    problems: list[str]  # one line each: "manifest.jsonl:12: not JSON (...)"

    def split(self, name: str | None) -> list[PairRecord]:
        return [r for r in self.records if name is None or r.split == name]


def jsonl_lines(path: Path, label: str = "") -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for each non-blank line of a JSONL file, read as UTF-8 (XsearchError "cannot read
    [label ]PATH" when it cannot be read; raised on the first iteration)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise XsearchError(f"cannot read {label + ' ' if label else ''}{path}: {e}") from None
    for n, line in enumerate(lines, 1):
        if line.strip():
            yield n, line


def load_manifest(path: str | Path) -> Manifest:
    """Read a paired-data manifest (JSONL). Lines that are not JSON, or name missing files, are reported and skipped."""
    from xsearch.core.paths import not_a_file

    path = Path(path).expanduser()
    if not path.is_file():
        raise XsearchError(not_a_file(path, "manifest"), code="manifest.not_a_file", path=str(path))
    base = path.parent
    folder = base.resolve()
    records, problems = [], []
    for n, line in jsonl_lines(path, "manifest"):
        where = f"{path.name}:{n}"
        try:
            raw = json.loads(line)
        except ValueError as e:
            problems.append(f"{where}: not JSON ({e.msg})")
            continue
        if not isinstance(raw, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        rec = PairRecord(group=str(raw.get("group", raw.get("id", f"line{n}"))), split=raw.get("split"),
                         attributes=raw.get("attributes") if isinstance(raw.get("attributes"), dict) else None)
        for modality in ("image", "audio"):
            value = raw.get(modality)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{where}: {modality} is not a file path: {value!r}")
                continue
            p = Path(value).expanduser()
            p = p if p.is_absolute() else base / p
            try:
                inside = p.resolve().is_relative_to(folder)  # a manifest names files under its own folder only
                usable = inside and p.is_file()
            except (OSError, ValueError, RuntimeError):  # a NUL byte, a link loop
                problems.append(f"{where}: {modality} is not a usable file path: {value!r}")
                continue
            if not inside:
                problems.append(f"{where}: {modality} file is outside the manifest's folder {folder}: {value}")
            elif usable:
                setattr(rec, modality, p)
            else:
                problems.append(f"{where}: {modality} file missing: {value}")
        text = raw.get("text")
        if isinstance(text, str):
            text = [text]
        if isinstance(text, list):
            rec.texts = [t for t in text if isinstance(t, str) and t.strip()]
        if not rec.modalities:
            problems.append(f"{where}: no usable image, audio or text")
            continue
        records.append(rec)
    if not records:
        detail = f" ({problems[0]})" if problems else ""
        raise XsearchError(f"manifest {path} has no usable records{detail}.")
    return Manifest(path, records, problems)
