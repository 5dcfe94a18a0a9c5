"""`xsearch index PATH` and `xsearch remove PATH...`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from xsearch.cli.output import collection_option, note, print_json, progress_bar, say, store_token_option


def index(
    path: Path = typer.Argument(..., help="Folder (or single file) of images, audio and text to index."),
    collection: Optional[str] = collection_option(),
    store_token: Optional[str] = store_token_option(),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Model spec for a new collection (default: auto). See `xsearch models`."
    ),
    include: List[str] = typer.Option([], help="Only files matching this glob (repeatable), e.g. '*.jpg'."),
    exclude: List[str] = typer.Option([], help="Skip files or folders matching this glob (repeatable)."),
    hidden: bool = typer.Option(False, help="Also index hidden files and folders."),
    follow_links: bool = typer.Option(
        False, "--follow-links", help="Also follow symlinks that lead out of PATH (by default they are skipped)."),
    prune: bool = typer.Option(True, help="Remove entries for files that are gone from PATH (--no-prune keeps them)."),
    prune_all: bool = typer.Option(
        False, "--prune-all", help="Allow removing more than half of PATH's indexed files at once (by default such a "
        "run keeps them: it looks like an unmounted or emptied folder)."),
    rebuild: bool = typer.Option(False, help="Start the collection afresh (e.g. to switch models)."),
    index_factory: str = typer.Option(
        "auto",
        help="FAISS index-factory string for new indexes, e.g. 'HNSW32' or 'IVF4096,PQ64x4fs,Refine(SQfp16)'; "
        "'auto' picks by size and budgets.",
    ),
    memory_budget: Optional[str] = typer.Option(
        None, "--memory-budget", help="Resident memory the vector index of each modality may use, e.g. 200MB, "
        "1.5GB, 512MiB: 'auto' picks the index type and its parameters from the collection size, dimension and "
        "budgets (a compressed index re-ranked with exact vectors kept on disk when memory is tight), records why "
        "(`xsearch info`), and re-chooses as the collection grows. Kept for later runs."),
    latency_budget: Optional[str] = typer.Option(
        None, "--latency-budget", help="Expected single-query search time (p50) the index should meet, e.g. 5ms "
        "(default with --memory-budget: 10ms). Kept for later runs."),
    workers: int = typer.Option(2, help="Decoding worker processes (0 = decode in the main process)."),
    batch_files: int = typer.Option(32, help="Files decoded and embedded per batch."),
    executor: str = typer.Option(
        "local", help="Where decoding and embedding run: 'local' (this machine) or 'ray' (a Ray cluster's actors; "
        "needs the 'ray' extra). This process stays the only writer either way."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="Ray cluster to use with --executor ray, e.g. ray://head:10001 or 'auto' "
        "(default: $RAY_ADDRESS, else a Ray instance started on this machine for the run)."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N (default: cuda when available)."),
    wait: float = typer.Option(0.0, help="Seconds to wait for another writer of the same collection."),
    strict: bool = typer.Option(False, help="Exit with code 4 when any file was skipped."),
    ocr: Optional[bool] = typer.Option(
        None, "--ocr/--no-ocr", help="Read the words in pictures and video frames (OCR, the 'ocr' extra) for "
        "keyword search; remembered by the collection (--no-ocr stops and forgets them). See docs/ocr.md.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Index a folder: new and changed files are embedded, unchanged ones skipped, vanished ones removed.

    Broken, unreadable or unsupported files are skipped and listed at the end; the rest is indexed.
    """
    from xsearch.engine import Engine

    if workers < 0 or batch_files < 1:
        from xsearch.core.errors import UsageError

        raise UsageError("--workers must be >= 0 and --batch-files >= 1.")
    engine = Engine(collection, model=model, device=device)
    with progress_bar("embedding", disable=as_json) as bar:
        task = bar.add_task("embed", total=None)
        report = engine.index_folder(
            path, include=include, exclude=exclude, hidden=hidden, prune=prune, prune_all=prune_all, rebuild=rebuild,
            follow_links=follow_links, ocr=ocr,
            index_factory=index_factory, memory_budget=memory_budget, latency_budget=latency_budget,
            workers=workers, files_per_batch=batch_files, wait_s=wait,
            executor=executor, executor_options={"address": ray_address} if ray_address else None,
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
        note(f"skipped: {s['path']}: {s['reason']}")
    for n in report.notes:
        note(f"note: {n}")
    if report.prune_refused:
        note(f"note: {report.prune_refused} file(s) gone from disk were kept in the collection; if they were really "
             "deleted, run this again with --prune-all to remove them")
    for modality, n in report.unsupported.items():
        note(f"not indexed: {n} {modality} file(s); model {report.model_spec} has no {modality} tower")
    ignored = getattr(report, "ignored", None) or {}
    if ignored:
        from xsearch.media.modalities import labels

        n, kinds = sum(ignored.values()), labels()
        what = f"files that are not {kinds} files" if n != 1 else \
            f"file that is not {'an' if kinds[0] in 'aeiou' else 'a'} {kinds} file"
        note(f"ignored {n} {what}: " + ", ".join(f"{ext} ×{count}" for ext, count in ignored.items()))
    from xsearch.media.discover import LINK_OUTSIDE

    links = sum(1 for s in report.skipped if s.get("code") == LINK_OUTSIDE)
    if links:
        note(f"note: {links} symlink(s) leading out of {report.root} were not followed; index with --follow-links "
             "to include what they point to")
    vectors = ", ".join(f"{n} {m}" for m, n in sorted(report.vectors_added.items())) or "none"
    if report.lines_added:
        vectors += "; lines of words: " + ", ".join(f"{n} {t}" for t, n in sorted(report.lines_added.items()))
    from xsearch.cli.output import warn_model_fit

    warn_model_fit(report.model_fit)
    say(
        f"indexed {report.root} into {report.collection}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.renamed} renamed, {report.removed} removed, "
        f"{len(report.skipped)} skipped; vectors added: {vectors} ({report.seconds:.1f}s)"
    )


def remove(
    paths: List[str] = typer.Argument(..., help="Files or folders to drop from the collection."),
    collection: Optional[str] = collection_option(),
    store_token: Optional[str] = store_token_option(),
    wait: float = typer.Option(0.0, help="Seconds to wait for another writer."),
    force: bool = typer.Option(False, "--force", help="Allow removing more than half of the collection's files."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove files (or everything under folders) from the collection; the files themselves are untouched.
    Removing more than half of the collection at once needs --force."""
    from xsearch.engine import Engine

    n = Engine(collection).remove(paths, wait_s=wait, allow_most=force)
    if as_json:
        print_json({"removed": n})
    else:
        say(f"removed {n} file(s) from the collection")
