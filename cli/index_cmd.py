"""`xsearch index PATH` and `xsearch remove PATH...`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from xsearch.cli.output import collection_option, console, err_console, note, print_json, progress_bar


def index(
    path: Path = typer.Argument(..., help="Folder (or single file) of images, audio and text to index."),
    collection: Optional[str] = collection_option(),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Model spec for a new collection (default: auto). See `xsearch models`."
    ),
    include: List[str] = typer.Option([], help="Only files matching this glob (repeatable), e.g. '*.jpg'."),
    exclude: List[str] = typer.Option([], help="Skip files or folders matching this glob (repeatable)."),
    hidden: bool = typer.Option(False, help="Also index hidden files and folders."),
    prune: bool = typer.Option(True, help="Remove entries for files that are gone from PATH (--no-prune keeps them)."),
    prune_all: bool = typer.Option(
        False, "--prune-all", help="Allow removing more than half of PATH's indexed files at once (by default such a "
        "run keeps them: it looks like an unmounted or emptied folder)."),
    rebuild: bool = typer.Option(False, help="Start the collection afresh (e.g. to switch models)."),
    index_factory: str = typer.Option(
        "auto",
        help="FAISS index-factory string for new indexes, e.g. 'HNSW32' or 'IVF4096,PQ32'; 'auto' picks by size.",
    ),
    workers: int = typer.Option(2, help="Decoding worker processes (0 = decode in the main process)."),
    batch_files: int = typer.Option(32, help="Files decoded and embedded per batch."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N (default: cuda when available)."),
    wait: float = typer.Option(0.0, help="Seconds to wait for another writer of the same collection."),
    strict: bool = typer.Option(False, help="Exit with code 4 when any file was skipped."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Index a folder: new and changed files are embedded, unchanged ones skipped, vanished ones removed.

    Broken, unreadable or unsupported files are skipped and listed at the end; the rest is indexed.
    """
    from xsearch.engine import Engine

    if workers < 0 or batch_files < 1:
        from xsearch.errors import UsageError

        raise UsageError("--workers must be >= 0 and --batch-files >= 1.")
    engine = Engine(collection, model=model, device=device)
    with progress_bar("embedding", disable=as_json) as bar:
        task = bar.add_task("embed", total=None)
        report = engine.index_folder(
            path, include=include, exclude=exclude, hidden=hidden, prune=prune, prune_all=prune_all, rebuild=rebuild,
            index_factory=index_factory, workers=workers, files_per_batch=batch_files, wait_s=wait,
            on_plan=lambda n: bar.update(task, total=n), on_progress=lambda n: bar.advance(task, n),
        )
    from xsearch.cli.output import prepare_model

    prepare_model(engine, quiet=as_json)  # a bridged pair embeds its vocabulary now, once, with a progress bar
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if strict and report.skipped:
        raise typer.Exit(4)


def _print_report(report) -> None:
    if report.model_note:
        note(report.model_note)
    if report.repaired:
        note(f"repaired: {report.repaired}")
    for s in report.skipped:
        err_console.print(f"skipped: {s['path']}: {s['reason']}", highlight=False, markup=False)
    for n in report.notes:
        note(f"note: {n}")
    for modality, n in report.unsupported.items():
        note(f"not indexed: {n} {modality} file(s); model {report.model_spec} has no {modality} tower")
    vectors = ", ".join(f"{n} {m}" for m, n in sorted(report.vectors_added.items())) or "none"
    console.print(
        f"indexed {report.root} into {report.collection}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.renamed} renamed, {report.removed} removed, "
        f"{len(report.skipped)} skipped; vectors added: {vectors} ({report.seconds:.1f}s)",
        highlight=False, markup=False,
    )


def remove(
    paths: List[Path] = typer.Argument(..., help="Files or folders to drop from the collection."),
    collection: Optional[str] = collection_option(),
    wait: float = typer.Option(0.0, help="Seconds to wait for another writer."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove files (or everything under folders) from the collection; the files themselves are untouched."""
    from xsearch.engine import Engine

    n = Engine(collection).remove(paths, wait_s=wait)
    if as_json:
        print_json({"removed": n})
    else:
        console.print(f"removed {n} file(s) from the collection", highlight=False)
