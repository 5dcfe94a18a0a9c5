"""`xsearch serve` under load: text-query latency and throughput, in-process and end to end over HTTP.

    python -m bench.serve [--sizes 10000,100000] [--queries 300] [--clients 8] [--factory auto] [--out r.json]

For each size, builds a local collection of synthetic image items (``bench.session.build_collection``: the
builtin model's space, written through the store writer, no decoding), then measures text → image queries
(``limit`` 10) five ways:

- in-process, 1 client: ``Engine.search`` called in a loop (the floor the server adds to);
- in-process, N clients: N threads sharing one Engine;
- HTTP, 1 client: a real ``xsearch serve`` process on 127.0.0.1 and one keep-alive connection;
- HTTP, N clients: N threads, one keep-alive connection each;
- HTTP, N clients while a writer commits: a second process adds 500 items and commits, again and again,
  while the clients query (readers follow each commit: the changed index is reloaded once).

and, as clip-retrieval reports its back-end, the two parts of one query in-process: text encoding alone and
the vector search alone. Every client sends a bounded number of requests (``--queries`` in all), only to
127.0.0.1. Prints a markdown table beside clip-retrieval's published figure (~50 ms per text query at 1M
items: 18.6 ms text encoding + 26.7 ms knn).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

from bench.session import build_collection, percentiles, queries

CLIP_RETRIEVAL = {"items": 1_000_000, "total_ms": 50.0, "text_encoding_ms": 18.6, "knn_ms": 26.7}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(uri: str, home: Path, concurrency: int) -> tuple[subprocess.Popen, int]:
    """`xsearch serve -c URI` on a free port of 127.0.0.1; returns once it answers."""
    port = _free_port()
    env = {**os.environ, "XSEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "xsearch.cli.main", "serve", "-c", uri, "--port", str(port),
                             "--concurrency", str(concurrency)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"xsearch serve exited: {proc.stderr.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/collections")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("xsearch serve did not answer within 300 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def http_client(port: int, collection: str):
    """A function that runs one text search over its own keep-alive connection (one per thread)."""
    local = threading.local()
    path = f"/api/collections/{urllib.parse.quote(collection, safe='')}/search?"

    def query(text: str) -> None:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", path + urllib.parse.urlencode({"q": text, "to": "image", "limit": 10}))
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        if len(json.loads(body)["results"]["image"]) != 10:
            raise RuntimeError("fewer than 10 results")

    return query


def run_load(call, texts: list[str], clients: int) -> dict:
    """``call(text)`` for every text, from ``clients`` threads (each takes the next text until none are left)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    it = iter(texts)

    def worker() -> None:
        while True:
            with lock:
                text = next(it, None)
            if text is None:
                return
            t0 = time.perf_counter()
            try:
                call(text)
            except Exception as e:  # counted, and the run goes on: a benchmark reports, it does not stop
                with lock:
                    errors.append(str(e))
                continue
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out = percentiles(latencies) if latencies else {"p50": None, "p99": None, "mean": None, "n": 0}
    out.update(clients=clients, qps=len(latencies) / wall if wall else None, errors=len(errors),
               first_error=errors[0] if errors else None)
    return out


def _writer_loop(uri: str, stop, commits, batch: int = 500) -> None:
    """Runs in a child process: add ``batch`` synthetic items and commit, until ``stop`` is set."""
    from xsearch.index import open_writer

    rng = np.random.default_rng(7)
    n = 0
    with open_writer(uri, wait_s=30) as w:
        dim = w.dims["image"]
        while not stop.is_set():
            vecs = rng.standard_normal((batch, dim)).astype(np.float32)
            for i in range(batch):
                fid = w.upsert_file(f"/synthetic/live{n + i:07d}.png", modality="image", size=1, mtime_ns=1,
                                    hash=None, width=64, height=64)
                w.replace_items(fid, {"image": ([0.0], vecs[i:i + 1], None)})
            w.commit()
            n += batch
            with commits.get_lock():
                commits.value += 1


def in_process_parts(engine, texts: list[str]) -> dict:
    enc, store = engine.encoder(), engine.store()
    embed_t, knn_t = [], []
    for t in texts:
        t0 = time.perf_counter()
        v = enc.embed("text", [t], space=enc.index_space("image"))
        embed_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.search_files("image", v, 10)
        knn_t.append(time.perf_counter() - t0)
    return {"text_encoding_ms": percentiles(embed_t), "knn_ms": percentiles(knn_t)}


def run_size(items: int, n_queries: int, clients: int, factory: str, log=print) -> dict:
    from xsearch.core.types import Query
    from xsearch.engine import Engine

    with tempfile.TemporaryDirectory(prefix="xsearch-bench-serve-") as tmp:
        uri = build_collection(Path(tmp) / "col", items, factory, log=log)
        texts = queries(n_queries)
        engine = Engine(uri)
        engine.search([Query("text", "warm up")], to="image", k=10)
        index = engine.stats()["modalities"]["image"]["index"]

        def in_process(text: str) -> None:
            engine.search([Query("text", text)], to="image", k=10)

        parts = in_process_parts(engine, texts[:200])  # before the load runs, on an otherwise idle process
        rows = {}
        log(f"serve bench: {items} items ({index}): in-process")
        rows["in-process, 1 client"] = run_load(in_process, texts, 1)
        rows[f"in-process, {clients} clients"] = run_load(in_process, texts, clients)
        engine.close()

        proc, port = start_server(uri, Path(tmp) / "home", concurrency=clients)
        try:
            query = http_client(port, "col")
            for t in texts[:20]:  # warm-up: thumbnails of nothing, just connections and the first load
                query(t)
            log(f"serve bench: {items} items: HTTP")
            rows["HTTP, 1 client"] = run_load(query, texts, 1)
            rows[f"HTTP, {clients} clients"] = run_load(query, texts, clients)
            ctx = multiprocessing.get_context("spawn")
            stop, commits = ctx.Event(), ctx.Value("i", 0)
            writer = ctx.Process(target=_writer_loop, args=(uri, stop, commits))
            writer.start()
            try:
                deadline = time.monotonic() + 120
                while commits.value < 1 and writer.is_alive() and time.monotonic() < deadline:
                    time.sleep(0.1)
                log(f"serve bench: {items} items: HTTP while a writer commits")
                before = commits.value
                row = run_load(query, texts, clients)
                row["commits_during"] = commits.value - before
            finally:
                stop.set()
                writer.join(timeout=120)
            rows[f"HTTP, {clients} clients, writer committing"] = row
        finally:
            stop_server(proc)
    return {"items": items, "index": index, "queries": n_queries, "clients": clients, "rows": rows, **parts}


def table(results: list[dict]) -> str:
    lines = ["| items | index | path | queries/s | p50 ms | p99 ms | errors |", "|---|---|---|---:|---:|---:|---:|"]
    for r in results:
        for name, row in r["rows"].items():
            extra = f" ({row['commits_during']} commits)" if "commits_during" in row else ""
            lines.append(f"| {r['items']:,} | {r['index']} | {name}{extra} | {_f(row['qps'], 1)} | "
                         f"{_f(row['p50'])} | {_f(row['p99'])} | {row['errors']} |")
    lines += ["", "| items | text encoding p50 ms | knn p50 ms | in-process query p50 ms | HTTP query p50 ms |",
              "|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['items']:,} | {_f(r['text_encoding_ms']['p50'])} | {_f(r['knn_ms']['p50'])} | "
                     f"{_f(r['rows']['in-process, 1 client']['p50'])} | {_f(r['rows']['HTTP, 1 client']['p50'])} |")
    c = CLIP_RETRIEVAL
    lines.append(f"| clip-retrieval back-end, published, {c['items']:,} | {c['text_encoding_ms']} | {c['knn_ms']} | "
                 f"~{c['total_ms']:.0f} (their total) | |")
    return "\n".join(lines)


def _f(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated collection sizes")
    ap.add_argument("--queries", type=int, default=300, help="requests per measurement (all clients together)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients in the concurrent rows")
    ap.add_argument("--factory", default="auto", help="FAISS factory string or auto (HNSW32 from 50k items)")
    ap.add_argument("--out", type=Path, help="write every number as JSON")
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    results = [run_size(int(n), args.queries, args.clients, args.factory, log=log) for n in args.sizes.split(",")]
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"{os.cpu_count()} CPUs, load average at the end {load}")
    print(table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
