"""Long-lived engine session: per-query cost of many searches in one process vs reopening the collection.

    python -m bench.session [--items 100000] [--queries 1000] [--factory auto] [--out results.json]

Builds a local collection of ``--items`` synthetic image items (clustered unit vectors in the builtin model's
space, written through the store writer — no decoding), then times, in one run:

- session: one ``Engine``, ``--queries`` text searches (text embedding + vector search + catalog join);
- parts: the text embedding alone and ``store.search_files`` alone, to show where a query's time goes;
- reopen: a fresh ``Engine`` per query (what every CLI call pays: open the store, load and checksum the index).

Prints a markdown table and the ratio reopen / session per query.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.measure import percentile_ms

WORDS = ("red", "blue", "green", "yellow", "large", "small", "circle", "star", "square", "triangle", "left", "right")


def build_collection(path: Path, n: int, factory: str, seed: int = 0, log=print) -> str:
    """A local collection of ``n`` image items in the builtin model's space, built through the store writer
    (a commit every 5,000 items, or every n/20 for large n: each commit writes the index file whole)."""
    from xsearch.encoders.registry import load_encoder
    from xsearch.index import open_writer
    from xsearch.index.store import StoreSpec

    enc = load_encoder("builtin")
    dim = enc.spaces[enc.index_space("image")]
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, dim)).astype(np.float32)
    spec = StoreSpec(enc.model_id, enc.spec, {m: dim for m in enc.modalities}, factory)
    step = max(5000, n // 20)
    t0 = time.perf_counter()
    with open_writer(str(path), create=spec) as w:
        for start in range(0, n, step):
            m = min(step, n - start)
            vecs = centres[rng.integers(0, 64, m)] + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
            for i in range(m):
                fid = w.upsert_file(f"/synthetic/f{start + i:07d}.png", modality="image", size=1000 + i,
                                    mtime_ns=1, hash=None, width=64, height=64)
                w.replace_items(fid, {"image": ([0.0], vecs[i:i + 1], None)})
            w.commit()
        w.maybe_reindex()
    log(f"session: built {n} items in {time.perf_counter() - t0:.1f}s")
    return str(path)


def queries(n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, 4)) for _ in range(n)]


def percentiles(seconds: list[float]) -> dict:
    return {"p50": percentile_ms(seconds, 50), "p99": percentile_ms(seconds, 99),
            "mean": float(np.mean(seconds) * 1000.0), "n": len(seconds)}


def run(items: int, n_queries: int, factory: str, n_reopen: int = 20, log=print) -> dict:
    from xsearch.core.types import Query
    from xsearch.engine import Engine

    with tempfile.TemporaryDirectory(prefix="xsearch-session-") as tmp:
        uri = build_collection(Path(tmp) / "col", items, factory, log=log)
        texts = queries(n_queries)
        engine = Engine(uri)
        engine.search([Query("text", "warm up")], to="image", k=10)  # model and index load here, once
        info = engine.stats()["modalities"]["image"]

        session = []
        for t in texts:
            t0 = time.perf_counter()
            engine.search([Query("text", t)], to="image", k=10)
            session.append(time.perf_counter() - t0)

        enc, store = engine.encoder(), engine.store()
        embed_t, knn_t = [], []
        for t in texts[:200]:
            t0 = time.perf_counter()
            v = enc.embed("text", [t], space=enc.index_space("image"))
            embed_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.search_files("image", v, 10)
            knn_t.append(time.perf_counter() - t0)
        engine.close()

        reopen = []
        for t in texts[:n_reopen]:
            t0 = time.perf_counter()
            with Engine(uri) as fresh:  # the encoder is cached per process, as in the old per-call path
                fresh.search([Query("text", t)], to="image", k=10)
            reopen.append(time.perf_counter() - t0)

    out = {
        "items": items, "queries": n_queries, "index": info["index"],
        "session_ms": percentiles(session), "text_embed_ms": percentiles(embed_t),
        "search_files_ms": percentiles(knn_t), "reopen_ms": percentiles(reopen),
    }
    out["reopen_over_session_p50"] = out["reopen_ms"]["p50"] / out["session_ms"]["p50"]
    return out


def table(r: dict) -> str:
    rows = [("session search (embed + knn + catalog)", r["session_ms"]), ("  text embedding alone", r["text_embed_ms"]),
            ("  store.search_files alone", r["search_files_ms"]), ("fresh Engine per query (reopen)", r["reopen_ms"])]
    lines = [f"Long-lived session, {r['items']} items ({r['index']}), {r['queries']} queries",
             "", "| path | p50 ms | p99 ms | mean ms |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {p['p50']:.2f} | {p['p99']:.2f} | {p['mean']:.2f} |" for name, p in rows]
    lines += ["", f"reopen / session (p50): {r['reopen_over_session_p50']:.1f}x"]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--factory", default="auto", help="FAISS factory string or auto (HNSW32 from 50k items)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    r = run(args.items, args.queries, args.factory)
    print(table(r))
    if args.out:
        args.out.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
