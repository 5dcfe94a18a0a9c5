"""`xsearch tag`: zero-shot tags for every file of a collection, from text labels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from xsearch.cli.output import collection_option, note, print_json, progress_bar, say, store_token_option

#: A --labels value with one of these endings (or a path separator) names a file, even when it is missing.
LABEL_FILE_SUFFIXES = (".txt", ".lst", ".list", ".labels", ".csv")


def tag(
    labels: str = typer.Option(..., "--labels", "-l", help="A file with one label per line, or labels separated "
                               "by commas: 'dog, cat, rain'."),
    top: int = typer.Option(3, "--top", help="Tags kept per file (its best-scoring labels)."),
    min_score: Optional[float] = typer.Option(None, "--min-score", help="Keep only tags with at least this cosine "
                                              "score (default: no minimum)."),
    collection: Optional[str] = collection_option(),
    store_token: Optional[str] = store_token_option(),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N."),
    wait: float = typer.Option(0.0, help="Seconds to wait for another writer of the same collection."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Tag every file with the labels it matches best (zero-shot: the model reads the labels as text).

    Each label is embedded through several prompts worded per modality ("a photo of a {}", "the sound of a {}",
    "a text about {}") and averaged; a file's score is its best cosine with a label. The --top best labels
    (at least --min-score) replace the file's earlier tags. Then: xsearch search "..." --tag dog; xsearch info.
    """
    from xsearch.core.errors import UsageError
    from xsearch.engine import Engine

    names = read_labels(labels)
    if top < 1:
        raise UsageError(f"--top must be at least 1, not {top}", code="usage.bad_value", name="top", value=top)
    if min_score is not None and not math.isfinite(min_score):
        raise UsageError(f"--min-score must be a finite number, not {min_score}", code="usage.bad_value",
                         name="min_score", value=min_score)
    engine = Engine(collection, device=device)
    with progress_bar("tagging", disable=as_json) as bar:
        task = bar.add_task("tag", total=None)
        report = engine.tag(names, top=top, min_score=min_score, wait_s=wait,
                            on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        print_json(report)
        return
    say(f"tagged {report['tagged']} of {report['files']} file(s) in {report['collection']} with "
        f"{len(report['labels'])} label(s) ({report['seconds']:.1f}s)")
    if report["untagged"]:
        note(f"{report['untagged']} file(s) scored below --min-score {min_score} for every label: no tags")
    for name, n in list(report["tag_counts"].items())[:20]:
        say(f"  {name}: {n}")
    if len(report["tag_counts"]) > 20:
        say(f"  ... and {len(report['tag_counts']) - 20} more tag(s) (xsearch info --json lists all)")


def read_labels(value: str) -> list[str]:
    """``--labels``: a file (one label per line; blank lines and lines starting with # skipped), or labels
    separated by commas. A value that looks like a file name but names no file is an error, not a label."""
    from xsearch.core.errors import UsageError
    from xsearch.engine.tagging import check_labels

    if not value.strip():
        return check_labels([])
    path = Path(value).expanduser()
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read labels file {path}: {getattr(e, 'strerror', None) or e}",
                             code="tag.labels_unreadable", path=str(path)) from None
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        return check_labels([line.strip() for line in lines])
    if "," not in value and (path.is_dir() or "/" in value or value.lower().endswith(LABEL_FILE_SUFFIXES)):
        from xsearch.core.paths import not_a_file

        raise UsageError(not_a_file(path, "labels file"), code="tag.labels_file_missing", path=str(path))
    return check_labels(value.split(","))
