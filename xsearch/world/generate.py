"""Write a world to disk: ``image/<id>.png``, ``audio/<id>.wav``, ``text/<id>.txt``, ``manifest.jsonl``.

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

from xsearch.errors import XsearchError
from xsearch.world.groups import SPLITS, Group, sample_groups
from xsearch.world.image import render_image
from xsearch.world.sound import render_audio, write_audio
from xsearch.world.text import captions

MANIFEST_NAME = "manifest.jsonl"
MARKER_NAME = "world.json"
MARKER_FORMAT = "xsearch-world"
MARKER_VERSION = 1
_WORLD_ENTRIES = frozenset({"image", "audio", "text", MANIFEST_NAME, MARKER_NAME})
_SERIAL_BELOW = 64  # groups; fewer are not worth starting worker processes for


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
) -> Path:
    """Generate ``n`` groups into ``out_dir`` and return the path of its ``manifest.jsonl``.

    ``out_dir`` must be new, empty, or (with ``overwrite=True``) a previous world. Output is byte-identical for
    the same ``seed``, ``n`` and fractions, whatever ``workers`` is. ``progress(done, total)`` is called as
    groups are written.
    """
    if captions_per_group < 1:
        raise WorldError(f"captions per group must be 1 or more, not {captions_per_group}.")
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
        records = _write_groups(staging, groups, captions_per_group, workers, progress)
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
    """The ``world.json`` of a world folder: n, seed, captions_per_group, fractions and counts per split."""
    info = json.loads((Path(path) / MARKER_NAME).read_text(encoding="utf-8"))
    if not isinstance(info, dict):
        raise TypeError("world.json is not an object")
    return info


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
) -> list[dict]:
    """Render and write every group; records come back in group order whatever the number of workers."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    jobs = [(root, g, captions_per_group) for g in groups]
    total = len(jobs)
    records: list[dict] = []
    if workers <= 1 or total < _SERIAL_BELOW:
        for record in map(_write_group, jobs):
            records.append(record)
            if progress:
                progress(len(records), total)
        return records
    # forkserver/spawn children start clean: no threads inherited from torch or BLAS in the parent.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        for record in pool.imap(_write_group, jobs, chunksize=8):
            records.append(record)
            if progress:
                progress(len(records), total)
    return records


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
