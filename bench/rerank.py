"""Re-ranking and hybrid fusion, measured through the Engine on the held-out split of the evaluation world.

``python -m bench.rerank [--workdir DIR] [--reranker DIR] [--out bench/results/rerank-cpu-2core.md]``

The evaluation world is the one docs/models.md's quality table uses (seed 1, 1,400 groups); only its **test** split
is indexed (209 groups whose colour–shape pairs the builtin model and the re-ranker never saw; the re-ranker is
trained on another world, seed 2). Relevant = same six attributes. Query sets, drawn with a fixed seed:

- ``single``: one query, every cross-modal direction (text→image, text→audio, image→audio, audio→image,
  image→text, audio→text), each test group once per direction;
- ``pair``: two queries of the same group (caption + sound → images, caption + picture → sounds, picture + sound
  → texts);
- ``combo``: a partial caption naming 1–3 attributes of a target group ("red circles", "on a striped
  background") + the picture, sound or caption of another test group that agrees with the target on every
  other attribute → the target in a third modality (the other group's own item there is the trap).

For each set: ``Engine.search`` with ``--fusion`` mean, rrf, hybrid, each without and with ``rerank=True``
(re-ranked top max(k, 50); MedR ranks the rest in the index's order after them). Precision@k = relevant among
the top k / k; R@1 = a relevant file first; MedR = median rank of the first relevant file. Latency: one query
per call, ``k=10``, single and pair queries, with and without re-ranking, measured in the same loop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

EVAL_WORLD = {"n": 1400, "seed": 1}
KS = (1, 5, 10)
FUSIONS = ("mean", "rrf", "hybrid")
SINGLE_DIRECTIONS = [("text", "image"), ("text", "audio"), ("image", "audio"), ("audio", "image"),
                     ("image", "text"), ("audio", "text")]
PAIR_DIRECTIONS = [(("text", "audio"), "image"), (("text", "image"), "audio"), (("image", "audio"), "text")]


def build_collection(workdir: Path, log) -> tuple[Path, list[dict], dict[str, str]]:
    """The evaluation world's test split copied into its own folder and indexed with the builtin model."""
    from xsearch.engine import Engine
    from xsearch.world.generate import ensure_world

    manifest = ensure_world(workdir / "eval-world", EVAL_WORLD["n"], EVAL_WORLD["seed"])
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    test = [r for r in records if r["split"] == "test"]
    media = workdir / "test-media"
    collection = workdir / "collection"
    if not (collection / "manifest.json").exists():
        shutil.rmtree(media, ignore_errors=True)
        for r in test:
            for key in ("image", "audio", "text_file"):
                dst = media / r[key]
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(manifest.parent / r[key], dst)
        t0 = time.time()
        Engine(collection, model="builtin").index_folder(media, workers=0)
        log(f"indexed {len(test)} test groups × 3 files in {time.time() - t0:.0f}s")
    label_of = {}
    for r in test:
        label = json.dumps(r["attributes"], sort_keys=True)
        for key in ("image", "audio", "text_file"):
            label_of[str((media / r[key]).absolute())] = label
    for r in test:
        r["files"] = {m: str((media / r[k]).absolute()) for m, k in
                      (("image", "image"), ("audio", "audio"), ("text", "text_file"))}
        r["label"] = json.dumps(r["attributes"], sort_keys=True)
    return collection, test, label_of


def query_sets(test: list[dict], seed: int = 0) -> list[dict]:
    """Every query set of the benchmark: {kind, queries [(modality, value)], target, label}."""
    from xsearch.train.reranker import ATTRS, partial_caption

    def query(r, modality):
        return ("text", r["text"][0]) if modality == "text" else (modality, r["files"][modality])

    sets = []
    for r in test:
        for q, t in SINGLE_DIRECTIONS:
            sets.append({"kind": "single", "queries": [query(r, q)], "target": t, "label": r["label"]})
        for qs, t in PAIR_DIRECTIONS:
            sets.append({"kind": "pair", "queries": [query(r, q) for q in qs], "target": t, "label": r["label"]})
    rng = np.random.default_rng(seed)
    modalities = ("image", "audio", "text")
    for r in test:
        for _ in range(20):  # a subset of attributes for which another test group differs only there
            names = set(rng.choice(ATTRS, size=int(rng.integers(1, 4)), replace=False).tolist())
            others = [o for o in test if o is not r
                      and all(o["attributes"][a] == r["attributes"][a] for a in ATTRS if a not in names)
                      and any(o["attributes"][a] != r["attributes"][a] for a in names)]
            if others:
                other = others[int(rng.integers(len(others)))]
                example = modalities[int(rng.integers(3))]
                target = [m for m in modalities if m != example][int(rng.integers(2))]
                sets.append({"kind": "combo", "queries": [("text", partial_caption(r["attributes"], names)),
                                                          query(other, example)],
                             "target": target, "label": r["label"], "names": sorted(names)})
                break
    return sets


def first_relevant(paths: list[str], label: str, label_of: dict) -> float:
    for i, p in enumerate(paths, 1):
        if label_of.get(p) == label:
            return float(i)
    return float("inf")


def run(workdir: Path, reranker: Path | None, log=print, limit: int | None = None) -> dict:
    from xsearch.core.types import Query
    from xsearch.engine import Engine

    load_start = os.getloadavg()
    collection, test, label_of = build_collection(workdir, log)
    sets = query_sets(test)
    if limit:
        sets = [s for kind in ("single", "pair", "combo") for s in [x for x in sets if x["kind"] == kind][:limit]]
    engine = Engine(collection, reranker=reranker)
    engine.search([Query("text", "warm up")], to="image", k=1, rerank=True)
    gallery = {m: engine.store().file_count(m) for m in ("image", "audio", "text")}
    rows = []  # per set and method: the rank list's first relevant position and precision@k
    t0 = time.time()
    for n, s in enumerate(sets):
        queries = [Query(m, v) for m, v in s["queries"]]
        fusions = FUSIONS if len(queries) > 1 else ("mean",)
        for fusion in fusions:
            full = [h.path for h in engine.search(queries, to=s["target"], k=gallery[s["target"]],
                                                   fusion=fusion)[s["target"]]]
            top = [h.path for h in engine.search(queries, to=s["target"], k=50, fusion=fusion,
                                                  rerank=True)[s["target"]]]
            seen = set(top)
            reranked = top + [p for p in full if p not in seen]
            for name, ranking in ((fusion, full), (f"{fusion}+rerank", reranked)):
                rel = [label_of.get(p) == s["label"] for p in ranking]
                rows.append({"kind": s["kind"], "target": s["target"], "method": name,
                             "first": first_relevant(ranking, s["label"], label_of),
                             **{f"P@{k}": sum(rel[:k]) / k for k in KS}})
        if (n + 1) % 200 == 0:
            log(f"{n + 1}/{len(sets)} query sets ({time.time() - t0:.0f}s)")
    latency = measure_latency(engine, [s for s in sets if s["kind"] != "combo"][::7])
    return {"world": EVAL_WORLD, "split": "test", "groups": len(test), "gallery": gallery,
            "reranker": engine.reranker().describe(), "sets": {k: sum(s["kind"] == k for s in sets)
                                                              for k in ("single", "pair", "combo")},
            "table": summarise(rows), "latency_ms": latency, "seconds": round(time.time() - t0, 1),
            "machine": {"cpus": os.cpu_count(), "load_start": [round(x, 2) for x in load_start],
                        "load_end": [round(x, 2) for x in os.getloadavg()]}}


def measure_latency(engine, sets: list[dict]) -> dict:
    """ms per query (k=10), plain and re-ranked, alternating on the same queries."""
    from xsearch.core.types import Query

    out: dict[str, list[float]] = {"plain": [], "rerank": []}
    for s in sets:
        queries = [Query(m, v) for m, v in s["queries"]]
        for name, rerank in (("plain", False), ("rerank", True)):
            t = time.perf_counter()
            engine.search(queries, to=s["target"], k=10, rerank=rerank)
            out[name].append((time.perf_counter() - t) * 1000)
    return {name: {"queries": len(v), "median": round(statistics.median(v), 2),
                   "p90": round(float(np.percentile(v, 90)), 2)} for name, v in out.items()}


def summarise(rows: list[dict]) -> list[dict]:
    table = []
    for kind in ("single", "pair", "combo"):
        methods = sorted({r["method"] for r in rows if r["kind"] == kind},
                         key=lambda m: (FUSIONS.index(m.split("+")[0]), "+" in m))
        for method in methods:
            sel = [r for r in rows if r["kind"] == kind and r["method"] == method]
            firsts = np.asarray([r["first"] for r in sel])
            table.append({"kind": kind, "method": method, "sets": len(sel),
                          **{f"P@{k}": round(float(np.mean([r[f"P@{k}"] for r in sel])), 4) for k in KS},
                          "R@10": round(float(np.mean(firsts <= 10)), 4),
                          "MedR": float(np.median(firsts)), "MRR": round(float(np.mean(1 / firsts)), 4)})
    return table


def to_markdown(result: dict) -> str:
    lines = [f"# Re-ranking and hybrid fusion (held-out split of world seed {result['world']['seed']}, "
             f"n={result['world']['n']}: {result['groups']} test groups)", "",
             f"re-ranker: {result['reranker']['id']} ({result['reranker']['parameters']:,} parameters), "
             f"query sets: {result['sets']}", "",
             "| queries | method | sets | P@1 | P@5 | P@10 | R@10 | MRR | MedR |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["table"]:
        lines.append(f"| {r['kind']} | {r['method']} | {r['sets']} | {r['P@1']:.3f} | {r['P@5']:.3f} | "
                     f"{r['P@10']:.3f} | {r['R@10']:.3f} | {r['MRR']:.3f} | {r['MedR']:g} |")
    lat = result["latency_ms"]
    m = result["machine"]
    lines += ["", f"latency per query (k=10, {lat['plain']['queries']} single and pair queries, same loop): "
              f"plain median {lat['plain']['median']} ms (p90 {lat['plain']['p90']}), re-ranked median "
              f"{lat['rerank']['median']} ms (p90 {lat['rerank']['p90']}); {m['cpus']} CPUs, load average "
              f"{m['load_start'][0]} at the start, {m['load_end'][0]} at the end ({result['seconds']:.0f} s)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/xsearch-bench-rerank"))
    parser.add_argument("--reranker", type=Path, default=None, help="a re-ranker checkpoint (default: shipped)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many query sets per kind")
    parser.add_argument("--out", type=Path, default=Path("bench/results/rerank-cpu-2core.md"))
    args = parser.parse_args(argv)
    result = run(args.workdir, args.reranker, limit=args.limit)
    md = to_markdown(result)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
