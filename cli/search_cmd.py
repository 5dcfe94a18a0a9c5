"""`xsearch search`, `xsearch similar`, `xsearch duplicates`."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer

from xsearch.cli.output import collection_option, console, note, plain, print_json, say, store_token_option

TO_HELP = "Target modality: image, audio, text, video, or all (one list per modality)."
MAX_INT64 = 2**63 - 1  # the largest size the catalog (SQLite INTEGER) can compare


def search(
    text: List[str] = typer.Argument(None, help="Text queries (each argument is one query)."),
    image: List[Path] = typer.Option([], "--image", "-i", help="Image file to search with (repeatable)."),
    audio: List[Path] = typer.Option([], "--audio", "-a", help="Audio file to search with (repeatable)."),
    video: List[Path] = typer.Option([], "--video", help="Video clip to search with: its picture and sound, fused "
                                     "(repeatable)."),
    to: str = typer.Option("image", "--to", "-t", help=TO_HELP),
    k: Optional[int] = typer.Option(
        None,
        "-k",
        help="Results per target modality (default: 10, or all there are; a larger -k is capped to what the "
        "collection holds).",
    ),
    weight: Optional[str] = typer.Option(
        None,
        "--weight",
        "-w",
        help="Comma-separated weight per query, in the order: texts, --image, --audio, --video files. "
        "Negative subtracts a concept.",
    ),
    fusion: str = typer.Option(
        "mean",
        help="How several queries combine: mean (one fused vector), weighted, rrf or vote "
        "(merge separate result lists), hybrid (the mean list and the per-query lists merged by rank, "
        "and the re-ranker's with --rerank).",
    ),
    rerank: bool = typer.Option(False, "--rerank", help="Re-score the best max(k, 50) candidates with the "
                                "cross-attention re-ranker and keep k; the score shown is then the re-ranker's "
                                "(--json adds retrieval_score, the index's)."),
    reranker: Optional[Path] = typer.Option(None, "--reranker", help="A re-ranker checkpoint folder (from "
                                            "`xsearch train --reranker`) instead of the shipped one; implies "
                                            "--rerank."),
    mode: Optional[str] = typer.Option(
        None, "--mode", help="hybrid (vectors and words: text passages, words read by OCR, file names; fused by "
        "rank), vector or keyword. Default: hybrid when the collection has words indexed, else vector.",
    ),
    tag: Optional[str] = typer.Option(None, "--tag", help="Only files tagged with this (see `xsearch tag`)."),
    threshold: Optional[float] = typer.Option(None, help="Drop results with cosine score below this."),
    path_glob: Optional[str] = typer.Option(None, help="Only files matching this glob ('*.wav', '*/holiday/*')."),
    min_duration: Optional[float] = typer.Option(None, help="Only audio or video at least this long (s)."),
    max_duration: Optional[float] = typer.Option(None, help="Only audio or video at most this long (s)."),
    min_size: Optional[int] = typer.Option(None, min=0, max=MAX_INT64, help="Only files of at least this many bytes."),
    max_size: Optional[int] = typer.Option(None, min=0, max=MAX_INT64, help="Only files of at most this many bytes."),
    since: Optional[datetime] = typer.Option(None, help="Only files modified on or after this date."),
    until: Optional[datetime] = typer.Option(None, help="Only files modified before this date."),
    nprobe: Optional[int] = typer.Option(None, help="IVF lists to visit (recall vs speed)."),
    ef_search: Optional[int] = typer.Option(None, help="HNSW search breadth (recall vs speed)."),
    collection: Optional[str] = collection_option(),
    store_token: Optional[str] = store_token_option(),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Search by text, image or audio, towards images, audio or texts.

    Examples: xsearch search "a red circle" --to image;  xsearch search --image photo.jpg --to audio;
    xsearch search "sunset" --image beach.jpg --weight 0.7,0.3;  xsearch search "dog" "grass" -w 1,-0.5.
    """
    from xsearch.engine import Engine

    queries, weights = _queries(text or [], {"image": image, "audio": audio, "video": video}, weight)
    filters = _filters(path_glob, min_duration, max_duration, min_size, max_size, since, until, tag)
    params = {k_: v for k_, v in (("nprobe", nprobe), ("efSearch", ef_search)) if v is not None}
    reranked = rerank or reranker is not None
    engine = Engine(collection, device=device, reranker=reranker)
    if image or audio or video:  # a bridged pair embeds its vocabulary once, behind a progress bar, not mid-query
        from xsearch.cli.output import prepare_model

        prepare_model(engine, engine.stored_model(), quiet=as_json)
    def run(k_):
        return engine.search(queries, to=to, k=k_, weights=weights, fusion=fusion, threshold=threshold,
                             filters=filters, params=params, rerank=reranked, mode=mode)

    results, k = capped(run, k)
    _warn_short(results, k)
    fit = engine.model_fit()
    if as_json:
        print_results(queries, weights, fusion, results, rerank=engine.reranker().describe() if reranked else None,
                      model_fit=fit)
    else:
        from xsearch.cli.output import warn_model_fit

        warn_model_fit(fit)
        title = " + ".join(q.label for q in queries) + (" (re-ranked)" if reranked else "")
        for target, hits in results.items():
            print_hits(f"{title} → {target}", hits)


def capped(run, k: int | None):
    """``run(k)``; a ``k`` beyond what the collection holds is capped to that, with one note (scripts get all
    there is). Returns (results, the k used)."""
    from xsearch.core.errors import UsageError

    try:
        return run(k), k
    except UsageError as e:
        n, modality = e.params.get("n"), e.params.get("modality", "")
        if e.code != "usage.k_too_large" or not isinstance(n, int) or n < 1:
            raise
    note(f"note: -k {k} capped to {n}: the collection holds {n} {modality} file(s).")
    return run(n), n


def _queries(texts: list[str], files: dict[str, list[Path]], weight: str | None) -> tuple[list, list[float]]:
    """The queries (texts, then each modality's files) and one weight each; no query at all is a UsageError."""
    from xsearch.core.types import make_queries
    from xsearch.engine.checks import check_queries, parse_weights

    queries = check_queries(make_queries(texts, files))  # none at all: query.none, worded in cli/errors.py
    return queries, parse_weights(weight, len(queries))


def _filters(path_glob, min_duration, max_duration, min_size, max_size, since, until, tag):
    """The search's Filters from its options, durations and dates checked and turned into seconds."""
    from xsearch.core.types import Filters

    return Filters(path_glob, _seconds("--min-duration", min_duration), _seconds("--max-duration", max_duration),
                   min_size, max_size, _epoch(since), _epoch(until), tag=tag)


def print_results(queries, weights, fusion: str, results, rerank: dict | None = None,
                  model_fit: dict | None = None) -> None:
    """The one ``--json`` layout of `search` and `similar`:
    ``{"queries": [{"modality", "value"}], "weights": [...], "fusion": ..., "results": {target: [hit, ...]}}``
    (with the builtin model also ``"model_fit"``, whose ``message`` is non-empty when it does not know the files);
    re-ranked, also ``"rerank": {"id", "score", ...}`` and each hit's ``retrieval_score``."""
    out = {"queries": [{"modality": q.modality, "value": q.value} for q in queries], "weights": list(weights),
           "fusion": fusion}
    if rerank is not None:
        hybrid = fusion == "hybrid" and len(queries) > 1
        out["rerank"] = {**rerank, "retrieval_score": "the index's score",
                         "score": "hybrid rank fusion with the re-ranker's list" if hybrid
                         else "the re-ranker's (higher is better)"}
    if model_fit is not None:  # the builtin model: whether it knows these files (xsearch.engine.fit)
        out["model_fit"] = model_fit
    print_json({**out, "results": {t: [h.to_dict() for h in hits] for t, hits in results.items()}})


#: Epoch seconds a filter date is clamped to: the catalog stores modification times as signed 64-bit nanoseconds
#: (years 1677 to 2262), so an earlier or later date selects the same files as these bounds.
_EPOCH_RANGE = (-9.2e9, 9.2e9)


def _epoch(when: datetime | None) -> float | None:
    """A --since / --until date as epoch seconds (local time), clamped to what the catalog can compare."""
    if when is None:
        return None
    try:
        seconds = when.timestamp()
    except (OverflowError, OSError, ValueError):  # before 1970 or after 3000 on some platforms
        seconds = _EPOCH_RANGE[0] if when.year < 1970 else _EPOCH_RANGE[1]
    return min(max(seconds, _EPOCH_RANGE[0]), _EPOCH_RANGE[1])


def _seconds(flag: str, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        from xsearch.core.errors import UsageError

        raise UsageError(f"{flag} must be a finite number of seconds, 0 or more, not {value}", code="usage.bad_filter",
                         flag=flag, value=value)
    return value


def _warn_short(results, k: int | None) -> None:
    """An explicit -k that filters, the threshold or a smaller target modality cut short gets a note."""
    for target, hits in results.items():
        if k is not None and len(hits) < k:
            note(
                f"note: {len(hits)} {target} result(s), fewer than -k {k} (filters, threshold or fewer {target} files)."
            )


def _where(h) -> str:
    """Where in the file a hit is: a time span (audio, video: and which track matched), a passage, or nothing."""
    if h.end is not None:
        span = f"{h.offset:.1f}–{h.end:.1f}s"
        return f"{span} ({h.matched})" if h.matched else span
    from xsearch.core.errors import UsageError
    from xsearch.media.modalities import get

    try:
        return get(h.modality).where(h.offset)
    except UsageError:  # a track that is not a modality of its own: show the raw offset
        return f"{h.offset:g}"


def print_hits(title: str, hits) -> None:
    """A readable table: rank, score, where in the file, path (and a text snippet)."""
    from rich.table import Table

    console.print(plain(title), style="bold", soft_wrap=True)
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("at", justify="right")
    table.add_column("path", overflow="fold")
    for h in hits:
        at = _where(h)
        path = _short(h.path) + (f"  “{h.snippet[:80]}”" if h.snippet else "")
        if h.words:  # found by its words (OCR lines, passages, its name): which ones
            path += "  words: " + " | ".join(w["text"][:60] for w in h.words[:3])
        weak = h.weak is True  # below the model's calibrated relevance gap (xsearch.engine.relevance)
        table.add_row(str(h.rank), f"{h.score:.3f}" + ("?" if weak else " "), at, plain(path),
                      style="dim" if weak else None)
    if not hits:
        table.add_row("", "", "", "(no results)")
    console.print(table)
    if hits and all(h.weak is True for h in hits):
        note(f"nothing here looks like {title.split(' → ')[0]}: no result stands out from the rest of the collection "
             "(weak results are marked ?; see docs/methods.md#relevance)")
    elif any(h.weak is True for h in hits):
        note("? marks weak results: they do not stand out from the rest of the collection")


def _short(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def similar(
    path: Path = typer.Argument(..., help="An indexed file (or any media file) to find neighbours of."),
    to: Optional[str] = typer.Option(None, "--to", "-t", help="Target modality (default: the file's own)."),
    k: Optional[int] = typer.Option(None, "-k", help="Number of results (default: 10, or all there are)."),
    collection: Optional[str] = collection_option(),
    store_token: Optional[str] = store_token_option(),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
) -> None:
    """Find items similar to a file (uses its stored vectors when it is indexed)."""
    from xsearch.core.types import Query
    from xsearch.engine import Engine

    engine = Engine(collection)
    results, k = capped(lambda k_: engine.similar(path, to=to, k=k_), k)
    _warn_short(results, k)
    if as_json:
        print_results([Query(_modality(engine, path), str(path.expanduser().absolute()))], [1.0], "mean", results)
    else:
        for target, hits in results.items():
            print_hits(f"similar to {path} → {target}", hits)


def _modality(engine, path: Path) -> str:
    """The modality `similar` queried with: the indexed file's, else what the file is."""
    from xsearch.media import discover
    from xsearch.media.types import Skipped

    p = path.expanduser().absolute()
    row = engine.store().file(str(p))
    if row is not None:
        return row.modality
    found = next(iter(discover(p)), None)
    return found.modality if found is not None and not isinstance(found, Skipped) else "unknown"


def duplicates(
    modality: str = typer.Option("image", help="Which modality to scan: image, audio or text."),
    threshold: float = typer.Option(0.95, help="Cosine score at or above which two files are near-duplicates."),
    collection: Optional[str] = collection_option(),
    store_token: Optional[str] = store_token_option(),
    as_json: bool = typer.Option(False, "--json", help="Print pairs as JSON."),
) -> None:
    """List near-duplicate pairs of files in the collection."""
    from xsearch.core.errors import UsageError
    from xsearch.engine import Engine

    try:
        pairs = Engine(collection).duplicates(modality, threshold)
    except UsageError as e:
        if e.code != "usage.bad_target":
            raise
        raise UsageError(f"--modality {modality!r}: choose {e.params.get('choices', '')}",
                         code="usage.bad_modality", modality=modality) from None
    if as_json:
        print_json(pairs)
        return
    for p in pairs:
        say(f"{p['score']:.3f}  {_short(p['a'])}  ~  {_short(p['b'])}")
    note(f"{len(pairs)} near-duplicate pair(s) at cosine ≥ {threshold}")
