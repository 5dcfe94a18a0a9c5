"""Scaling: log-log slopes (y ~ n^b) of build time, query time and memory per index kind, from the index
benchmark's synthetic sizes. b ≈ 1 is linear; search time near 0 is flat in n (graph / IVF at fixed recall
budget), near 1 is exhaustive."""

from __future__ import annotations

from bench.measure import loglog_slope
from bench.report import table

METRICS = {
    "build_s": "build time",
    "batch_ms_per_query": "query time (batch)",
    "p50_ms": "query time (single, p50)",
    "memory_bytes": "memory (total, saved)",
}


def fit(index_result: dict) -> dict:
    """Exponents per (library, kind) over the synthetic datasets of an index benchmark result."""
    series: dict[tuple[str, str], list[dict]] = {}
    for ds in index_result["datasets"]:
        if not ds["label"].startswith("clustered-"):
            continue
        for r in ds["rows"]:
            if "skipped" in r:
                continue
            point = {k: r.get(k) for k in METRICS if k != "memory_bytes"}
            point["memory_bytes"] = r["bytes_per_vector"] * r["n"]
            point["n"], point["factory"], point["recall"] = r["n"], r["factory"], r["recall"]
            series.setdefault((r["library"], r["kind"]), []).append(point)
    fits = []
    for (library, kind), points in series.items():
        ns = [p["n"] for p in points]
        entry = {"library": library, "kind": kind, "sizes": ns, "factories": [p["factory"] for p in points],
                 "recalls": [p["recall"] for p in points]}
        for key in METRICS:
            entry[key] = loglog_slope(ns, [p[key] for p in points])
        fits.append(entry)
    return {"fits": fits}


def to_markdown(result: dict) -> str:
    rows = []
    for f in result["fits"]:
        rows.append([f["library"], f["kind"], ", ".join(map(str, f["sizes"])),
                     ", ".join(f"{r:.3f}" for r in f["recalls"])] + [f[k] for k in METRICS])
    note = ("Exponent b in y ~ n^b (least-squares slope in log-log; two sizes give a two-point slope). "
            "IVF types change nlist with n, so their exponents include that choice.")
    return note + "\n\n" + table(["library", "index", "sizes", "recall"] + list(METRICS.values()), rows)
