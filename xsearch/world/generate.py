"""Write a world to disk: ``image/<id>.png``, ``audio/<id>.wav``, ``text/<id>.txt``, ``manifest.jsonl``.

With ``videos=N`` it also holds ``video/<id>.mp4``: N short videos stitched from the groups' scenes, and
``videos.jsonl``, their ground truth (scene spans, groups, captions, attributes; see ``xsearch.world.video``).
They stay out of ``manifest.jsonl``, whose records are the paired training data.

The folder is both a paired-data manifest for training and a tri-modal media collection for indexing. It is
built in a hidden sibling folder and renamed into place, so a crash never leaves half a world behind; a
``world.json`` marker tells a previous world apart from a folder that must not be touched.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from xsearch.core.errors import XsearchError
from xsearch.world.groups import SPLITS, Group, sample_groups
from xsearch.world.image import render_image
from xsearch.world.sound import render_audio, write_audio
from xsearch.world.text import captions
from xsearch.world.video import VIDEO_DIR, VIDEOS_NAME, available_codec, plan_videos, video_settings

MANIFEST_NAME = "manifest.jsonl"
MARKER_NAME = "world.json"
MARKER_FORMAT = "xsearch-world"
MARKER_VERSION = 1
_WORLD_ENTRIES = frozenset({"image", "audio", "text", VIDEO_DIR, VIDEOS_NAME, MANIFEST_NAME, MARKER_NAME})
_SERIAL_BELOW = 64  # groups; fewer are not worth starting worker processes for
_SERIAL_BELOW_VIDEOS = 8  # videos (each takes ~0.3 s to render and encode)


class WorldError(XsearchError):
    """A world could not be written where it was asked to go."""


def make_world(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    *,
    captions_per_group: int = 5,
    test_fraction: float = 0.15,
    val_fraction: float = 0.1,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    videos: int = 0,
) -> Path:
    """Generate ``n`` groups into ``out_dir`` and return the path of its ``manifest.jsonl``.

    ``out_dir`` must be new, empty, or (with ``overwrite=True``) a previous world. Output is byte-identical for
    the same ``seed``, ``n`` and fractions, whatever ``workers`` is. ``progress(done, total)`` is called as
    groups (then videos) are written. ``videos``: how many mp4 videos to stitch from the groups' scenes (0: none,
    and the world is exactly what it was before videos existed).
    """
    if captions_per_group < 1:
        raise WorldError(f"captions per group must be 1 or more, not {captions_per_group}.")
    if videos < 0 or (videos and n < 1):
        raise WorldError(f"videos must be 0 or more, and need at least one group (videos {videos}, groups {n}).")
    groups = sample_groups(n, seed, test_fraction=test_fraction, val_fraction=val_fraction)
    out = Path(out_dir).expanduser().absolute()
    _check_target(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as e:
        raise WorldError(f"cannot create the world's folder next to {out}: {e.strerror or e}.") from e
    try:
        for sub in ("image", "audio", "text"):
            (staging / sub).mkdir()
        records = _write_groups(staging, groups, captions_per_group, workers, progress, videos)
        with open(staging / MANIFEST_NAME, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        splits = {s: sum(r["split"] == s for r in records) for s in SPLITS}
        marker = {
            "format": MARKER_FORMAT,
            "version": MARKER_VERSION,
            "n": n,
            "seed": seed,
            "captions_per_group": captions_per_group,
            "test_fraction": test_fraction,
            "val_fraction": val_fraction,
            "splits": splits,
        }
        if videos:
            codec = available_codec()
            (staging / VIDEO_DIR).mkdir()
            video_records = _write_videos(staging, groups, videos, seed, captions_per_group, codec, workers,
                                          progress, len(groups))
            with open(staging / VIDEOS_NAME, "w", encoding="utf-8", newline="\n") as f:
                f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in video_records)
            marker["videos"] = videos
            marker["video"] = video_settings(codec)
        (staging / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _swap_into_place(staging, out)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError):
            raise WorldError(f"cannot write the world into {out}: {e.strerror or e}.") from e
        raise
    return out / MANIFEST_NAME


def is_world(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder written by ``make_world`` (it holds a valid ``world.json``)."""
    try:
        return world_info(path)["format"] == MARKER_FORMAT
    except (OSError, ValueError, KeyError, TypeError):
        return False


def world_info(path: str | os.PathLike) -> dict:
    """The ``world.json`` of a world folder: n, seed, captions_per_group, fractions and counts per split (and,
    when it has videos, ``videos`` and ``video``: how they were made)."""
    info = json.loads((Path(path) / MARKER_NAME).read_text(encoding="utf-8"))
    if not isinstance(info, dict):
        raise TypeError("world.json is not an object")
    return info


def ensure_world(world_dir: Path, n: int, seed: int, progress: Callable[[int, int], None] | None = None) -> Path:
    """The manifest of a generated world at ``world_dir``; generated first unless that exact world is there."""
    world_dir = Path(world_dir).expanduser()
    if is_world(world_dir):
        info = world_info(world_dir)
        if info.get("n") == n and info.get("seed") == seed:
            return world_dir / MANIFEST_NAME
        return make_world(world_dir, n, seed, overwrite=True, progress=progress)
    return make_world(world_dir, n, seed, progress=progress)


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise WorldError(f"{out} exists and is not a folder.")
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return
    if not is_world(out):
        raise WorldError(f"{out} is not empty and is not a generated world; choose a new or empty folder.")
    if not overwrite:
        raise WorldError(f"{out} already holds a generated world; pass --overwrite to replace it.")
    strangers = sorted(entries - _WORLD_ENTRIES)
    if strangers:
        raise WorldError(
            f"{out} holds files that are not part of the world ({', '.join(strangers[:3])}); "
            "move them away before overwriting it."
        )


def _swap_into_place(staging: Path, out: Path) -> None:
    """Rename the finished world to ``out``; a previous world (or an empty folder) there is removed after."""
    if not out.exists():
        os.rename(staging, out)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, retired / "world")
    os.rename(staging, out)
    shutil.rmtree(retired, ignore_errors=True)


def _write_groups(
    root: Path,
    groups: list[Group],
    captions_per_group: int,
    workers: int | None,
    progress: Callable[[int, int], None] | None,
    videos: int = 0,
) -> list[dict]:
    """Render and write every group; records come back in group order whatever the number of workers."""
    jobs = [(root, g, captions_per_group) for g in groups]
    return _run_jobs(_write_group, jobs, workers, progress, _SERIAL_BELOW, 0, len(jobs) + videos, 8)


def _write_videos(root: Path, groups: list[Group], videos: int, seed: int, captions_per_group: int, codec: str,
                  workers: int | None, progress: Callable[[int, int], None] | None, done: int) -> list[dict]:
    """Stitch and write the videos; records come back in video order whatever the number of workers."""
    jobs = [(root, plan, captions_per_group, codec) for plan in plan_videos(groups, videos, seed)]
    return _run_jobs(_write_video, jobs, workers, progress, _SERIAL_BELOW_VIDEOS, done, done + len(jobs), 1)


def _run_jobs(fn, jobs: list, workers: int | None, progress: Callable[[int, int], None] | None, serial_below: int,
              done: int, total: int, chunksize: int) -> list:
    """``fn`` over ``jobs`` (in this process, or a pool of fresh ones), results in job order."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    records: list = []
    if workers <= 1 or len(jobs) < serial_below:
        for record in map(fn, jobs):
            records.append(record)
            if progress:
                progress(done + len(records), total)
        return records
    # forkserver/spawn children start clean: no threads inherited from torch or BLAS in the parent.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        for record in pool.imap(fn, jobs, chunksize=chunksize):
            records.append(record)
            if progress:
                progress(done + len(records), total)
    return records


def _write_video(job: tuple) -> dict:
    from xsearch.world.video import write_planned_video

    root, plan, captions_per_group, codec = job
    return write_planned_video(root, plan, captions_per_group, codec)


def _write_group(job: tuple[Path, Group, int]) -> dict:
    root, group, captions_per_group = job
    image_rel, audio_rel, text_rel = f"image/{group.id}.png", f"audio/{group.id}.wav", f"text/{group.id}.txt"
    render_image(group).save(root / image_rel, format="PNG")
    write_audio(root / audio_rel, render_audio(group))
    texts = captions(group, captions_per_group)
    (root / text_rel).write_text(texts[0] + "\n", encoding="utf-8", newline="\n")
    return {
        "group": group.id,
        "split": group.split,
        "image": image_rel,
        "audio": audio_rel,
        "text": texts,
        "text_file": text_rel,
        "attributes": group.attributes,
    }
