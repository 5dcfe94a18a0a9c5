"""`xsearch info` and `xsearch models`."""

from __future__ import annotations

from typing import Optional

import typer

from xsearch.cli.output import collection_option, console, print_json


def info(
    collection: Optional[str] = collection_option(),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Also load this model spec and describe it (dim, modalities, device, model_id)."
    ),
    device: Optional[str] = typer.Option(None, help="Device for --model."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Versions, device, FAISS GPU support, where data lives, the collection's contents and model."""
    from xsearch.engine import Engine
    from xsearch.paths import data_home

    engine = Engine(collection)
    out = engine.environment()
    path = engine.uri
    out["data_home"] = str(data_home())
    out["collection_path"] = str(path)
    out["collection"] = engine.stats() if engine.exists() else None
    if model:
        from xsearch.encoders.registry import load_encoder

        out["model"] = load_encoder(model, device).describe()
    if as_json:
        print_json(out)
        return
    v = out["versions"]
    console.print(" ".join(f"{k} {val}" for k, val in v.items()), highlight=False)
    gpu = f"cuda ({out['gpu']})" if out["gpu"] else "cpu"
    faiss_gpu = f"yes, {out['faiss_gpus']} GPU(s)" if out["faiss_gpus"] else (
        "built in, no GPU visible" if out["faiss_gpu_support"] else "no (faiss-cpu)")
    console.print(f"device: {gpu}   faiss GPU: {faiss_gpu}", highlight=False)
    console.print(f"data home: {out['data_home']}", highlight=False, markup=False)
    c = out["collection"]
    if c is None:
        console.print(f"collection: {path} (not created yet; `xsearch index <folder>` creates it)", highlight=False,
                      markup=False)
    else:
        console.print(f"collection: {c['path']}\n  model: {c['model_spec']}  ({c['model_id']})", highlight=False,
                      markup=False)
        for m, s in c["modalities"].items():
            console.print(f"  {m:5}: {s['files']} files, {s['items']} vectors, index {s['index']} "
                          f"({s['memory_bytes'] / 1e6:.1f} MB{', GPU' if s['gpu'] else ''})", highlight=False,
                          markup=False)
    if model:
        d = out["model"]
        console.print(f"model {d.get('spec')}: modalities {', '.join(d.get('modalities', []))}; dim "
                      f"{d.get('dim', d.get('spaces'))}; device {d.get('device')}; model_id {d.get('model_id')}"
                      + ("" if d.get("trained", True) else "; UNTRAINED (random weights)"), highlight=False,
                      markup=False)


def models(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List model specs: builtin, open_clip architectures and tags, CLAP, and combined pairs."""
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
        table.add_row(r["spec"], r["modalities"], r["about"])
    console.print(table)
