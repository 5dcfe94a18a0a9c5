"""`xsearch world ...`: the generated tri-modal world."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from xsearch.cli.output import err_console, print_json, say

app = typer.Typer(help="Generate the synthetic tri-modal world (images, captions, sounds).", no_args_is_help=True)


@app.command("make")
def make(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="New or empty folder to write the world into.")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Number of item groups (an image, a sound, captions).")]
    = 2000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed gives byte-identical files.")] = 0,
    captions: Annotated[int, typer.Option(min=1, help="Captions per group (the first is the canonical one).")] = 5,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a world previously written to DIR.")] = False,
    videos: Annotated[int, typer.Option("--videos", min=0, help="Also write this many short mp4 videos stitched from "
                                        "the groups' scenes, with their ground truth in videos.jsonl.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary instead of one line.")] = False,
) -> None:
    """Write a generated world: paired pictures, sounds and captions drawn from six attributes.

    Every group has a colour, shape, size, count (1-4), position and background. DIR receives, per group:

    \b
      image/<id>.png   128x128 picture
      audio/<id>.wav   2 s, 16 kHz mono sound
      text/<id>.txt    the canonical caption

    and manifest.jsonl with one record per group (split, files, captions, attributes).

    With --videos N, also video/<id>.mp4: each strings 3-5 groups' scenes of 4 s (the picture held still at
    2 fps, the 2 s sound played twice; H.264 + AAC), and videos.jsonl gives every scene's span in seconds,
    group, split, captions and attributes (the ground truth `xsearch eval --videos` scores moments against).

    DIR is both training data for `xsearch train` and a collection for `xsearch index`.
    The test split holds only (colour, shape) pairs that train and val never see.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from xsearch.world import make_world, world_info

    started = time.perf_counter()
    with Progress(
        TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=True, disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("world", total=n + videos)
        manifest = make_world(
            directory, n, seed, captions_per_group=captions, overwrite=overwrite, videos=videos,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    seconds = time.perf_counter() - started
    root = manifest.parent
    info = world_info(root)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    if json_out:
        print_json({
            "directory": str(root), "manifest": str(manifest), "groups": n, "seed": seed,
            "captions_per_group": captions, "splits": info["splits"], "bytes": size, "seconds": round(seconds, 2),
            **({"videos": videos} if videos else {}),
        })
        return
    splits = ", ".join(f"{name} {count}" for name, count in info["splits"].items())
    with_videos = f" and {videos} videos" if videos else ""
    say(f"wrote {n} groups ({splits}){with_videos} to {root} in {seconds:.1f} s, {size / 1e6:.1f} MB")


@app.command("vocab")
def vocab(
    out: Annotated[Path, typer.Argument(metavar="FILE", help="Text file to write (one entry per line).")],
) -> None:
    """Write the world's text vocabulary: the canonical caption of every attribute combination.

    Use it to join two separately trained models through text:
    --model 'builtin:<image-text ckpt>+builtin:<audio-text ckpt>+bridge:FILE'.
    """
    from xsearch.core.errors import UsageError, XsearchError
    from xsearch.world import vocabulary

    out = out.expanduser()
    if out.is_dir():
        raise UsageError(f"{out} is a folder; give the name of the file to write", code="usage.is_folder",
                         path=str(out))
    entries = vocabulary()
    try:
        out.write_text("# xsearch generated-world vocabulary: canonical captions of all attribute combinations\n"
                       + "\n".join(entries) + "\n", encoding="utf-8")
    except OSError as e:
        raise XsearchError(f"cannot write {out}: {e.strerror or e}", code="io.write_failed", path=str(out)) from None
    say(f"wrote {len(entries)} entries to {out}")
