"""The peer libraries behind one small interface: hnswlib and usearch (the ``bench`` extra), and autofaiss.

hnswlib and usearch are built with the same graph as our HNSW32 (M = 32 links per node, 2·M on the base layer,
the same efConstruction), with inner-product distance, on every core; single queries use one thread. usearch
also runs with its own quantised storage: ``usearch-f16`` (half floats) and ``usearch-i8`` (8-bit integers).

autofaiss (clip-retrieval's index builder) pins numpy < 2, which this project's environment cannot take, so it
runs in its own virtual environment as a subprocess (:func:`run_autofaiss`): same vectors (a .npy file), same
memory budget (``max_index_memory_usage``), same 2 cores; it picks its index and its search parameters itself.
Install it once with ``python -m venv /tmp/autofaiss-venv && /tmp/autofaiss-venv/bin/pip install autofaiss
faiss-cpu==1.15.1 'pyarrow<21'`` (or point XSEARCH_AUTOFAISS_PYTHON at another interpreter that has it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

PEERS = ("hnswlib", "usearch", "usearch-f16", "usearch-i8")
AUTOFAISS_PYTHON_DEFAULT = "/tmp/autofaiss-venv/bin/python"


def _threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class HnswlibPeer:
    """hnswlib.Index in 'ip' space."""

    name = "hnswlib"

    def __init__(self, dim: int, m: int, ef_construction: int):
        import hnswlib

        self._lib = hnswlib
        self.dim, self.m, self.ef_construction = dim, m, ef_construction
        self.index = None

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.index = self._lib.Index(space="ip", dim=self.dim)
        self.index.init_index(max_elements=len(vectors), ef_construction=self.ef_construction, M=self.m,
                              random_seed=100)
        self.index.add_items(vectors, ids, num_threads=_threads())

    def set_ef(self, ef: int) -> None:
        self.index.set_ef(int(ef))

    def search(self, queries: np.ndarray, k: int, threads: int | None = None) -> np.ndarray:
        labels, _ = self.index.knn_query(queries, k=k, num_threads=threads or _threads())
        return labels.astype(np.int64)

    def serialized_bytes(self) -> int:
        return int(self.index.index_file_size())

    def ram_bytes(self) -> int | None:
        return None  # hnswlib reports no in-memory size


class UsearchPeer:
    """usearch.index.Index, metric 'ip', float32 storage (or f16 / i8: ``usearch-f16``, ``usearch-i8``)."""

    name = "usearch"
    dtype = "f32"

    def __init__(self, dim: int, m: int, ef_construction: int):
        from usearch.index import Index

        self._cls = Index
        self.dim, self.m, self.ef_construction = dim, m, ef_construction
        self.index = None

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.index = self._cls(ndim=self.dim, metric="ip", dtype=self.dtype, connectivity=self.m,
                               expansion_add=self.ef_construction)
        self.index.add(ids.astype(np.uint64), vectors, threads=_threads())

    def set_ef(self, ef: int) -> None:
        self.index.expansion_search = int(ef)

    def search(self, queries: np.ndarray, k: int, threads: int | None = None) -> np.ndarray:
        found = self.index.search(queries, k, threads=threads or _threads())
        keys = np.asarray(found.keys).reshape(len(queries), -1)[:, :k]
        out = np.full((len(queries), k), -1, dtype=np.int64)
        valid = keys < np.uint64(2 ** 63)  # absent results are filled with the all-ones key
        out[:, :keys.shape[1]][valid] = keys[valid].astype(np.int64)
        return out

    def serialized_bytes(self) -> int:
        return int(self.index.serialized_length)

    def ram_bytes(self) -> int | None:
        return int(self.index.memory_usage)


class UsearchF16Peer(UsearchPeer):
    name = "usearch-f16"
    dtype = "f16"


class UsearchI8Peer(UsearchPeer):
    name = "usearch-i8"
    dtype = "i8"


def make_peer(name: str, dim: int, m: int, ef_construction: int):
    """A peer wrapper, or a string saying why it cannot run (library missing)."""
    classes = {"hnswlib": HnswlibPeer, "usearch": UsearchPeer, "usearch-f16": UsearchF16Peer,
               "usearch-i8": UsearchI8Peer}
    if name not in classes:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    try:
        return classes[name](dim, m, ef_construction)
    except ImportError:
        return f"{name} is not installed (pip install -e '.[bench]')"


def peer_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name.split("-")[0])
    except metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------------------------------------
# autofaiss, in its own interpreter

_AUTOFAISS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numpy as np, faiss, autofaiss
    from autofaiss import build_index
    # autofaiss 2.18 calls faiss.OPQMatrix(d, M=..., d2=...); faiss 1.15's SWIG constructor takes no keywords
    _OPQMatrix = faiss.OPQMatrix
    faiss.OPQMatrix = lambda d=0, M=1, d2=-1: _OPQMatrix(d, M, d2)
    work, budget, k, n_single = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    base = np.load(os.path.join(work, "base.npy"))
    queries = np.load(os.path.join(work, "queries.npy"))
    threads = len(os.sched_getaffinity(0))
    t0 = time.perf_counter()
    index, infos = build_index(base, save_on_disk=False, max_index_memory_usage=budget,
                               current_memory_available="8G", metric_type="ip", nb_cores=threads,
                               verbose=30)
    build_s = time.perf_counter() - t0
    faiss.omp_set_num_threads(threads)
    index.search(queries[:8], k)
    times = []
    while True:
        t0 = time.perf_counter()
        _, found = index.search(queries, k)
        times.append(time.perf_counter() - t0)
        if len(times) == 3 or times[0] >= 1.0:
            break
    batch_s = float(np.median(times)) / len(queries)
    faiss.omp_set_num_threads(1)
    single = []
    for i in range(min(n_single, len(queries))):
        t0 = time.perf_counter()
        index.search(queries[i:i + 1], k)
        single.append(time.perf_counter() - t0)
    np.save(os.path.join(work, "found.npy"), found.astype(np.int64))
    size = int(faiss.serialize_index(index).size)
    print(json.dumps({"build_s": build_s, "batch_s_per_query": batch_s, "single_s": single, "bytes": size,
                      "infos": {k: str(v) for k, v in (infos or {}).items()},
                      "version": autofaiss.__version__ if hasattr(autofaiss, "__version__") else None,
                      "faiss": faiss.__version__}))
    """
)


def autofaiss_python() -> str | None:
    """The interpreter that has autofaiss (XSEARCH_AUTOFAISS_PYTHON, else AUTOFAISS_PYTHON_DEFAULT), or None."""
    path = os.environ.get("XSEARCH_AUTOFAISS_PYTHON") or AUTOFAISS_PYTHON_DEFAULT
    return path if Path(path).is_file() else None


def run_autofaiss(base: np.ndarray, queries: np.ndarray, k: int, memory_budget_bytes: int, n_single: int,
                  scratch: Path, timeout_s: float = 7200) -> dict:
    """Build autofaiss's choice under ``memory_budget_bytes`` in its own interpreter and search ``queries``.

    Returns {"build_s", "batch_s_per_query", "single_s", "bytes", "infos", "found"} or {"skipped": why}.
    Build time is measured inside the child around ``build_index`` (interpreter start and loading excluded).
    """
    python = autofaiss_python()
    if python is None:
        return {"skipped": "autofaiss is not installed (see bench/peers.py: it needs its own virtual environment, "
                           "numpy < 2)"}
    work = Path(scratch) / "autofaiss"
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "base.npy", np.ascontiguousarray(base, dtype=np.float32))
    np.save(work / "queries.npy", np.ascontiguousarray(queries, dtype=np.float32))
    try:
        proc = subprocess.run([python, "-c", _AUTOFAISS_SCRIPT, str(work), f"{int(memory_budget_bytes)}B", str(k),
                               str(n_single)], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        for name in ("base.npy", "queries.npy", "found.npy"):
            (work / name).unlink(missing_ok=True)
        return {"skipped": f"autofaiss did not finish building and searching within {timeout_s:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"skipped": "autofaiss failed: " + " | ".join(tail)}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["found"] = np.load(work / "found.npy")
    for name in ("base.npy", "queries.npy", "found.npy"):
        (work / name).unlink(missing_ok=True)
    return out


if __name__ == "__main__":  # python -m bench.peers: which peers can run here
    for peer in (*PEERS, "autofaiss"):
        if peer == "autofaiss":
            print(peer, autofaiss_python() or "not installed", file=sys.stdout)
        else:
            made = make_peer(peer, 8, 8, 16)
            print(peer, made if isinstance(made, str) else peer_version(peer))
