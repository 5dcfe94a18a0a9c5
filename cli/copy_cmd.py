"""`xsearch copy SRC DST`: move a collection between stores (a local directory, milvus-lite, a Milvus server)."""

from __future__ import annotations

from typing import Optional

import typer

from xsearch.cli.output import note, print_json, progress_bar, say, store_token_option

WHERE = "a name under $XSEARCH_HOME, a directory, milvus-lite:PATH.db or milvus://HOST:PORT/NAME"


def copy(
    source: str = typer.Argument(..., help=f"Collection to copy: {WHERE}."),
    destination: str = typer.Argument(..., help=f"Where to copy it: {WHERE}."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a destination that already holds files."),
    index_factory: str = typer.Option(
        "auto", help="Index type of the destination (FAISS factory string, e.g. 'HNSW32'; 'auto' picks by size)."),
    wait: float = typer.Option(0.0, help="Seconds to wait for another writer of the destination."),
    store_token: Optional[str] = store_token_option(),
    as_json: bool = typer.Option(False, "--json", help="Print what was copied as JSON."),
) -> None:
    """Copy a collection to another store, vectors and words included (nothing is embedded or read again); the
    model carries over.

    Examples: xsearch copy photos milvus-lite:photos.db;  xsearch copy milvus-lite:photos.db
    milvus://milvus.lan:19530/photos;  xsearch copy milvus://milvus.lan:19530/photos ./photos-local --replace
    """
    from xsearch.index.copy import copy_store

    with progress_bar("copying", disable=as_json) as bar:
        task = bar.add_task("copy", total=None)
        done = copy_store(source, destination, replace=replace, factory=index_factory, wait_s=wait,
                          on_plan=lambda n: bar.update(task, total=n), on_progress=lambda n: bar.advance(task, n))
    if as_json:
        print_json(done)
        return
    items = ", ".join(f"{n} {t}" for t, n in sorted(done["items"].items())) or "none"
    lines = ", ".join(f"{n} {t}" for t, n in sorted(done["lines"].items()))
    say(f"copied {done['source']} to {done['destination']}: {done['files']} file(s), vectors: {items}"
        + (f", lines of words: {lines}" if lines else "") + f" ({done['seconds']:.1f}s)")
    if done["words_left"]:
        left = ", ".join(f"{n} {t}" for t, n in sorted(done["words_left"].items()))
        note(f"note: {done['destination']} has no keyword index: the words ({left} lines) were left behind; "
             "keyword search and OCR need milvus-lite, Milvus 2.5+ or a local collection (docs/ocr.md)")
