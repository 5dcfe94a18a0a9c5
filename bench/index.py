"""Index benchmark: build time, query latency, recall@k and memory of our index layer vs exact search and peers.

For each size, clustered synthetic unit vectors (bench.data.clustered_vectors) and, once, the real embeddings
of a generated world go through ``xsearch.index.local.VectorIndex`` as Flat, HNSW32, IVF-Flat and IVF-PQ (FAISS
factory strings, our default search parameters), and through hnswlib and usearch built with the same graph
(M=32, same efConstruction). Each peer's search breadth (ef) is tuned until its recall@k is matched to our
HNSW32's (the smallest ef reaching at least ours - MATCH_TOLERANCE). Recall is against exact search
(faiss.knn on the same vectors).

Compressed kinds (COMPRESSED_KINDS): an IVF-PQ fast-scan first stage re-ranked with float16 exact vectors kept
in a memory-mapped file ("IVF-PQfs+refine", dim/8 4-bit codes; "IVF-PQfs-small+refine", dim/16 of them, half
the codes; the same with an HNSW coarse quantiser, a faster build), and "budget": whatever index/local/budget.py
chooses under ``budget_bytes_per_vector`` × n bytes. For these
the resident memory is measured, not estimated: a fresh process loads the saved index and reports its
anonymous RSS growth (the exact vectors are file pages the kernel can drop, reported apart), then times
single queries with the exact-vector file evicted from the page cache (cold: every candidate is a disk read).
autofaiss (bench/peers.py, its own interpreter) builds its choice under the same memory budget.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.data import clustered_vectors, world_embeddings
from bench.measure import percentile_ms, ratio, recall_at_k, recall_with_ties
from bench.peers import make_peer, peer_version
from bench.report import fmt, table

KINDS = ("Flat", "HNSW32", "IVF-Flat", "IVF-PQ")
COMPRESSED_KINDS = ("IVF-PQfs+refine", "IVF-PQfs-small+refine", "IVF-HNSW-PQfs+refine", "budget")
#: Build-speed variants: our HNSW32 with half / a quarter of the construction breadth (efConstruction 40 / 20
#: instead of 80); compared with HNSW32 at equal recall (the efSearch each needs to reach HNSW32's recall).
BUILD_KINDS = ("HNSW32-efC40", "HNSW32-efC20")
#: efConstruction of each build variant.
EF_CONSTRUCTION = {"HNSW32-efC40": 40, "HNSW32-efC20": 20}
ALL_KINDS = KINDS + COMPRESSED_KINDS + BUILD_KINDS
#: ef values swept for every HNSW implementation (ours via efSearch, peers via ef / expansion_search).
EF_GRID = (10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512)
#: A peer's recall is "matched" when it is at least ours minus this.
MATCH_TOLERANCE = 0.005
#: Vectors per add() call, as an indexing run adds them batch by batch.
ADD_CHUNK = 10_000


@dataclass
class IndexBenchConfig:
    """What the index benchmark measures; bench.run fills it for --quick / default / --full."""

    sizes: tuple[int, ...] = (10_000, 100_000)
    dim: int = 512
    k: int = 10
    n_queries: int = 1000  # batch of queries (recall and per-query time in a batch)
    n_single: int = 300  # single queries timed one by one (p50 / p99)
    kinds: tuple[str, ...] = KINDS
    peers: tuple[str, ...] = ("hnswlib", "usearch")
    world_groups: int = 700  # real embeddings of a generated world of this many groups; 0 skips them
    hnsw_max_build_s: float = 900.0  # an HNSW build estimated to take longer is skipped (with the reason)
    seed: int = 0
    budget_bytes_per_vector: float = 256.0  # memory budget of the "budget" kind and autofaiss: this × n bytes
    autofaiss: bool = False  # also build autofaiss's choice under the same budget (its own interpreter)
    measure_loaded: bool = False  # resident memory and cold-cache latency of compressed kinds in a fresh process
    autofaiss_timeout_s: float = 7200.0  # autofaiss's build + search is abandoned (row skipped, saying so) past this
    rows_log: str | None = None  # append every row as one JSON line as soon as it is measured (long runs)


def factory_for(kind: str, n: int, dim: int, budget_bytes_per_vector: float = 256.0) -> str:
    """The FAISS factory string of one index kind at ``n`` vectors (IVF lists as choose_factory sizes them)."""
    from xsearch.index.factory import HNSW_M, ivf_nlist

    if kind == "Flat":
        return "Flat"
    if kind == "HNSW32" or kind in EF_CONSTRUCTION:
        return f"HNSW{HNSW_M}"
    if kind == "IVF-Flat":
        return f"IVF{ivf_nlist(n)},Flat"
    if kind == "IVF-PQ":
        return f"IVF{ivf_nlist(n)},PQ{max(1, dim // 8)}"
    if kind == "IVF-PQfs+refine":
        return f"IVF{ivf_nlist(n)},PQ{max(1, dim // 8)}x4fs,Refine(SQfp16)"
    if kind == "IVF-PQfs-small+refine":
        return f"IVF{ivf_nlist(n)},PQ{max(1, dim // 16)}x4fs,Refine(SQfp16)"
    if kind == "IVF-HNSW-PQfs+refine":
        return f"IVF{ivf_nlist(n)}_HNSW32,PQ{max(1, dim // 8)}x4fs,Refine(SQfp16)"
    if kind == "budget":
        return budget_choice(n, dim, budget_bytes_per_vector).factory
    raise ValueError(f"unknown index kind {kind!r}; known: {', '.join(ALL_KINDS)}")


def budget_choice(n: int, dim: int, budget_bytes_per_vector: float):
    """index/local/budget.py's choice for ``n`` vectors under ``budget_bytes_per_vector`` × n bytes."""
    from xsearch.index.local.budget import choose_factory

    return choose_factory(n, dim, int(budget_bytes_per_vector * n))


def min_training_vectors(factory: str) -> int:
    """Fewest vectors that can train ``factory``: one per IVF list, 2**bits for a PQ's codebooks (256 at 8 bits)."""
    head = factory.split(",")
    need = int(head[0][3:].split("_")[0]) if head[0].startswith("IVF") else 0
    for part in head:
        if part.startswith("PQ"):
            bits = part[2:].rstrip("fsr").partition("x")[2]
            need = max(need, 2 ** int(bits or 8))
    return need


def _nlist(factory: str) -> int | None:
    """The list count of an IVF factory string ("IVF4096_HNSW32,PQ64x4fs,..." → 4096), else None."""
    head = factory.split(",")[0]
    if head.startswith("IVF"):
        return int(head[3:].split("_")[0])
    return None


def _faiss():
    # The same OpenMP policy our index layer sets before FAISS loads (threads sleep instead of spinning).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import faiss

    return faiss


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Positions (= ids) of the exact top-k inner products."""
    faiss = _faiss()
    _, ids = faiss.knn(queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)
    return ids


def _time_single(search, queries: np.ndarray, n: int) -> list[float]:
    times = []
    for i in range(min(n, len(queries))):
        q = queries[i:i + 1]
        t0 = time.perf_counter()
        search(q)
        times.append(time.perf_counter() - t0)
    return times


def _time_batch(search, queries: np.ndarray):
    """(results, seconds per query): one timed batch, or the median of three when one takes under a second."""
    search(queries[:8])  # warm caches / thread pools
    times = []
    while True:
        t0 = time.perf_counter()
        found = search(queries)
        times.append(time.perf_counter() - t0)
        if len(times) == 3 or times[0] >= 1.0:
            return found, float(np.median(times)) / len(queries)


@contextmanager
def _faiss_threads(n: int):
    """FAISS's OpenMP thread count set to ``n`` inside the block."""
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@contextmanager
def _ef_construction(value: int | None):
    """Our HNSW's efConstruction set to ``value`` inside the block (None: unchanged)."""
    from xsearch.index import factory

    before = factory.HNSW_EF_CONSTRUCTION
    if value is not None:
        factory.HNSW_EF_CONSTRUCTION = value
    try:
        yield
    finally:
        factory.HNSW_EF_CONSTRUCTION = before


def _hnsw_build_estimate(prev: dict | None, n: int) -> float | None:
    """Build seconds at ``n`` extrapolated from a smaller build as n·log n (HNSW insertion cost)."""
    if not prev or not prev.get("build_s"):
        return None
    n0 = prev["n"]
    return prev["build_s"] * (n / n0) * (math.log(n) / math.log(n0))


_LOADED_SCRIPT = """
import json, os, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np
from xsearch.index.local import VectorIndex
from xsearch.index.local.exact import sidecar_path

def rss():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM"):
                fields[key] = int(value.split()[0]) * 1024
    return fields

path, queries_path, k, n_single = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
queries = np.load(queries_path)
import faiss
faiss.omp_set_num_threads(1)
VectorIndex.create(queries.shape[1], "Flat", use_gpu=False).search(queries[:2], 1)  # warm the libraries
before = rss()
index = VectorIndex.load(path, use_gpu=False)
loaded = rss()
out = {"rss_anon_bytes": loaded["RssAnon"] - before["RssAnon"]}
vecs = sidecar_path(path)
if vecs.is_file():
    fd = os.open(vecs, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # clean pages leave the page cache: cold reads
    os.close(fd)
    times = []
    for i in range(min(n_single, len(queries))):
        t0 = time.perf_counter()
        index.search(queries[i:i + 1], k)
        times.append(time.perf_counter() - t0)
    out["cold_p50_ms"] = float(np.percentile(times, 50) * 1000)
    out["cold_p99_ms"] = float(np.percentile(times, 99) * 1000)
    after = rss()
    out["rss_file_after_queries_bytes"] = after["RssFile"] - before["RssFile"]
    out["rss_anon_after_queries_bytes"] = after["RssAnon"] - before["RssAnon"]
print(json.dumps(out))
"""


def measure_loaded(path: Path, queries: np.ndarray, k: int, n_single: int, scratch: Path) -> dict:
    """Resident memory of a saved index loaded by a fresh process (RssAnon growth), and for a refined index the
    single-query latency with its exact-vector file evicted from the page cache."""
    import subprocess
    import sys

    qpath = scratch / "queries.npy"
    np.save(qpath, np.ascontiguousarray(queries, dtype=np.float32))
    proc = subprocess.run([sys.executable, "-c", _LOADED_SCRIPT, str(path), str(qpath), str(k), str(n_single)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"loaded_error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_ours(factory: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, cfg: IndexBenchConfig,
                 scratch: Path, use_gpu: bool, sweep: bool, search_defaults: dict | None = None,
                 loaded: bool = False) -> dict:
    """Build one VectorIndex and measure it (default search params; an efSearch sweep for HNSW if ``sweep``).

    ``search_defaults`` (a budget choice's) are applied before building; ``loaded`` adds measure_loaded's
    resident memory and cold-cache latency."""
    from xsearch.index.local import VectorIndex
    from xsearch.index.local.exact import sidecar_path

    n, dim = base.shape
    ids = np.arange(n, dtype=np.int64)
    index = VectorIndex.create(dim, factory, use_gpu=use_gpu)
    if search_defaults:
        index.set_search_defaults(search_defaults)
    t0 = time.perf_counter()
    for start in range(0, n, ADD_CHUNK):
        index.add(ids[start:start + ADD_CHUNK], base[start:start + ADD_CHUNK])
    training = "none"
    if not index.is_trained:  # fewer vectors than FAISS's 39 per centroid: train on what there is
        index.train(base)
        training = "explicit, on all vectors (fewer than 39 per centroid)"
    elif factory.startswith("IVF"):
        training = "automatic, on the staged vectors"
    build_s = time.perf_counter() - t0
    path = scratch / "ours.faiss"
    refined = bool(index.describe().get("refine"))
    save_s = None
    if refined:  # searched as a collection reader has it: loaded, exact vectors memory-mapped (page cache warm)
        t_save = time.perf_counter()
        index.save(path)
        save_s = time.perf_counter() - t_save
        index = VectorIndex.load(path, use_gpu=use_gpu)

    k = cfg.k
    found, batch_s = _time_batch(lambda q: index.search(q, k)[1], queries)
    single = _time_single(lambda q: index.search(q, k), queries, cfg.n_single)
    with _faiss_threads(1):  # what single queries cost without waking OpenMP threads (peers run them on one)
        single_1t = _time_single(lambda q: index.search(q, k), queries, cfg.n_single)
    if not refined:
        t_save = time.perf_counter()
        index.save(path)
        save_s = time.perf_counter() - t_save
    vecs = sidecar_path(path)
    saved = path.stat().st_size + (vecs.stat().st_size if vecs.is_file() else 0)
    loaded_row = measure_loaded(path, queries, cfg.k, cfg.n_single, scratch) if loaded else {}
    row = {
        "library": "xsearch", "kind": None, "factory": factory, "n": n, "dim": dim,
        "params": index.search_defaults(), "training": training,
        "build_s": build_s, "recall": recall_at_k(found, truth),
        "recall_ties": recall_with_ties(found, truth, base, queries),
        "batch_ms_per_query": batch_s * 1000, "p50_ms": percentile_ms(single, 50), "p99_ms": percentile_ms(single, 99),
        "p50_ms_1thread": percentile_ms(single_1t, 50), "p99_ms_1thread": percentile_ms(single_1t, 99),
        "bytes_per_vector": saved / n, "ram_bytes_per_vector": index.memory_bytes() / n, "save_s": save_s,
    }
    if "rss_anon_bytes" in loaded_row:
        row["rss_bytes_per_vector"] = loaded_row["rss_anon_bytes"] / n
        for key in ("cold_p50_ms", "cold_p99_ms"):
            if key in loaded_row:
                row[key] = loaded_row[key]
        if "rss_file_after_queries_bytes" in loaded_row:
            row["rss_file_after_queries_bytes_per_vector"] = loaded_row["rss_file_after_queries_bytes"] / n
    elif loaded_row:
        row["loaded_error"] = loaded_row.get("loaded_error")
    calibration = index.describe().get("nprobe_calibration")
    if calibration:
        row["calibration"] = calibration
    nlist = _nlist(factory)
    if nlist:  # recall vs lists probed (at the default k_factor): where the first stage caps recall
        probes = sorted({p for p in (nlist // 64, nlist // 32, nlist // 16, nlist // 8, nlist // 4, nlist // 2,
                                     index.search_defaults().get("nprobe", 0)) if 1 <= p <= nlist})
        row["nprobe_sweep"] = []
        for p in probes:
            found, per_q = _time_batch(lambda q, p=p: index.search(q, k, params={"nprobe": p})[1], queries)
            row["nprobe_sweep"].append({"nprobe": p, "recall": recall_at_k(found, truth),
                                        "batch_ms_per_query": per_q * 1000})
    if index.describe().get("refine"):
        row["refine_sweep"] = []
        for kf in (5, 10, 20, 40):
            found, per_q = _time_batch(lambda q, kf=kf: index.search(q, k, params={"k_factor": kf})[1], queries)
            row["refine_sweep"].append({"k_factor": kf, "recall": recall_at_k(found, truth),
                                        "batch_ms_per_query": per_q * 1000})
    if sweep:
        row["sweep"] = []
        for ef in EF_GRID:
            found, per_q = _time_batch(lambda q, ef=ef: index.search(q, k, params={"efSearch": ef})[1], queries)
            row["sweep"].append({"ef": ef, "recall": recall_at_k(found, truth), "batch_ms_per_query": per_q * 1000})
    index = None
    for leftover in (path, vecs):
        leftover.unlink(missing_ok=True)
    return row


def measure_peer(name: str, base: np.ndarray, queries: np.ndarray, truth: np.ndarray, cfg: IndexBenchConfig,
                 target_recall: float | None) -> dict:
    """Build a peer with our HNSW graph parameters; tune ef to ``target_recall``; measure at that ef."""
    from xsearch.index.factory import HNSW_EF_CONSTRUCTION, HNSW_M

    n, dim = base.shape
    peer = make_peer(name, dim, HNSW_M, HNSW_EF_CONSTRUCTION)
    row = {"library": name, "version": peer_version(name), "kind": "HNSW32", "n": n, "dim": dim}
    if isinstance(peer, str):
        return {**row, "skipped": peer}
    t0 = time.perf_counter()
    peer.build(base, np.arange(n, dtype=np.int64))
    row["build_s"] = time.perf_counter() - t0
    k = cfg.k
    sweep = []
    for ef in EF_GRID:
        if ef < k:
            continue
        peer.set_ef(ef)
        found, per_q = _time_batch(lambda q: peer.search(q, k), queries)
        sweep.append({"ef": ef, "recall": recall_at_k(found, truth), "batch_ms_per_query": per_q * 1000})
    row["sweep"] = sweep
    if target_recall is None:
        chosen = next((s for s in sweep if s["ef"] >= 128), sweep[-1])
        row["matched"] = "no HNSW32 of ours at this size: ef=128 or the largest swept"
    else:
        reaching = [s for s in sweep if s["recall"] >= target_recall - MATCH_TOLERANCE]
        chosen = reaching[0] if reaching else max(sweep, key=lambda s: s["recall"])
        row["matched"] = (f"recall within {MATCH_TOLERANCE} of ours" if reaching
                          else "never reached ours; best ef swept")
    peer.set_ef(chosen["ef"])
    found, per_q = _time_batch(lambda q: peer.search(q, k), queries)
    single = _time_single(lambda q: peer.search(q, k, threads=1), queries, cfg.n_single)
    row.update({
        "factory": f"HNSW{HNSW_M}", "params": {"ef": chosen["ef"]}, "recall": recall_at_k(found, truth),
        "recall_ties": recall_with_ties(found, truth, base, queries),
        "batch_ms_per_query": per_q * 1000, "p50_ms": percentile_ms(single, 50), "p99_ms": percentile_ms(single, 99),
        "bytes_per_vector": peer.serialized_bytes() / n,
        "ram_bytes_per_vector": (peer.ram_bytes() / n) if peer.ram_bytes() is not None else None,
    })
    return row


def _bench_dataset(label: str, base: np.ndarray, queries: np.ndarray, cfg: IndexBenchConfig, scratch: Path,
                   use_gpu: bool, previous: dict, log) -> dict:
    """Every index kind and peer on one dataset; ``previous`` holds the last HNSW builds (for skip estimates)."""
    n, dim = base.shape
    t0 = time.perf_counter()
    truth = exact_top_k(base, queries, cfg.k)
    result = {"label": label, "n": n, "dim": dim, "n_queries": len(queries), "exact_s": time.perf_counter() - t0,
              "load_average_start": _load(), "rows": []}

    def add_row(row: dict) -> None:
        result["rows"].append(row)
        if cfg.rows_log:
            with open(cfg.rows_log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"dataset": label, **row}, default=str) + "\n")

    for kind in cfg.kinds:
        factory = factory_for(kind, n, dim, cfg.budget_bytes_per_vector)
        choice = budget_choice(n, dim, cfg.budget_bytes_per_vector) if kind == "budget" else None
        same = next((r for r in result["rows"] if choice is not None and r.get("library") == "xsearch"
                     and r.get("factory") == factory and "skipped" not in r and not choice.search), None)
        if same is not None:  # the budget's choice was measured already under its own kind name: not rebuilt
            add_row({**same, "kind": kind, "choice": choice.to_dict(), "same_build_as": same["kind"]})
            continue
        need = min_training_vectors(factory)
        if n < need:
            add_row({"library": "xsearch", "kind": kind, "factory": factory, "n": n,
                     "skipped": f"{n} vectors are too few to train it (needs {need})"})
            continue
        if kind == "HNSW32":
            est = _hnsw_build_estimate(previous.get("xsearch"), n)
            if est is not None and est > cfg.hnsw_max_build_s:
                add_row({"library": "xsearch", "kind": kind, "factory": factory, "n": n,
                         "skipped": f"build estimated at {est:.0f} s (> {cfg.hnsw_max_build_s:.0f} s)"})
                continue
        log(f"  {label}: xsearch {factory} ({kind})")
        with _ef_construction(EF_CONSTRUCTION.get(kind)):
            row = measure_ours(factory, base, queries, truth, cfg, scratch, use_gpu,
                               sweep=kind == "HNSW32" or kind in EF_CONSTRUCTION,
                               search_defaults=choice.search if choice else None,
                               loaded=cfg.measure_loaded and (kind in COMPRESSED_KINDS or kind in ("Flat", "HNSW32")))
        if kind in EF_CONSTRUCTION:
            row["params"] = {**row["params"], "efConstruction": EF_CONSTRUCTION[kind]}
        row["kind"] = kind
        if choice is not None:
            row["choice"] = choice.to_dict()
        add_row(row)
        if kind == "HNSW32":
            previous["xsearch"] = row
    ours_hnsw = next((r for r in result["rows"] if r["kind"] == "HNSW32" and "skipped" not in r), None)
    for name in cfg.peers:
        est = _hnsw_build_estimate(previous.get(name), n)
        if est is not None and est > cfg.hnsw_max_build_s:
            add_row({"library": name, "kind": "HNSW32", "n": n,
                     "skipped": f"build estimated at {est:.0f} s (> {cfg.hnsw_max_build_s:.0f} s)"})
            continue
        log(f"  {label}: {name}")
        row = measure_peer(name, base, queries, truth, cfg, ours_hnsw["recall"] if ours_hnsw else None)
        add_row(row)
        if "skipped" not in row:
            previous[name] = row
    if cfg.autofaiss:
        log(f"  {label}: autofaiss under {cfg.budget_bytes_per_vector:g} B/vector")
        add_row(measure_autofaiss(base, queries, truth, cfg, scratch))
    result["ratios"] = _ratios(result["rows"])
    result["load_average_end"] = _load()
    return result


def _load() -> list[float] | None:
    from bench.machine import load_average

    return load_average()


def measure_autofaiss(base: np.ndarray, queries: np.ndarray, truth: np.ndarray, cfg: IndexBenchConfig,
                      scratch: Path) -> dict:
    """autofaiss's own choice and search parameters under the budget kind's memory budget."""
    from bench.peers import run_autofaiss

    n, dim = base.shape
    budget = int(cfg.budget_bytes_per_vector * n)
    row = {"library": "autofaiss", "kind": "auto", "n": n, "dim": dim, "memory_budget_bytes": budget}
    got = run_autofaiss(base, queries, cfg.k, budget, cfg.n_single, scratch, timeout_s=cfg.autofaiss_timeout_s)
    if "skipped" in got:
        return {**row, "skipped": got["skipped"]}
    infos = got.get("infos", {})
    row.update({
        "version": got.get("version"), "factory": infos.get("index_key", "?"),
        "params": {"autofaiss": infos.get("index_param", "?")}, "build_s": got["build_s"],
        "recall": recall_at_k(got["found"], truth), "batch_ms_per_query": got["batch_s_per_query"] * 1000,
        "recall_ties": recall_with_ties(got["found"], truth, base, queries),
        "p50_ms": percentile_ms(got["single_s"], 50), "p99_ms": percentile_ms(got["single_s"], 99),
        "bytes_per_vector": got["bytes"] / n, "ram_bytes_per_vector": got["bytes"] / n, "infos": infos,
    })
    return row


def _ratios(rows: list[dict]) -> dict:
    """Ours vs exact (Flat) and ours (HNSW32) vs each peer; values are ours / other."""
    live = [r for r in rows if "skipped" not in r]
    flat = next((r for r in live if r["library"] == "xsearch" and r["kind"] == "Flat"), None)
    hnsw = next((r for r in live if r["library"] == "xsearch" and r["kind"] == "HNSW32"), None)
    out = {"vs_exact": [], "vs_peers": []}
    for r in live:
        if r["library"] == "xsearch" and flat is not None:
            out["vs_exact"].append({
                "kind": r["kind"], "factory": r["factory"], "recall": r["recall"],
                "batch_speedup": ratio(flat["batch_ms_per_query"], r["batch_ms_per_query"]),
                "p50_speedup": ratio(flat["p50_ms"], r["p50_ms"]),
                "build_ratio": ratio(r["build_s"], flat["build_s"]),
                "memory_ratio": ratio(r["bytes_per_vector"], flat["bytes_per_vector"]),
            })
        if r["library"] not in ("xsearch", "autofaiss") and hnsw is not None:
            out["vs_peers"].append({
                "peer": r["library"], "ours_recall": hnsw["recall"], "peer_recall": r["recall"],
                "peer_ef": r["params"]["ef"], "ours_efSearch": hnsw["params"].get("efSearch"),
                "build": ratio(hnsw["build_s"], r["build_s"]),
                "p50": ratio(hnsw["p50_ms"], r["p50_ms"]), "p99": ratio(hnsw["p99_ms"], r["p99_ms"]),
                "p50_1thread": ratio(hnsw["p50_ms_1thread"], r["p50_ms"]),
                "batch": ratio(hnsw["batch_ms_per_query"], r["batch_ms_per_query"]),
                "bytes": ratio(hnsw["bytes_per_vector"], r["bytes_per_vector"]),
                "matched_at_peer_recall": _ours_at_recall(hnsw, r["recall"], r["batch_ms_per_query"]),
                "matched": r["matched"],
            })
    auto = next((r for r in live if r["library"] == "autofaiss"), None)
    out["compressed"] = []
    for r in live:
        if r["library"] != "xsearch" or r["kind"] not in COMPRESSED_KINDS:
            continue
        resident = r.get("rss_bytes_per_vector", r["ram_bytes_per_vector"])
        entry = {"kind": r["kind"], "factory": r["factory"], "recall": r["recall"],
                 "recall_ties": r.get("recall_ties"), "p50_ms": r["p50_ms"],
                 "resident_bytes_per_vector": resident,
                 "resident_over_flat": ratio(resident, flat.get("rss_bytes_per_vector", flat["ram_bytes_per_vector"]))
                 if flat else None,
                 "build_over_hnsw": ratio(r["build_s"], hnsw["build_s"]) if hnsw else None,
                 "recall_minus_hnsw": (r["recall"] - hnsw["recall"]) if hnsw else None}
        if auto is not None:
            entry.update({"autofaiss_factory": auto["factory"], "autofaiss_recall": auto["recall"],
                          "autofaiss_recall_ties": auto.get("recall_ties"),
                          "recall_ties_over_autofaiss": ratio(r.get("recall_ties"), auto.get("recall_ties")),
                          "recall_over_autofaiss": ratio(r["recall"], auto["recall"]),
                          "build_over_autofaiss": ratio(r["build_s"], auto["build_s"]),
                          "p50_over_autofaiss": ratio(r["p50_ms"], auto["p50_ms"]),
                          "bytes_over_autofaiss": ratio(resident, auto["ram_bytes_per_vector"])})
        out["compressed"].append(entry)
    out["build_variants"] = []
    for r in live:
        if r["library"] != "xsearch" or r["kind"] not in BUILD_KINDS + ("IVF-HNSW-PQfs+refine",) or hnsw is None:
            continue
        entry = {"kind": r["kind"], "factory": r["factory"], "params": r["params"], "build_s": r["build_s"],
                 "build_over_hnsw": ratio(r["build_s"], hnsw["build_s"]), "recall": r["recall"],
                 "hnsw_recall": hnsw["recall"], "batch_over_hnsw": ratio(r["batch_ms_per_query"],
                                                                          hnsw["batch_ms_per_query"])}
        reaching = [s for s in r.get("sweep", []) if s["recall"] >= hnsw["recall"] - MATCH_TOLERANCE]
        if reaching:  # the smallest efSearch at which the variant reaches our HNSW32's recall
            s = reaching[0]
            entry["at_equal_recall"] = {"efSearch": s["ef"], "recall": s["recall"],
                                        "batch_over_hnsw": ratio(s["batch_ms_per_query"],
                                                                 hnsw["batch_ms_per_query"])}
        out["build_variants"].append(entry)
    return out


def _ours_at_recall(hnsw: dict, recall: float, peer_batch_ms: float) -> dict | None:
    """Our sweep point with the smallest efSearch reaching the peer's recall (less tolerance): both sides at
    the same recall, so the batch-time ratio compares the engines rather than the default ef."""
    reaching = [s for s in hnsw.get("sweep", []) if s["recall"] >= recall - MATCH_TOLERANCE]
    if not reaching:
        return None
    s = reaching[0]
    return {"efSearch": s["ef"], "recall": s["recall"], "batch": ratio(s["batch_ms_per_query"], peer_batch_ms)}


def run(cfg: IndexBenchConfig, workdir: Path, device: str = "cpu", log=print) -> dict:
    """The index benchmark over ``cfg.sizes`` (synthetic) and a generated world's embeddings (peers on CPU)."""
    from xsearch.index.local.gpu import gpu_available

    use_gpu = device.startswith("cuda") and gpu_available()  # FAISS on GPU only with a GPU build of FAISS
    scratch = Path(tempfile.mkdtemp(prefix="index-", dir=workdir))
    out = {"config": asdict(cfg), "datasets": []}
    try:
        previous: dict = {}
        for n in sorted(cfg.sizes):
            log(f"index: synthetic n={n}")
            base = clustered_vectors(n, cfg.dim, seed=cfg.seed, stream=1)
            queries = clustered_vectors(cfg.n_queries, cfg.dim, seed=cfg.seed, stream=2)
            out["datasets"].append(_bench_dataset(f"clustered-{n}", base, queries, cfg, scratch, use_gpu,
                                                  previous, log))
            del base, queries
        if cfg.world_groups:
            log(f"index: embeddings of a {cfg.world_groups}-group world")
            vectors, info = world_embeddings(workdir, cfg.world_groups, device=device)
            order = np.random.default_rng(cfg.seed).permutation(len(vectors))
            n_q = min(cfg.n_queries, max(1, len(vectors) // 10))
            queries, base = vectors[order[:n_q]], vectors[order[n_q:]]
            result = _bench_dataset(f"world-{cfg.world_groups}", np.ascontiguousarray(base),
                                    np.ascontiguousarray(queries), cfg, scratch, use_gpu, {}, log)
            result["source"] = info
            out["datasets"].append(result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def to_markdown(result: dict) -> str:
    """Per dataset: one row per index, then the ratios to exact search and to the peers."""
    parts = []
    for ds in result["datasets"]:
        head = (f"#### {ds['label']}: {ds['n']} vectors × {ds['dim']}-d, {ds['n_queries']} queries, "
                f"recall@{result['config']['k']} vs exact")
        if "source" in ds:
            src = ds["source"]
            head += (f" (builtin model {src['model_id']}, {'trained' if src['trained'] else 'random weights'})")
        if ds.get("load_average_start"):
            head += (f"; load average {', '.join(map(str, ds['load_average_start']))} at its start, "
                     f"{', '.join(map(str, ds.get('load_average_end') or []))} at its end")
        parts.append(head)
        rows = []
        for r in ds["rows"]:
            name = r["library"] + (f" {r['version']}" if r.get("version") else "")
            if "skipped" in r:
                rows.append([name, r.get("factory", r["kind"]), "skipped: " + r["skipped"]] + [""] * 11)
                continue
            params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
            one = (f"{fmt(r['p50_ms_1thread'])} / {fmt(r['p99_ms_1thread'])}" if "p50_ms_1thread" in r
                   else "(one thread)")
            cold = f"{fmt(r['cold_p50_ms'])} / {fmt(r['cold_p99_ms'])}" if "cold_p50_ms" in r else "-"
            rows.append([name, r["factory"], params, r["build_s"], r["recall"], r.get("recall_ties"), r["p50_ms"],
                         r["p99_ms"], one,
                         r["batch_ms_per_query"], r["bytes_per_vector"], r.get("ram_bytes_per_vector"),
                         r.get("rss_bytes_per_vector"), cold])
        parts.append(table(["library", "index", "search params", "build s", "recall", "recall, ties counted",
                            "p50 ms", "p99 ms",
                            "p50 / p99 ms, 1 FAISS thread", "batch ms/query", "bytes/vec (saved, all files)",
                            "bytes/vec (RAM est.)", "bytes/vec resident (measured)",
                            "cold-cache p50 / p99 ms"], rows))
        vs_exact = ds["ratios"]["vs_exact"]
        if vs_exact:
            parts.append("Ours vs exact search (Flat): speedup = Flat time / this index's time; "
                         "memory = this / Flat.")
            parts.append(table(["index", "recall", "batch speedup", "p50 speedup", "build / Flat", "memory / Flat"],
                               [[v["factory"], v["recall"], v["batch_speedup"], v["p50_speedup"], v["build_ratio"],
                                 v["memory_ratio"]] for v in vs_exact]))
        compressed = ds["ratios"].get("compressed") or []
        if compressed:
            parts.append("Compressed search with exact re-ranking: resident = anonymous memory a fresh process "
                         "gains by loading the index (exact vectors are a memory-mapped file, read only for "
                         "candidates); ratios are ours / other (build < 1: ours faster; recall > 1: ours better).")
            parts.append(table(
                ["kind", "index", "recall (ties counted)", "p50 ms", "resident B/vec", "resident / Flat",
                 "build / our HNSW32", "recall − our HNSW32", "autofaiss index", "autofaiss recall (ties counted)",
                 "recall / autofaiss (ties counted)", "build / autofaiss", "p50 / autofaiss"],
                [[c["kind"], c["factory"], f"{fmt(c['recall'])} ({fmt(c.get('recall_ties'))})", c["p50_ms"],
                  c["resident_bytes_per_vector"], c["resident_over_flat"], c["build_over_hnsw"],
                  c["recall_minus_hnsw"], c.get("autofaiss_factory", "-"),
                  f"{fmt(c['autofaiss_recall'])} ({fmt(c.get('autofaiss_recall_ties'))})"
                  if "autofaiss_recall" in c else "-",
                  f"{fmt(c.get('recall_over_autofaiss'))} ({fmt(c.get('recall_ties_over_autofaiss'))})"
                  if "autofaiss_recall" in c else "-",
                  c.get("build_over_autofaiss"), c.get("p50_over_autofaiss")] for c in compressed]))
            probed = [r for r in ds["rows"] if r.get("nprobe_sweep")]
            if probed:
                parts.append("IVF lists probed (nprobe; * = the calibrated default, see index/local/tuning.py): "
                             "recall / batch ms per query, at the default k_factor:")
                rows = []
                for r in probed:
                    default = (r.get("calibration") or {}).get("nprobe", r["params"].get("nprobe"))
                    rows.append([r["factory"], " · ".join(
                        f"{s['nprobe']}{'*' if s['nprobe'] == default else ''}: {fmt(s['recall'])} / "
                        f"{fmt(s['batch_ms_per_query'])}" for s in r["nprobe_sweep"])])
                parts.append(table(["index", "nprobe: recall / batch ms"], rows))
            sweeps = [r for r in ds["rows"] if r.get("refine_sweep")]
            if sweeps:
                parts.append("Re-ranked candidates per result (k_factor): recall / batch ms per query:")
                parts.append(table(["index"] + [f"k_factor={s['k_factor']}" for s in sweeps[0]["refine_sweep"]],
                                   [[r["factory"]] + [f"{fmt(s['recall'])} / {fmt(s['batch_ms_per_query'])}"
                                                      for s in r["refine_sweep"]] for r in sweeps]))
        variants = ds["ratios"].get("build_variants") or []
        if variants:
            parts.append("Faster builds vs our HNSW32 (efConstruction 80): build time, and search cost at equal "
                         "recall (the smallest efSearch at which the variant reaches HNSW32's recall; ratios "
                         "< 1: the variant is faster).")
            rows = []
            for v in variants:
                eq = v.get("at_equal_recall")
                rows.append([v["kind"], v["factory"], v["build_s"], v["build_over_hnsw"],
                             f"{fmt(v['recall'])} / {fmt(v['hnsw_recall'])}", v["batch_over_hnsw"],
                             f"efSearch={eq['efSearch']}: {fmt(eq['recall'])}, batch {fmt(eq['batch_over_hnsw'])}"
                             if eq else "-"])
            parts.append(table(["variant", "index", "build s", "build / HNSW32", "recall (default) / HNSW32's",
                                "batch / HNSW32 (default)", "at HNSW32's recall"], rows))
        vs_peers = ds["ratios"]["vs_peers"]
        if vs_peers:
            parts.append("Ours (HNSW32, default efSearch) vs peer at matched recall: ours / peer "
                         "(< 1: ours faster or smaller). Last column: ours at the smallest efSearch reaching "
                         "the peer's recall.")
            rows = []
            for v in vs_peers:
                m = v["matched_at_peer_recall"]
                same = f"{fmt(m['batch'])} (efSearch={m['efSearch']}, recall {fmt(m['recall'])})" if m else "-"
                reached = "" if v["matched"].startswith("recall within") else f" ({v['matched']})"
                rows.append([v["peer"], f"{fmt(v['ours_recall'])} / {fmt(v['peer_recall'])}{reached}",
                             f"{v['ours_efSearch']} / {v['peer_ef']}", v["build"], v["p50"], v["p50_1thread"],
                             v["p99"], v["batch"], v["bytes"], same])
            parts.append(
                table(
                    [
                        "peer",
                        "recall ours / peer",
                        "ef ours / peer",
                        "build",
                        "p50",
                        "p50 (ours on 1 thread)",
                        "p99",
                        "batch",
                        "bytes/vec",
                        "batch at equal recall",
                    ],
                    rows,
                )
            )
        sweeps = [r for r in ds["rows"] if r.get("sweep")]
        if sweeps:
            shown = (16, 32, 64, 128, 256)
            parts.append("HNSW recall / batch ms per query by ef (efSearch for ours):")
            rows = []
            for r in sweeps:
                by_ef = {s["ef"]: s for s in r["sweep"]}
                label = r["library"] + ("" if r["kind"] == "HNSW32" else f" {r['kind']}")
                rows.append([label] + [f"{fmt(by_ef[e]['recall'])} / {fmt(by_ef[e]['batch_ms_per_query'])}"
                                              if e in by_ef else "-" for e in shown])
            parts.append(table(["library"] + [f"ef={e}" for e in shown], rows))
    return "\n\n".join(parts)
