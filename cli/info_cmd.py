"""`xsearch info` and `xsearch models`."""

from __future__ import annotations

from typing import Optional

import typer

from xsearch.cli.output import collection_option, console, milvus_token_option, plain, print_json, say


def info(
    collection: Optional[str] = collection_option(),
    milvus_token: Optional[str] = milvus_token_option(),
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
    say(" ".join(f"{k} {val}" for k, val in v.items()))
    gpu = f"cuda ({out['gpu']})" if out["gpu"] else "cpu"
    faiss_gpu = f"yes, {out['faiss_gpus']} GPU(s)" if out["faiss_gpus"] else (
        "built in, no GPU visible" if out["faiss_gpu_support"] else "no (faiss-cpu)")
    say(f"device: {gpu}   faiss GPU: {faiss_gpu}")
    say(f"data home: {out['data_home']}")
    c = out["collection"]
    if c is None:
        say(f"collection: {path} (not created yet; `xsearch index <folder>` creates it)")
    else:
        say(f"collection: {c['path']}")
        say(f"  model: {c['model_spec']}  ({c['model_id']})")
        for m, s in c["modalities"].items():
            say(f"  {m:5}: {s['files']} files, {s['items']} vectors, index {s['index']} "
                f"({s['memory_bytes'] / 1e6:.1f} MB{', GPU' if s['gpu'] else ''})")
    if model:
        d = out["model"]
        say(f"model {d.get('spec')}: modalities {', '.join(d.get('modalities', []))}; dim "
            f"{d.get('dim', d.get('spaces'))}; device {d.get('device')}; model_id {d.get('model_id')}"
            + ("" if d.get("trained", True) else "; UNTRAINED (random weights)"))


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
        table.add_row(plain(r["spec"]), plain(r["modalities"]), plain(r["about"]))
    console.print(table)
