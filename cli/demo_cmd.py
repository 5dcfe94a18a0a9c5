"""`xsearch demo`: generate a small world, index it with the builtin model, search it three ways, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from xsearch.cli.output import console, note, print_json, progress_bar

DEMO_SEED = 2026  # not the training world's seed: every demo item is new to the model


def demo(
    directory: Optional[Path] = typer.Option(
        None, "--dir", help="Where to put the demo world and collection (default: $XSEARCH_HOME/demo)."
    ),
    n: int = typer.Option(400, "--n", min=1, max=1_000_000,
                          help="Item groups in the demo world (each: an image, a sound, a caption file)."),
    k: int = typer.Option(5, "-k", min=1, help="Results shown per search (at most --n)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON."),
) -> None:
    """Index a generated world and show text→image, image→audio and audio→image search, then the eval table.

    Queries come from the held-out test split: colour–shape combinations the builtin model never saw in training.
    """
    from xsearch.core.paths import data_home
    from xsearch.core.types import Query
    from xsearch.engine import Engine
    from xsearch.evaluation.runner import run_evaluation
    from xsearch.world.generate import is_world, make_world, world_info

    root = (directory or data_home() / "demo").expanduser().absolute()
    world = root / "world"
    if not (is_world(world) and world_info(world).get("n") == n and world_info(world).get("seed") == DEMO_SEED):
        with progress_bar("generating world", disable=as_json) as bar:
            task = bar.add_task("world", total=n)
            make_world(
                world,
                n,
                DEMO_SEED,
                overwrite=is_world(world),
                progress=lambda done, total: bar.update(task, completed=done),
            )
    records = [json.loads(line) for line in (world / "manifest.jsonl").read_text().splitlines() if line.strip()]
    caption_of = {}
    for r in records:
        for key in ("image", "audio", "text_file"):
            caption_of[str((world / r[key]).absolute())] = r["text"][0]

    engine = Engine(root / "collection", model="builtin")
    with progress_bar("indexing", disable=as_json) as bar:
        task = bar.add_task("index", total=None)
        report = engine.index_folder(world, rebuild=True, on_plan=lambda t: bar.update(task, total=t),
                                     on_progress=lambda d: bar.advance(task, d))
    if not as_json:
        note(f"indexed {report.embedded} files of {world} into {root / 'collection'} ({report.seconds:.1f}s)")

    test = [r for r in records if r["split"] == "test"] or records
    q_text, q_image, q_audio = test[0], test[1 % len(test)], test[2 % len(test)]
    searches = [
        ("text → image", Query("text", q_text["text"][0]), "image", q_text),
        ("image → audio", Query("image", str(world / q_image["image"])), "audio", q_image),
        ("audio → image", Query("audio", str(world / q_audio["audio"])), "image", q_audio),
    ]
    out = {"world": str(world), "collection": str(root / "collection"), "searches": []}
    for title, query, target, source in searches:
        hits = engine.search([query], to=target, k=min(k, n))[target]  # a tiny world holds fewer than k files
        want = source["text"][0]
        rows = [{"rank": h.rank, "score": round(h.score, 3), "path": h.path, "caption": caption_of.get(h.path, "?"),
                 "match": caption_of.get(h.path) == want} for h in hits]
        out["searches"].append({"title": title, "query": query.value, "query_caption": want, "results": rows})
        if not as_json:
            _print_search(title, query, want, rows)

    with progress_bar("evaluating", disable=as_json) as bar:
        task = bar.add_task("eval", total=None)
        ev = run_evaluation(world / "manifest.jsonl", model="builtin", on_item=lambda: bar.advance(task))
    out["eval"] = ev.to_dict()
    if as_json:
        print_json(out)
        return
    from xsearch.cli.eval_cmd import print_report

    print_report(ev)
    _print_handoff(root / "collection", _suggestions(test, searches))


def _suggestions(test: list[dict], shown: list) -> list[str]:
    """Captions of held-out items that are in the collection (not the ones already shown): each query has its
    own picture among the results, from a colour–shape combination the model never saw in training."""
    used = {s[3]["text"][0] for s in shown}
    out = []
    for r in test:
        if r["text"][0] not in used and r["text"][0] not in out:
            out.append(r["text"][0])
        if len(out) == 2:
            break
    return out


def command_name() -> str:
    """How to type the `xsearch` that is running now: its bare name when the shell finds this very program on
    PATH, else its full path (after `make demo`, `.venv/bin/xsearch` is not on PATH until the venv is activated)."""
    import os
    import shutil
    import sys

    here = Path(sys.executable).parent / "xsearch"
    found = shutil.which("xsearch")
    if found and here.exists() and os.path.realpath(found) == os.path.realpath(here):
        return "xsearch"
    if here.exists():
        try:
            return os.path.relpath(here) if not os.path.relpath(here).startswith("..") else str(here)
        except ValueError:
            return str(here)
    return "xsearch"


def _print_handoff(collection: Path, queries: list[str]) -> None:
    import shlex

    cmd, where = command_name(), shlex.quote(str(collection))
    lines = ["", "Try your own (these captions describe items in the collection; their colour–shape combinations "
             "were never seen in training):"]
    lines += [f"  {cmd} search {shlex.quote(q)} --to image -c {where}" for q in queries]
    lines += [f"  {cmd} search {shlex.quote(queries[0] if queries else 'a red circle')} --to audio -c {where}",
              "Or search it in your browser (text, or drop a picture or a sound onto the page):",
              f"  {cmd} serve -c {where}      # then open http://127.0.0.1:8000/"]
    if cmd != "xsearch":
        lines.append(f"(or run `source {Path(cmd).parent}/activate` first, then type plain `xsearch`)")
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _print_search(title: str, query, want: str, rows: list[dict]) -> None:
    from rich.table import Table

    shown = want if query.modality == "text" else f"{Path(query.value).name}  (it shows: {want})"
    table = Table(title=f"{title}: {shown}", title_justify="left", show_edge=False)
    for col in ("#", "score", "file", "its caption", ""):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["rank"]), f"{r['score']:.3f}", Path(r["path"]).name, r["caption"], "✓" if r["match"] else ""
        )
    console.print(table)
    console.print()
