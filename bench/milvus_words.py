"""Keyword search on the Milvus store (BM25 over character n-grams, index/milvus/words.py) against the local store
(SQLite FTS5 trigram), through the store protocol, on the same synthetic OCR lines — one run, both stores:

    python -m bench.milvus_words [--lines 5000] [--queries 50] [--workdir DIR]

Prints, per store: the time to write the lines (one commit), keyword query p50 / p95 (k=10) for "a word and a
number" (OCR-style joined words) and two-character Chinese; the share of queries that find the same top-1, the same
files (k=10, as a set) and a top-1 holding the same share of the query's words on both stores (files holding the
same share are ordered by BM25, which differs between SQLite FTS5 and Milvus); and the Milvus / local latency
ratio. Nothing is embedded (unit vectors).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_lines(n: int, seed: int = 0):
    """``n`` OCR-like lines (one per file), Zipf-like made-up words run together with a number, or Chinese; and the
    query makers (bench/ocr.py's generator)."""
    rng = random.Random(seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(5000)]
    hanzi = [chr(0x4E00 + rng.randrange(3000)) for _ in range(600)]
    chinese = ["".join(rng.choice(hanzi) for _ in range(rng.randint(2, 4))) for _ in range(2000)]
    weights = [1.0 / (r + 10) for r in range(len(vocab))]
    lines = []
    for _ in range(n):
        words = rng.choices(vocab, weights, k=rng.randint(1, 4)) + [str(rng.randint(0, 9999))]
        lines.append("".join(words) if rng.random() < 0.7 else "".join(rng.choices(chinese, k=rng.randint(1, 3))))
    two = [w for w in chinese if len(w) == 2]
    makers = {"a word and a number": lambda: f"{rng.choices(vocab, weights)[0]} {rng.randint(0, 9999)}",
              "two-character Chinese": lambda: rng.choice(two)}
    return lines, makers


def fill(uri: str, lines: list[str]) -> float:
    from xsearch.index import open_writer
    from xsearch.index.store import StoreSpec

    vec = np.zeros((1, 8), dtype=np.float32)
    vec[0, 0] = 1.0
    t0 = time.perf_counter()
    with open_writer(uri, create=StoreSpec("bench@0:8", "bench", {"image": 8}, "Flat")) as w:
        for i, text in enumerate(lines):
            fid = w.upsert_file(f"/p/{i}.jpg", modality="image", size=1, mtime_ns=1, hash=str(i))
            w.replace_items(fid, {"image": ([0.0], vec, None)})
            w.replace_text(fid, [{"track": "ocr", "text": text, "offset": 0.0}], ["ocr"])
    return time.perf_counter() - t0


def run(n_lines: int, n_queries: int, workdir: Path) -> dict:
    from xsearch.index import open_store

    lines, makers = make_lines(n_lines)
    uris = {"local": str(workdir / "local"), "milvus-lite": f"milvus-lite:{workdir / 'm.db'}"}
    out: dict = {"lines": n_lines, "stores": {}, "same_top1": {}}
    fills = {name: fill(uri, lines) for name, uri in uris.items()}
    for kind, make in makers.items():
        queries = [make() for _ in range(n_queries)]
        top1 = {}
        for name, uri in uris.items():
            times, firsts = [], []
            with open_store(uri) as s:
                s.keyword_search("image", queries[0], 10)  # warm
                for q in queries:
                    t0 = time.perf_counter()
                    hits = s.keyword_search("image", q, 10)
                    times.append((time.perf_counter() - t0) * 1000)
                    firsts.append((hits[0].path if hits else None, {h.path for h in hits},
                                   int(hits[0].score * 10) if hits else None))
            times.sort()
            out["stores"].setdefault(name, {"write_s": round(fills[name], 2)})[kind] = (
                round(statistics.median(times), 2), round(times[int(0.95 * len(times))], 2))
            top1[name] = firsts
        pairs = list(zip(top1["local"], top1["milvus-lite"]))
        out["same_top1"][kind] = {
            "top1": sum(a[0] == b[0] for a, b in pairs) / len(pairs),
            "files": sum(a[1] == b[1] for a, b in pairs) / len(pairs),  # the same files found (as a set)
            "tier": sum(a[2] == b[2] for a, b in pairs) / len(pairs)}  # top-1 holds the same share of the words
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=5000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        res = run(args.lines, args.queries, args.workdir or Path(tmp))
    print(f"{res['lines']:,} lines, one per file; k=10; p50 / p95 ms")
    print("| store | write (s) | a word and a number | two-character Chinese |")
    print("|---|---|---|---|")
    for name, r in res["stores"].items():
        print(f"| {name} | {r['write_s']} | {r['a word and a number'][0]} / {r['a word and a number'][1]} | "
              f"{r['two-character Chinese'][0]} / {r['two-character Chinese'][1]} |")
    local, lite = res["stores"]["local"], res["stores"]["milvus-lite"]
    for kind, same in res["same_top1"].items():
        print(f"{kind}: on both stores the same top-1 {same['top1']:.2f}, the same files {same['files']:.2f}, a top-1 "
              f"holding the same share of the words {same['tier']:.2f}; milvus-lite / local p50 "
              f"{lite[kind][0] / max(local[kind][0], 1e-9):.1f}x")


if __name__ == "__main__":
    main()
