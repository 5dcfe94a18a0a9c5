"""Zero-shot tag accuracy on a generated world (research; the engine never imports this).

``python -m xsearch.evaluation.tags [--workdir DIR] [--model builtin] [--split test] [--out FILE.md]``

The evaluation world (seed 1, 1,400 groups, as in docs/models.md's quality table) has six attributes per group.
Its ``split`` files (image, sound, caption file) are indexed into a collection of their own; then, per
attribute, ``Engine.tag`` runs with one label per value of that attribute (a labels file written to the work
folder) and ``top=1``, and a file counts as right when its stored top tag is its own value. Accuracy per
attribute and modality is reported with chance (1 / number of values) and the majority-class share.

Labels are short noun phrases that the prompt templates read naturally ("a photo of a red", "the sound of a
circle", "a text about two shapes", "a photo of a striped background").
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter
from pathlib import Path

EVAL_WORLD = {"n": 1400, "seed": 1}
NUMBER_WORDS = {1: "one shape", 2: "two shapes", 3: "three shapes", 4: "four shapes"}


def attribute_labels() -> dict[str, dict[str, object]]:
    """Per attribute: {label text: attribute value}."""
    from xsearch.world.attributes import ATTRIBUTES

    return {
        "colour": {c: c for c in ATTRIBUTES["colour"]},
        "shape": {s: s for s in ATTRIBUTES["shape"]},
        "size": {f"{s} shape": s for s in ATTRIBUTES["size"]},
        "count": {NUMBER_WORDS[c]: c for c in ATTRIBUTES["count"]},
        "position": {{"left": "shape on the left", "centre": "shape in the centre", "right": "shape on the right"}[p]: p
                     for p in ATTRIBUTES["position"]},
        "background": {f"{b} background": b for b in ATTRIBUTES["background"]},
    }


def build_collection(workdir: Path, split: str, model: str, log=print) -> tuple[Path, dict[str, dict]]:
    """The world's ``split`` files copied apart and indexed; returns (collection, {path: (modality, attributes)})."""
    from xsearch.engine import Engine
    from xsearch.world.generate import ensure_world

    manifest = ensure_world(workdir / "eval-world", EVAL_WORLD["n"], EVAL_WORLD["seed"])
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    chosen = [r for r in records if r["split"] == split]
    media, collection = workdir / f"{split}-media", workdir / f"{split}-collection-{model.replace(':', '_')}"
    truth = {}
    for r in chosen:
        for modality, key in (("image", "image"), ("audio", "audio"), ("text", "text_file")):
            truth[str((media / r[key]).absolute())] = {"modality": modality, "attributes": r["attributes"]}
    if not (collection / "manifest.json").exists():
        shutil.rmtree(media, ignore_errors=True)
        for r in chosen:
            for key in ("image", "audio", "text_file"):
                (media / r[key]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(manifest.parent / r[key], media / r[key])
        t0 = time.time()
        Engine(collection, model=model).index_folder(media, workers=0)
        log(f"indexed {len(chosen)} groups × 3 files in {time.time() - t0:.0f}s")
    return collection, truth


def evaluate_tags(workdir: Path, *, split: str = "test", model: str = "builtin", ensemble: bool = True,
                  log=print) -> dict:
    """Tag accuracy per attribute and modality. ``ensemble=False``: the ablation without prompt ensembling
    (every label embedded as it is, one prompt "{}")."""
    from xsearch.engine import tagging

    saved = dict(tagging.TEMPLATES)
    if not ensemble:
        tagging.TEMPLATES.update({track: ("{}",) for track in tagging.TEMPLATES})
    try:
        return _evaluate(workdir, split, model, log) | {"ensemble": ensemble}
    finally:
        tagging.TEMPLATES.update(saved)


def _evaluate(workdir: Path, split: str, model: str, log) -> dict:
    from xsearch.engine import Engine

    workdir.mkdir(parents=True, exist_ok=True)
    collection, truth = build_collection(workdir, split, model, log)
    engine = Engine(collection)
    store = engine.store()
    rows = []
    t0 = time.time()
    for attribute, labels in attribute_labels().items():
        (workdir / f"labels-{attribute}.txt").write_text("\n".join(labels) + "\n")
        engine.tag(list(labels), top=1)
        right: Counter = Counter()
        total: Counter = Counter()
        values: dict[str, Counter] = {}
        for path, t in truth.items():
            row = store.file(path)
            tags = store.tags_of(row.id) if row is not None else []
            value = t["attributes"][attribute]
            total[t["modality"]] += 1
            values.setdefault(t["modality"], Counter())[value] += 1
            right[t["modality"]] += bool(tags) and labels.get(tags[0][0]) == value
        for modality in ("image", "audio", "text"):
            n = total[modality]
            rows.append({"attribute": attribute, "modality": modality, "files": n, "values": len(labels),
                         "accuracy": round(right[modality] / n, 4) if n else None,
                         "chance": round(1 / len(labels), 4),
                         "majority": round(max(values[modality].values()) / n, 4) if n else None})
        log(f"{attribute}: " + ", ".join(f"{r['modality']} {r['accuracy']:.3f}" for r in rows[-3:])
            + f" (chance {1 / len(labels):.3f})")
    return {"world": EVAL_WORLD, "split": split, "model": engine.stored_model(), "rows": rows,
            "labels": {a: list(v) for a, v in attribute_labels().items()}, "seconds": round(time.time() - t0, 1)}


def to_markdown(result: dict) -> str:
    single = {(r["attribute"], r["modality"]): r for r in result.get("single_prompt_rows", [])}
    lines = [f"# Zero-shot tag accuracy (world seed {result['world']['seed']}, split {result['split']}, "
             f"model {result['model']})", "",
             "top-1 tag = the file's value; prompt ensembling (one prompt, the bare label, in brackets)", "",
             "| attribute | labels | image | audio | text | chance | majority class |", "|---|---|---|---|---|---|---|"]
    by = {(r["attribute"], r["modality"]): r for r in result["rows"]}
    for attribute, labels in result["labels"].items():
        cells = []
        for m in ("image", "audio", "text"):
            cell = f"{by[(attribute, m)]['accuracy']:.3f}"
            if (attribute, m) in single:
                cell += f" ({single[(attribute, m)]['accuracy']:.3f})"
            cells.append(cell)
        majority = max(by[(attribute, m)]["majority"] for m in ("image", "audio", "text"))
        lines.append(f"| {attribute} | {', '.join(labels)} | " + " | ".join(cells)
                     + f" | {1 / len(labels):.3f} | {majority:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Zero-shot tag accuracy per attribute on a generated world.")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/xsearch-eval-tags"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--out", type=Path, default=None, help="write the table (and .json beside it) here")
    args = parser.parse_args(argv)
    result = evaluate_tags(args.workdir, split=args.split, model=args.model)
    single = evaluate_tags(args.workdir, split=args.split, model=args.model, ensemble=False)
    result["single_prompt_rows"] = single["rows"]
    md = to_markdown(result)
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
