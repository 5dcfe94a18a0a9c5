"""The local store (FAISS + SQLite) against milvus-lite and a Milvus server, on the same vectors, through the same
store protocol.

    python -m bench.milvus [--sizes 10000,100000] [--dim 256] [--queries 200] [--out results.json]
    python -m bench.milvus --sizes 10000 --server 127.0.0.1:19530     # adds a real Milvus server's row

``--server HOST:PORT`` (or ``$XSEARCH_TEST_MILVUS_URI``) adds a Milvus server (e.g. ``make milvus-venv`` then
``.venv-milvus/bin/milvus-server --data DIR``): the same build and searches, plus ingest items/s, and ``engine_p50_ms``
for every store: ``Engine.search`` of one text query end to end (the builtin model encodes it; the collection holds
the same vectors under the builtin model's id, so the engine opens it as its own).

For each size: clustered synthetic unit vectors (bench/data.py), one image item per file, written through each
store's writer (``open_writer``: upsert_file + replace_items, a commit every 5,000 files, maybe_reindex) into a
local collection and a ``milvus-lite:`` .db, with the index type ``auto`` gives the local store at that size
(Flat below 50k vectors, HNSW32 above) named explicitly for both. Then, per store, ``--queries`` single-query
``search_files(k=10)`` calls: recall@10 against exact search (numpy) and the p50 latency. Build time is until
the collection is searchable with its index built (milvus-lite builds indexes in the background after a flush:
the bench waits for ``pending_index_rows`` to reach 0). ``--factory HNSW32`` names one index for every size. Also
bytes per vector on disk: all files, and the vector index files alone (FAISS's ``.faiss``, milvus-lite's index).
Prints a markdown table and milvus-lite / local ratios.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.data import clustered_vectors
from bench.measure import percentile_ms, ratio, recall_at_k
from bench.report import fmt

K = 10
COMMIT_EVERY = 5000


def factory_for(n: int) -> str:
    from xsearch.index.factory import FLAT_MAX_VECTORS

    return "Flat" if n < FLAT_MAX_VECTORS else "HNSW32"


@functools.lru_cache(maxsize=1)
def _builtin() -> tuple[str, str, int]:
    """(model id, spec, image dimension) of the builtin model: the bench collections carry them so that
    ``Engine.search`` opens them as its own."""
    from xsearch.encoders.registry import load_encoder

    enc = load_encoder("builtin", "cpu")
    return enc.model_id, enc.spec, int(enc.spaces[enc.index_space("image")])


def build(uri: str, base: np.ndarray, factory: str) -> float:
    """Write ``base`` (one image file per vector) through the store's writer; seconds until searchable."""
    from xsearch.index import open_writer
    from xsearch.index.store import StoreSpec

    model_id, model_spec, dim = _builtin()
    if dim != base.shape[1]:
        model_id, model_spec = "bench@0:%d" % base.shape[1], "bench"
    spec = StoreSpec(model_id, model_spec, {"image": base.shape[1]}, factory)
    t0 = time.perf_counter()
    with open_writer(uri, create=spec) as w:
        for start in range(0, len(base), COMMIT_EVERY):
            for i in range(start, min(len(base), start + COMMIT_EVERY)):
                fid = w.upsert_file(f"/b/{i:07d}.png", modality="image", size=1000, mtime_ns=1, hash=None)
                w.replace_items(fid, {"image": ([0.0], base[i:i + 1], None)})
            w.commit()
        w.maybe_reindex()
        _wait_indexed(w)
    return time.perf_counter() - t0


def engine_p50_ms(uri: str, n_queries: int = 50) -> float | None:
    """p50 of ``Engine.search`` (one text query, k=10) on a bench collection; None when its vectors are not the
    builtin model's dimension."""
    from xsearch.core.types import Query
    from xsearch.engine import Engine

    engine = Engine(uri)
    texts = [f"a red circle number {i}" for i in range(n_queries)]
    engine.search([Query("text", texts[0])], to="image", k=K)  # warm up: model, connection
    seconds = []
    for text in texts:
        t0 = time.perf_counter()
        engine.search([Query("text", text)], to="image", k=K)
        seconds.append(time.perf_counter() - t0)
    close = getattr(engine, "close", None)
    if close:
        close()
    return percentile_ms(seconds, 50)


def _wait_indexed(writer, timeout_s: float = 1800.0) -> None:
    """Milvus: until its background index build has covered every row (no-op for the local store)."""
    db = getattr(writer, "_db", None)
    if db is None:
        return
    deadline = time.monotonic() + timeout_s
    name = writer._coll("image")
    db.c.flush(name)
    while time.monotonic() < deadline:
        desc = db.c.describe_index(name, "vector")
        if int(desc.get("pending_index_rows", 0) or 0) == 0:
            return
        time.sleep(0.5)


def measure(uri: str, queries: np.ndarray, truth: np.ndarray) -> dict:
    from xsearch.index import open_store

    with open_store(uri) as store:
        store.search_files("image", queries[:1], K)  # warm up (loads the index)
        found, seconds = [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = store.search_files("image", q[None, :], K)[0]
            seconds.append(time.perf_counter() - t0)
            found.append([int(h.path[3:10]) for h in hits] + [-1] * (K - len(hits)))
        stats = store.stats()["modalities"]["image"]
    return {"recall@10": recall_at_k(np.asarray(found), truth), "p50_ms": percentile_ms(seconds, 50),
            "p99_ms": percentile_ms(seconds, 99), "index": stats["index"],
            "store_memory_bytes": stats.get("memory_bytes"), "store_disk_bytes": stats.get("disk_bytes")}


def _bytes(files) -> int:
    return sum(f.stat().st_size for f in files if f.is_file())


def disk_usage(path: Path, store: str, n: int) -> dict:
    """Bytes per vector a built store left on disk: everything; the image track's vector index files (local: the
    ``.faiss`` file; milvus-lite: its segment index files, e.g. ``*.vector.hnsw.idx``); its row data (local: the
    SQLite catalog; milvus-lite: the track's Parquet segments, vectors included). None where none was found."""
    path = Path(path)
    if store == "local":
        index, data = list(path.glob("image.*.faiss")), [path / "catalog.sqlite"]
    else:
        track = [d for d in (path / "collections").glob("*") if d.name.endswith("image")]
        index = [f for d in track for f in d.rglob("*") if f.parent.name == "indexes"]
        data = [f for d in track for f in d.rglob("*") if f.parent.name == "data"]
    per = {"disk_bytes_per_vector": _bytes(path.rglob("*")) / n,
           "index_bytes_per_vector": _bytes(index) / n if index else None,
           "data_bytes_per_vector": _bytes(data) / n if any(f.is_file() for f in data) else None}
    return per


def run(sizes: list[int], dim: int, n_queries: int, log=print, factory: str | None = None,
        server: str | None = None) -> dict:
    """Both stores (and a Milvus server at ``server``, HOST:PORT) at each size. ``factory``: the index for every
    size (default: what ``auto`` picks per size). Each row also has the bytes per vector the store left on disk
    (:func:`disk_usage`; none for a server), ingest items/s and ``engine_p50_ms``."""
    import uuid

    rows = []
    for n in sizes:
        base = clustered_vectors(n, dim, seed=0, stream=1)
        queries = clustered_vectors(n_queries, dim, seed=0, stream=2)
        truth = np.argsort(-(queries @ base.T), axis=1)[:, :K]
        chosen = factory or factory_for(n)
        with tempfile.TemporaryDirectory(prefix="xsearch-bench-milvus-") as tmp:
            stores = [("local", Path(tmp) / "local", str(Path(tmp) / "local")),
                      ("milvus-lite", Path(tmp) / "m.db", f"milvus-lite:{Path(tmp) / 'm.db'}")]
            if server:
                stores.append(("milvus-server", None, f"milvus://{server}/bench{uuid.uuid4().hex[:10]}"))
            for store, path, uri in stores:
                log(f"{store}: building {n} x {dim} ({chosen}) ...")
                build_s = build(uri, base, chosen)
                usage = disk_usage(path, store, n) if path is not None else {
                    "disk_bytes_per_vector": None, "index_bytes_per_vector": None, "data_bytes_per_vector": None}
                row = {"store": store, "n": n, "dim": dim, "factory": chosen, "build_s": build_s,
                       "ingest_items_per_s": n / build_s, **measure(uri, queries, truth),
                       "engine_p50_ms": engine_p50_ms(uri) if dim == _builtin()[2] else None, **usage}
                log(f"  {row}")
                rows.append(row)
                if path is None:
                    from xsearch.index import delete_store

                    delete_store(uri)
    ratios = {}
    for n in sizes:
        loc = next(r for r in rows if r["n"] == n and r["store"] == "local")
        for other in ("milvus-lite", "milvus-server"):
            them = next((r for r in rows if r["n"] == n and r["store"] == other), None)
            if them is not None:
                ratios.setdefault(other, {})[n] = {key: ratio(them[key], loc[key])
                                                   for key in ("build_s", "p50_ms", "recall@10")}
    return {"rows": rows, "ratios (milvus-lite / local)": ratios.get("milvus-lite", {}),
            "ratios (milvus-server / local)": ratios.get("milvus-server", {}), "queries": n_queries}


def to_markdown(result: dict) -> str:
    lines = ["| store | vectors | index | build (s) | ingest items/s | recall@10 | p50 (ms) | p99 (ms) | "
             "Engine.search p50 (ms) | index file bytes/vector |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['store']} | {r['n']:,} x {r['dim']} | {r['index']} | {r['build_s']:.1f} | "
                     f"{r.get('ingest_items_per_s', 0):,.0f} | {r['recall@10']:.3f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {fmt(r.get('engine_p50_ms'))} | {fmt(r['index_bytes_per_vector'])} |")
    lines += ["", "| store / local | vectors | build | p50 | recall |", "|---|---|---|---|---|"]
    for other in ("milvus-lite", "milvus-server"):
        for n, q in result.get(f"ratios ({other} / local)", {}).items():
            lines.append(f"| {other} | {int(n):,} | {q['build_s']:.2f}x | {q['p50_ms']:.2f}x | "
                         f"{q['recall@10']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000", help="comma-separated vector counts")
    p.add_argument("--dim", type=int, default=256, help="vector dimension (the builtin model's is 256)")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--factory", default=None, help="index for every size, e.g. HNSW32 (default: auto's per size)")
    p.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--server", default=os.environ.get("XSEARCH_TEST_MILVUS_URI") or None,
                   help="HOST:PORT of a Milvus server to add (default $XSEARCH_TEST_MILVUS_URI)")
    args = p.parse_args(argv)
    result = run([int(s) for s in args.sizes.split(",")], args.dim, args.queries, factory=args.factory,
                 server=args.server)
    print(to_markdown(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
