"""`xsearch info` and `xsearch models`."""

from __future__ import annotations

from typing import Optional

import typer

from xsearch.cli.output import collection_option, console, plain, print_json, say, store_token_option


def _not_created(engine) -> None:
    """None when there is no collection yet; raises when there is a damaged one (e.g. its manifest was lost)."""
    from xsearch.core.errors import CollectionError

    try:
        engine.store()
    except CollectionError as e:
        if e.code != "collection.missing":
            raise
    return None


def info(
    collection: Optional[str] = collection_option(),
    store_token: Optional[str] = store_token_option(),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Also load this model spec and describe it (dim, modalities, device, model_id)."
    ),
    device: Optional[str] = typer.Option(None, help="Device for --model."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Versions, device, FAISS GPU support, where data lives, the collection's contents and model."""
    from xsearch.core.paths import data_home
    from xsearch.engine import Engine
    from xsearch.media import modalities

    engine = Engine(collection)
    out = engine.environment()
    path = engine.uri
    out["data_home"] = str(data_home())
    out["collection_path"] = str(path)
    out["collection"] = engine.stats() if engine.exists() else _not_created(engine)
    from xsearch.encoders.runtimes import describe as runtime_info

    out["runtime"] = runtime_info()
    if model:
        from xsearch.encoders.registry import load_encoder

        out["model"] = load_encoder(model, device).describe()
    if as_json:
        print_json(out)
        return
    v = out["versions"]
    say(" ".join(f"{k} {val}" for k, val in v.items()))
    gpu = f"cuda ({out['gpu']})" if out["gpu"] else "cpu"
    faiss_gpu = f"yes, {out['faiss_gpus']} GPU(s)" if out["faiss_gpus"] else (
        "built in, no GPU visible" if out["faiss_gpu_support"] else "no (faiss-cpu)")
    say(f"device: {gpu}   faiss GPU: {faiss_gpu}")
    r = out["runtime"]
    say(f"runtime: {r['runtime']} ({r['chosen_by']}; machine default {r['default']}; "
        f"onnxruntime {'installed' if r['onnxruntime'] else 'not installed'}; exported models in {r['cache']})")
    say(f"data home: {out['data_home']}")
    c = out["collection"]
    if c is None:
        say(f"collection: {path} (not created yet; `xsearch index <folder>` creates it)")
    else:
        say(f"collection: {c['path']}")
        say(f"  model: {c['model_spec']}  ({c['model_id']})")
        fit = c.get("model_fit")
        if fit and fit.get("message"):
            say(f"  warning: {fit['message']}")
        elif fit:
            say(f"  model fit: the files checked ({fit['checked']}) are the generated world the builtin model knows")
        budgets = [f"memory {c['memory_budget_bytes'] / 1e6:,.0f} MB" if c.get("memory_budget_bytes") else "",
                   f"latency {c['latency_budget_ms']:g} ms" if c.get("latency_budget_ms") else ""]
        if any(budgets):
            say(f"  index budget: {', '.join(b for b in budgets if b)}")
        for m, s in c["modalities"].items():
            owner = modalities.owner(m)  # a track of another modality's files: "the sound of the videos"
            what = (f"the {modalities.track(m).matched or m} of the {owner.label}s, {s['items']} vectors"
                    if owner is not None and owner.name != m else f"{s['files']} files, {s['items']} vectors")
            say(f"  {m:5}: {what}, index {s['index']} "
                f"({s['memory_bytes'] / 1e6:.1f} MB{', GPU' if s['gpu'] else ''})")
            _say_index_choice(s)
        tags = c.get("tags") or {}
        if tags:
            shown = ", ".join(f"{t} {n}" for t, n in list(tags.items())[:20])
            more = f", ... {len(tags) - 20} more (--json lists all)" if len(tags) > 20 else ""
            say(f"  tags: {len(tags)} (files per tag: {shown}{more})")
        words = c.get("words") or {}
        if words or c.get("text_tracks"):  # the keyword index: OCR lines, passages, names
            on = ", ".join(c.get("text_tracks") or []) or "none"
            say(f"  words (keyword index; opt-in tracks on: {on}): "
                + ", ".join(f"{t} {w['lines']} lines in {w['files']} files" for t, w in sorted(words.items())))
    if model:
        d = out["model"]
        say(f"model {d.get('spec')}: modalities {', '.join(d.get('modalities', []))}; dim "
            f"{d.get('dim', d.get('spaces'))}; device {d.get('device')}; model_id {d.get('model_id')}"
            + ("" if d.get("trained", True) else "; UNTRAINED (random weights)"))
        for part in [d] if "towers" in d else [d.get("vision") or {}, d.get("audio") or {}]:
            if part.get("towers"):  # what each tower actually runs on, after any fallback to torch
                say(f"  towers of {part.get('spec')}: " + ", ".join(f"{t} on {r}" for t, r in part["towers"].items()))


def _say_index_choice(s: dict) -> None:
    """Bytes per vector resident and on disk, expected recall and why this index type (index/local/budget.py)."""
    if not s.get("vectors"):
        return
    n = int(s["vectors"])
    choice = s.get("choice") or {}
    line = (f"         {s['memory_bytes'] / n:,.0f} B/vector resident, "
            f"{s.get('disk_bytes', s['memory_bytes']) / n:,.0f} B/vector on disk")
    if choice.get("expected_recall") is not None:
        line += f", expected recall@10 ~{choice['expected_recall']:.2f}"
    if choice.get("expected_p50_ms") is not None:
        p50 = float(choice["expected_p50_ms"])
        line += f", p50 ~{p50:.2g} ms" if p50 >= 0.01 else ", p50 < 0.01 ms"
    say(line)
    if choice.get("reason"):
        say(f"         why: {choice['reason']}")
    if choice.get("max_n"):
        say(f"         re-chosen past {choice['max_n']:,} vectors")


def models(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List model specs: builtin, open_clip architectures and tags, CLAP, and combined pairs.

    builtin (offline, shipped) knows only the generated world of shapes and synthetic sounds. For your own
    photos and recordings: xsearch index PATH --model
    openclip:ViT-B-32:laion2b_s34b_b79k+clap:laion/clap-htsat-unfused (downloaded once, about 1.2 GB, then offline).
    """
    from rich.table import Table

    from xsearch.encoders.registry import list_models

    rows = list_models()
    if as_json:
        print_json(rows)
        return
    table = Table(show_edge=False)
    for col in ("spec", "modalities", "about"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(plain(r["spec"]), plain(r["modalities"]), plain(r["about"]))
    console.print(table)
