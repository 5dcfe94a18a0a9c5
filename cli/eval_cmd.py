"""`xsearch eval`: retrieval quality of a model (or the CCA baseline) on a manifest, per direction."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from xsearch.cli.output import console, note, print_json, progress_bar

PLOT_KS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50)


def eval_(
    manifest: Path = typer.Option(
        ..., "--manifest", "-m", help="Paired-data manifest, JSONL (e.g. a generated world's manifest.jsonl)."
    ),
    model: str = typer.Option("builtin", "--model", help="Model spec to evaluate (see `xsearch models`)."),
    directions: Optional[str] = typer.Option(
        None, help="Comma list of QUERY:GALLERY, e.g. text:image,image:audio (default: all six)."
    ),
    split: Optional[str] = typer.Option(
        None, help="Manifest split to evaluate (default: test when present, else all)."
    ),
    aligner: str = typer.Option(
        "model",
        help="'model' (the contrastive model) or 'cca' (CCA on frozen unimodal features, fitted on the train split).",
    ),
    relevance: str = typer.Option(
        "auto", help="auto (attributes when every record has them, else group), group or attributes."
    ),
    index_factory: str = typer.Option("Flat", help="FAISS factory string used for the gallery index."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N."),
    plot: Optional[Path] = typer.Option(None, help="Write recall@K curves to this PNG (matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Recall@1/5/10, mAP and median rank per direction, with the chance level beside each."""
    from xsearch.evaluation.metrics import DEFAULT_KS
    from xsearch.evaluation.runner import parse_directions, run_evaluation

    dirs = parse_directions(directions)
    ks = sorted(set(DEFAULT_KS) | (set(PLOT_KS) if plot else set()))
    with progress_bar("embedding", disable=as_json) as bar:
        task = bar.add_task("embed", total=None)
        report = run_evaluation(manifest, model=model, device=device, aligner=aligner, split=split, directions=dirs,
                                relevance=relevance, factory=index_factory, ks=ks,
                                on_item=lambda: bar.advance(task), log=None if as_json else note)
    if plot:
        write_plot(report, plot)
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report)
        if plot:
            note(f"wrote {plot}")


def print_report(report) -> None:
    from rich.table import Table

    gallery = ", ".join(f"{n} {m}" for m, n in report.gallery_size.items() if n)
    table = Table(title=f"{report.model} on {Path(report.manifest).name} [{report.split or 'all'}] "
                        f"(gallery: {gallery}; relevance: {report.relevance})", title_justify="left", show_edge=False)
    table.add_column("direction", no_wrap=True)
    for col in ("R@1 (chance)", "R@5", "R@10 (chance)", "mAP", "MedR", "R@1/chance"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in report.results:
        m, c = r.metrics, r.chance
        table.add_row(r.name, f"{m['R@1']:.3f} ({c['R@1']:.3f})", f"{m['R@5']:.3f}",
                      f"{m['R@10']:.3f} ({c['R@10']:.3f})", f"{m['mAP']:.3f}", f"{m['median_rank']:.0f}",
                      f"{m['R@1'] / c['R@1']:.0f}x")
    console.print(table)


def write_plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in report.results:
        ks = sorted(int(k[2:]) for k in r.metrics if k.startswith("R@"))
        line, = ax.plot(ks, [r.metrics[f"R@{k}"] for k in ks], marker="o", label=r.name)
        ax.plot(ks, [r.chance[f"R@{k}"] for k in ks], linestyle=":", color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{report.model} ({report.split or 'all'}); dotted: chance")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
