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
        None, help="Comma list of QUERY:GALLERY, e.g. text:image,image:audio (default: all six, and the three "
        "X:video ones when the world has videos); text:video, image:video, audio:video evaluate the videos only."
    ),
    split: Optional[str] = typer.Option(
        None, help="Manifest split to evaluate (default: test when present, else all)."
    ),
    aligner: str = typer.Option(
        "model",
        help="'model' (the model given by --model), 'cca' or 'pls' (CCA / partial least squares on frozen unimodal "
        "features, fitted on the train split), or a comma list such as model,cca,pls: one table with every aligner "
        "beside the others per direction (--json: a list of reports).",
    ),
    relevance: str = typer.Option(
        "auto", help="auto (attributes when every record has them, else group), group or attributes."
    ),
    index_factory: str = typer.Option("Flat", help="FAISS factory string used for the gallery index."),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:N."),
    videos: Optional[bool] = typer.Option(
        None, "--videos/--no-videos",
        help="Also evaluate text→video, image→video and audio→video on the world's videos (videos.jsonl beside the "
        "manifest, from `xsearch world make --videos N`): they are indexed into a temporary collection and a hit is "
        "the right video at a moment overlapping the scene. Default: when videos.jsonl is there.",
    ),
    channels: bool = typer.Option(
        False, "--channels",
        help="Also the search channels side by side: vector, keyword and hybrid (the default of `xsearch search`) "
        "Recall@K for each direction whose query is text (and text→text, a paraphrase against the captions), "
        "through a temporary collection of the gallery (docs/ocr.md). --json: under \"channels\".",
    ),
    plot: Optional[Path] = typer.Option(None, help="Write recall@K curves to this PNG (matplotlib)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Recall@1/5/10, mAP and median rank per direction, with the chance level beside each.

    On a world with videos (`xsearch world make --videos N`), also text→video, image→video and audio→video:
    Recall@K where a hit is the right video AND a moment overlapping the scene, the top video alone
    (video R@1), and the mean temporal IoU of the top moment (at most window/scene = 0.5 with 2 s windows and
    4 s scenes).
    """
    from xsearch.evaluation.metrics import DEFAULT_KS
    from xsearch.evaluation.runner import parse_aligners, parse_directions, run_evaluations

    aligners = parse_aligners(aligner)
    check_plot_path(plot)  # before the run, not after it
    check_channels(channels, aligners, directions)
    report_manifest_problems(manifest)
    dirs, video_dirs = split_directions(directions, manifest, videos, "model" if "model" in aligners else aligners[0])
    ks = sorted(set(DEFAULT_KS) | (set(PLOT_KS) if plot else set()))
    reports, extra = [], {}  # extra: the model's reports beside the main table ("video", "channels")
    with progress_bar("embedding", disable=as_json) as bar:
        task = bar.add_task("embed", total=None)
        if dirs is None or dirs:
            reports = run_evaluations(manifest, aligners, model=model, device=device, split=split,
                                      directions=dirs if dirs is None else parse_directions(",".join(dirs)),
                                      relevance=relevance, factory=index_factory, ks=ks,
                                      on_item=lambda: bar.advance(task), log=None if as_json else note)
        if video_dirs:
            from xsearch.evaluation.video import run_video_evaluation

            extra["video"] = run_video_evaluation(manifest, model=model, device=device, split=split,
                                                  directions=video_dirs, on_item=lambda: bar.advance(task),
                                                  log=None if as_json else note)
        if channels:
            from xsearch.evaluation.channels import run_channel_evaluation

            extra["channels"] = run_channel_evaluation(
                manifest, model=model, device=device, split=split,
                directions=None if dirs is None else parse_directions(",".join(dirs)) if dirs else [],
                relevance=relevance, ks=DEFAULT_KS, on_item=lambda: bar.advance(task))
    show(reports, extra, aligners, plot, as_json)


def show(reports, extra: dict, aligners: list[str], plot: Optional[Path], as_json: bool) -> None:
    """Print what `xsearch eval` measured: the main table (or JSON), then the model's extra reports."""
    for line in dict.fromkeys(line for r in reports for line in r.skipped):  # each file once, whatever the aligners
        note(f"manifest: skipped {line}")
    if plot and reports:
        write_plot(reports, plot)
    if as_json:
        outs = [r.to_dict() for r in reports] or [{}]
        model_out = outs[next((i for i, r in enumerate(reports) if r.aligner == "model"), 0)]
        model_out.update({key: r.to_dict() for key, r in extra.items()})  # the model's: beside its report
        print_json(outs[0] if len(aligners) == 1 else outs)
    else:
        if reports:
            print_report(reports)
        for key, r in extra.items():
            (print_video_report if key == "video" else print_channel_report)(r)
        if plot and reports:
            note(f"wrote {plot}")


def check_channels(channels: bool, aligners: list[str], directions: Optional[str]) -> None:
    """--channels needs the model and a paired direction whose query is text (before the run, not after it)."""
    from xsearch.core.errors import UsageError

    if not channels:
        return
    if "model" not in aligners:
        raise UsageError("--channels measures the model's search channels: use it with --aligner model.")
    pairs = [part.strip().partition(":") for part in (directions or "").split(",")]
    if directions and not any(q == "text" and g in ("image", "audio", "text") for q, _, g in pairs):
        raise UsageError(f"--channels compares search channels of a text query: --directions {directions!r} has "
                         "no direction whose query is text (text:image, text:audio).")


def check_plot_path(plot: Optional[Path]) -> None:
    """A --plot target that cannot be written is a usage error now rather than after the whole evaluation."""
    from xsearch.core.errors import UsageError

    if plot is None:
        return
    if plot.is_dir():
        raise UsageError(f"--plot {plot} is a folder; give the name of the PNG to write.")
    folder = plot.expanduser().absolute().parent
    if not folder.is_dir():
        raise UsageError(f"--plot {plot}: the folder {folder} does not exist.")


def report_manifest_problems(manifest: Path, shown: int = 5) -> None:
    """Say which manifest lines were skipped (not JSON, a file missing or outside the manifest's folder, …)."""
    from xsearch.pairs import load_manifest

    problems = load_manifest(manifest).problems
    for p in problems[:shown]:
        note(f"manifest: skipped {p}")
    if len(problems) > shown:
        note(f"manifest: {len(problems) - shown} more problem line(s) skipped")


def split_directions(text: Optional[str], manifest: Path, videos: Optional[bool],
                     aligner: str) -> tuple[Optional[list[str]], list[tuple[str, str]]]:
    """(paired directions as QUERY:GALLERY strings, or None for all six; video directions to evaluate).

    Video directions are the X:video ones named in ``text``, or all three when none are named and the world has
    videos (``--videos`` insists on them; ``--no-videos`` leaves them out)."""
    from xsearch.core.errors import UsageError
    from xsearch.evaluation.video import QUERY_MODALITIES, VIDEO_DIRECTIONS, has_videos, videos_file_for

    paired: Optional[list[str]] = None
    video_dirs: list[tuple[str, str]] = []
    if text:
        paired = []
        for part in (p.strip() for p in text.split(",")):
            q, _, g = part.partition(":")
            if g == "video" or q == "video":
                if q not in QUERY_MODALITIES or g != "video":
                    raise UsageError(f"bad direction {part!r}: videos are evaluated as galleries of "
                                     "text:video, image:video or audio:video.")
                video_dirs.append((q, g))
            else:
                paired.append(part)
    named = bool(video_dirs)
    if videos is False:
        video_dirs = []
    elif not video_dirs and (videos or (not text and has_videos(manifest))):
        video_dirs = list(VIDEO_DIRECTIONS)
    if paired == [] and not video_dirs:
        raise UsageError("no direction left to evaluate (--no-videos leaves out the X:video ones).")
    if video_dirs and not has_videos(manifest):
        where = videos_file_for(manifest)
        what = (f"bad direction {','.join(f'{q}:{g}' for q, g in video_dirs)!r}" if named else "--videos")
        raise UsageError(f"{what}: there is no {where.name} beside {manifest.name} ({where.parent}); make the "
                         "world with `xsearch world make DIR --videos N`.")
    explicit = named or videos is True
    if video_dirs and aligner != "model":
        if explicit:
            raise UsageError("video directions need --aligner model (the CCA baseline does not index videos).")
        note("video directions left out: --aligner cca does not index videos")
        video_dirs = []
    return paired, video_dirs


def print_report(reports) -> None:
    """One table: each direction with one row per aligner (a single report, or a list of them on one split)."""
    from rich.table import Table

    reports = reports if isinstance(reports, list) else [reports]
    report, several = reports[0], len(reports) > 1
    gallery = ", ".join(f"{n} {m}" for m, n in report.gallery_size.items() if n)
    table = Table(title=f"{' / '.join(r.model for r in reports)} on {Path(report.manifest).name} "
                        f"[{report.split or 'all'}] (gallery: {gallery}; relevance: {report.relevance})",
                  title_justify="left", show_edge=False)
    table.add_column("direction", no_wrap=True)
    if several:
        table.add_column("aligner", no_wrap=True)
    for col in ("R@1 (chance)", "R@5", "R@10 (chance)", "mAP", "MedR", "R@1/chance"):
        table.add_column(col, justify="right", no_wrap=True)
    names = list(dict.fromkeys(r.name for rep in reports for r in rep.results))
    for i, name in enumerate(names):
        if i and several:
            table.add_section()
        rows = [(rep.aligner, r) for rep in reports for r in rep.results if r.name == name]
        for j, (aligner, r) in enumerate(rows):
            m, c = r.metrics, r.chance
            table.add_row(r.name if j == 0 else "", *([aligner] if several else []),
                          f"{m['R@1']:.3f} ({c['R@1']:.3f})", f"{m['R@5']:.3f}",
                          f"{m['R@10']:.3f} ({c['R@10']:.3f})", f"{m['mAP']:.3f}", f"{m['median_rank']:.0f}",
                          f"{m['R@1'] / c['R@1']:.0f}x")
    console.print(table)


def print_channel_report(report) -> None:
    """Recall@K of the vector, keyword and hybrid channels, one row per channel under each direction."""
    from rich.table import Table

    gallery = ", ".join(f"{n} {m}" for m, n in report.gallery_size.items() if n)
    table = Table(title=f"{report.model}: search channels [{report.split or 'all'}] (gallery: {gallery}; "
                        f"lists {report.depth} deep; hybrid is `xsearch search`'s default)",
                  title_justify="left", show_edge=False)
    table.add_column("direction", no_wrap=True)
    table.add_column("channel", no_wrap=True)
    ks = sorted({int(k[2:]) for r in report.results for m in r.metrics.values() for k in m if k.startswith("R@")})
    for k in ks:
        table.add_column(f"R@{k}", justify="right", no_wrap=True)
    for i, r in enumerate(report.results):
        if i:
            table.add_section()
        for j, (channel, m) in enumerate(r.metrics.items()):
            table.add_row(r.name if j == 0 else "", channel, *(f"{m[f'R@{k}']:.3f}" if f"R@{k}" in m else "-"
                                                                for k in ks))
    console.print(table)


def print_video_report(report) -> None:
    from rich.table import Table

    table = Table(title=f"{report.model} on {Path(report.videos_file).name} [{report.split or 'all'}] (gallery: "
                        f"{report.n_videos} videos; {report.n_scenes} scenes queried; {report.window_s:g} s windows "
                        f"every {report.hop_s:g} s; hit: the right video at a moment overlapping the scene)",
                  title_justify="left", show_edge=False)
    table.add_column("direction", no_wrap=True)
    for col in ("R@1 (chance)", "R@5", "R@10 (chance)", "video R@1", "mIoU@1"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in report.results:
        m, c = r.metrics, r.chance
        table.add_row(r.name, f"{m['R@1']:.3f} ({c['R@1']:.3f})", f"{m['R@5']:.3f}",
                      f"{m['R@10']:.3f} ({c['R@10']:.3f})", f"{m['video_R@1']:.3f}", f"{m['mIoU@1']:.3f}")
    console.print(table)


def write_plot(reports, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reports = reports if isinstance(reports, list) else [reports]
    report = reports[0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rep, marker in zip(reports, "osD^v"):
        for r in rep.results:
            ks = sorted(int(k[2:]) for k in r.metrics if k.startswith("R@"))
            label = f"{rep.aligner} {r.name}" if len(reports) > 1 else r.name
            line, = ax.plot(ks, [r.metrics[f"R@{k}"] for k in ks], marker=marker, label=label)
            ax.plot(ks, [r.chance[f"R@{k}"] for k in ks], linestyle=":", color=line.get_color())
    ax.set_xscale("log")
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{' / '.join(r.model for r in reports)} ({report.split or 'all'}); dotted: chance")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
