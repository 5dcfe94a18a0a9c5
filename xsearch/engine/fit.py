"""Does the collection's model know this kind of media? An honest verdict for the shipped ``builtin`` model.

The builtin model was trained only on the generated world (coloured shapes on plain or patterned backgrounds,
synthetic sounds, template captions). On anything else it runs, but its rankings are noise. This module decides,
from a small sample of the collection's own files, whether they are that world:

- a file under a folder written by ``xsearch world make`` (it holds a ``world.json`` with ``seed`` and
  ``splits``, checked up to four folders up) is the world;
- an image elsewhere is world-like when it has at most ``MAX_WORLD_COLOURS`` distinct colours: the world draws
  flat shapes without anti-aliasing (2–10 colours), while a photograph has tens of thousands (scikit-learn's
  sample photos: 96,615 and 62,941);
- any other file (a sound, a text, a video) outside a world folder cannot be told apart, so it counts as not
  the world.

The collection is the world when at least ``WORLD_SHARE`` of the checked files are. The verdict is computed
when ``xsearch index`` runs and kept beside the collection (``model_fit.json``), so search, info and the page read
it without touching the files. Known limit: flat graphics (icons, diagrams, screenshots) look like the world.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

#: The spec whose verdict matters: the shipped builtin model (a builtin checkpoint you trained yourself is yours).
BUILTIN = "builtin"
#: The pretrained pair that works on real media (downloaded once, online, then offline).
REAL_MODEL = "openclip:ViT-B-32:laion2b_s34b_b79k+clap:laion/clap-htsat-unfused"
FIT_FILE = "model_fit.json"
MAX_WORLD_COLOURS = 256
WORLD_SHARE = 0.9
SAMPLE_PER_MODALITY = 16
_MARKER = "world.json"
_MAX_SIDE = 512  # images are reduced (nearest neighbour: no new colours) to this before counting colours


def applies(model_spec: str | None) -> bool:
    """Whether the verdict matters for this model: only the shipped builtin model is tied to the world."""
    return (model_spec or "") == BUILTIN


def sample(files: Iterable[tuple[str, str]], per_modality: int = SAMPLE_PER_MODALITY) -> list[tuple[str, str]]:
    """Up to ``per_modality`` (path, modality) pairs of each modality, spread evenly over the sorted paths."""
    by: dict[str, list[str]] = {}
    for path, modality in files:
        by.setdefault(modality, []).append(path)
    out = []
    for modality, paths in sorted(by.items()):
        paths.sort()
        step = max(1, len(paths) // per_modality)
        out += [(p, modality) for p in paths[::step][:per_modality]]
    return out


def verdict(model_spec: str, files: Sequence[tuple[str, str]]) -> dict | None:
    """The verdict for a sample of the collection's (path, modality) pairs; None when the model is not builtin.

    ``{"model_spec", "world": bool, "checked", "world_like", "root", "message"}``; ``message`` is empty for the
    world, else one paragraph a front end can show as it is."""
    if not applies(model_spec):
        return None
    markers: dict[str, bool] = {}
    checked = world_like = 0
    for path, modality in files:
        found = _under_world(path, markers)
        if found is None:
            continue  # gone since it was indexed
        like = found or (modality == "image" and _few_colours(path))
        if like is None:
            continue
        checked += 1
        world_like += bool(like)
    world = checked > 0 and world_like >= WORLD_SHARE * checked
    root = _common_root([p for p, _ in files])
    out = {"model_spec": model_spec, "world": world, "checked": checked, "world_like": world_like, "root": root}
    out["message"] = "" if world or not checked else warning(checked - world_like, checked, root)
    return out


def warning(foreign: int, checked: int, root: str | None) -> str:
    """The one paragraph every front end shows when builtin meets media that is not its world."""
    where = _quote(root) if root else "PATH"
    return (f"The builtin model only knows the generated world of coloured shapes and synthetic sounds, and "
            f"{foreign} of {checked} files checked here are not from it: its rankings of them are noise. With network "
            f"access once, index with a real model (then it works offline): xsearch index {where} --rebuild --model "
            f"{REAL_MODEL}. Offline, xsearch index {where} --ocr finds pictures by the words in them (the ocr extra).")


def save(directory: Path | None, fit: dict | None) -> None:
    """Keep the verdict beside a local collection (nothing to do for a store without a folder)."""
    if directory is None or not Path(directory).is_dir():
        return
    target = Path(directory) / FIT_FILE
    if fit is None:
        target.unlink(missing_ok=True)
        return
    tmp = target.with_name(f".{FIT_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(fit, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def load(directory: Path | None, model_spec: str | None) -> dict | None:
    """The kept verdict when there is one for this model, else None (compute it then)."""
    if directory is None:
        return None
    try:
        fit = json.loads((Path(directory) / FIT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return fit if isinstance(fit, dict) and fit.get("model_spec") == model_spec else None


def _under_world(path: str, markers: dict[str, bool]) -> bool | None:
    """True when a folder above ``path`` (up to four) is a generated world; None when the file is gone."""
    p = Path(path)
    if not p.exists():
        return None
    for parent in list(p.parents)[:4]:
        key = str(parent)
        if key not in markers:
            markers[key] = _is_marker(parent / _MARKER)
        if markers[key]:
            return True
    return False


def _is_marker(path: Path) -> bool:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "seed" in info and "splits" in info


def _few_colours(path: str) -> bool | None:
    """At most MAX_WORLD_COLOURS distinct colours (None: not readable as an image)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("RGB", (_MAX_SIDE, _MAX_SIDE))  # JPEG: decode at a reduced size, cheaply
            im = im.convert("RGB")
            if max(im.size) > _MAX_SIDE:
                f = max(im.size) / _MAX_SIDE
                im = im.resize((max(1, int(im.width / f)), max(1, int(im.height / f))), Image.NEAREST)
            return im.getcolors(MAX_WORLD_COLOURS) is not None
    except Exception:  # noqa: BLE001 - any decoding failure: this file cannot tell
        return None


def _common_root(paths: list[str]) -> str | None:
    try:
        root = os.path.commonpath(paths) if paths else None
    except ValueError:
        return None
    if root and os.path.isfile(root):
        root = os.path.dirname(root)
    return root


def _quote(path: str) -> str:
    import shlex

    home = os.path.expanduser("~")
    shown = "~" + path[len(home):] if home not in ("", "/") and path.startswith(home + os.sep) else path
    return shown if shown.startswith("~") and shlex.quote(shown[1:]) == shown[1:] else shlex.quote(shown)
