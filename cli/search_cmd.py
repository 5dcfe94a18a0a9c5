"""`xsearch search`, `xsearch similar`, `xsearch duplicates`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer

from xsearch.cli.output import collection_option, console, note, print_json

TO_HELP = "Target modality: image, audio, text, or all (one list per modality)."


def search(
    text: List[str] = typer.Argument(None, help="Text queries (each argument is one query)."),
    image: List[Path] = typer.Option([], "--image", "-i", help="Image file to search with (repeatable)."),
    audio: List[Path] = typer.Option([], "--audio", "-a", help="Audio file to search with (repeatable)."),
    to: str = typer.Option("image", "--to", "-t", help=TO_HELP),
    k: Optional[int] = typer.Option(
        None,
        "-k",
        help="Results per target modality [default: 10, or all there are]; "
        "more than the collection holds is an error.",
    ),
    weight: Optional[str] = typer.Option(
        None,
        "--weight",
        "-w",
        help="Comma-separated weight per query, in the order: texts, --image files, --audio files. "
        "Negative subtracts a concept.",
    ),
    fusion: str = typer.Option(
        "mean",
        help="How several queries combine: mean (one fused vector), weighted, rrf or vote "
        "(merge separate result lists).",
    ),
    threshold: Optional[float] = typer.Option(None, help="Drop results with cosine score below this."),
    path_glob: Optional[str] = typer.Option(None, help="Only files matching this glob ('*.wav', '*/holiday/*')."),
    min_duration: Optional[float] = typer.Option(None, help="Only audio at least this long (s)."),
    max_duration: Optional[float] = typer.Option(None, help="Only audio at most this long (s)."),
    min_size: Optional[int] = typer.Option(None, help="Only files of at least this many bytes."),
    max_size: Optional[int] = typer.Option(None, help="Only files of at most this many bytes."),
    since: Optional[datetime] = typer.Option(None, help="Only files modified on or after this date."),
    until: Optional[datetime] = typer.Option(None, help="Only files modified before this date."),
    nprobe: Optional[int] = typer.Option(None, help="IVF lists to visit (recall vs speed)."),
    ef_search: Optional[int] = typer.Option(None, help="HNSW search breadth (recall vs speed)."),
    collection: Optional[str] = collection_option(),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Search by text, image or audio, towards images, audio or texts.

    Examples: xsearch search "a red circle" --to image;  xsearch search --image photo.jpg --to audio;
    xsearch search "sunset" --image beach.jpg --weight 0.7,0.3;  xsearch search "dog" "grass" -w 1,-0.5.
    """
    from xsearch.engine import Engine
    from xsearch.query import make_queries, parse_weights
    from xsearch.types import Filters

    queries = make_queries(text or [], {"image": image, "audio": audio})
    if not queries:
        from xsearch.errors import UsageError

        raise UsageError('no query: give text ("a red circle"), --image FILE or --audio FILE.', code="query.none")
    weights = parse_weights(weight, len(queries))
    filters = Filters(path_glob, min_duration, max_duration, min_size, max_size, since, until)
    params = {k_: v for k_, v in (("nprobe", nprobe), ("efSearch", ef_search)) if v is not None}
    engine = Engine(collection, device=device)
    if image or audio:  # a bridged pair embeds its vocabulary once, behind a progress bar, not mid-query
        from xsearch.cli.output import prepare_model

        prepare_model(engine, engine.stored_model(), quiet=as_json)
    results = engine.search(queries, to=to, k=k, weights=weights, fusion=fusion, threshold=threshold,
                            filters=filters, params=params)
    _warn_short(results, k)
    if as_json:
        print_json({"queries": [q.__dict__ for q in queries], "weights": weights, "fusion": fusion,
                    "results": {t: [h.to_dict() for h in hits] for t, hits in results.items()}})
    else:
        title = " + ".join(q.label for q in queries)
        for target, hits in results.items():
            print_hits(f"{title} → {target}", hits)


def _warn_short(results, k: int | None) -> None:
    """An explicit -k that filters, the threshold or a smaller target modality cut short gets a note."""
    for target, hits in results.items():
        if k is not None and len(hits) < k:
            note(
                f"note: {len(hits)} {target} result(s), fewer than -k {k} (filters, threshold or fewer {target} files)."
            )


def print_hits(title: str, hits) -> None:
    """A readable table: rank, score, where in the file, path (and a text snippet)."""
    from rich.table import Table

    console.print(title, style="bold", markup=False, highlight=False, soft_wrap=True)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("at", justify="right")
    table.add_column("path", overflow="fold")
    for h in hits:
        at = f"{h.offset:.1f}s" if h.modality == "audio" else (f"¶{int(h.offset) + 1}" if h.modality == "text" else "")
        path = _short(h.path) + (f"  “{h.snippet[:80]}”" if h.snippet else "")
        table.add_row(str(h.rank), f"{h.score:.3f}", at, path)
    if not hits:
        table.add_row("", "", "", "(no results)")
    console.print(table)


def _short(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def similar(
    path: Path = typer.Argument(..., help="An indexed file (or any media file) to find neighbours of."),
    to: Optional[str] = typer.Option(None, "--to", "-t", help="Target modality (default: the file's own)."),
    k: Optional[int] = typer.Option(None, "-k", help="Number of results [default: 10, or all there are]."),
    collection: Optional[str] = collection_option(),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Find items similar to a file (uses its stored vectors when it is indexed)."""
    from xsearch.engine import Engine

    results = Engine(collection).similar(path, to=to, k=k)
    _warn_short(results, k)
    if as_json:
        print_json({t: [h.to_dict() for h in hits] for t, hits in results.items()})
    else:
        for target, hits in results.items():
            print_hits(f"similar to {path} → {target}", hits)


def duplicates(
    modality: str = typer.Option("image", help="Which modality to scan: image, audio or text."),
    threshold: float = typer.Option(0.95, help="Cosine score at or above which two files are near-duplicates."),
    collection: Optional[str] = collection_option(),
    as_json: bool = typer.Option(False, "--json", help="Print pairs as JSON."),
) -> None:
    """List near-duplicate pairs of files in the collection."""
    from xsearch.engine import Engine

    pairs = Engine(collection).duplicates(modality, threshold)
    if as_json:
        print_json(pairs)
        return
    for p in pairs:
        console.print(f"{p['score']:.3f}  {_short(p['a'])}  ~  {_short(p['b'])}", highlight=False, markup=False)
    note(f"{len(pairs)} near-duplicate pair(s) at cosine ≥ {threshold}")
