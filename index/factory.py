"""FAISS index-factory strings: what a type string says and what it costs, without building anything.

Index types are named only by FAISS factory strings ("Flat", "HNSW32", "IVF1024,Flat", "IVF4096,PQ64x4fs,
Refine(SQfp16)"). This module reads them: the refine stage (xsearch's own, see index/local/exact.py), the IVF list
count, bytes per vector resident and on disk; and holds the sizing rules every store shares (when Flat stops being
enough, the HNSW degree and breadth, the IVF list count and how many lists a search probes). The local store's
budget (index/local/budget.py), its vector index (index/local/vectors.py) and the Milvus store all use it; it
imports no FAISS.

The constants are read as module attributes at call time (``factory.FLAT_MAX_VECTORS``), so a test or a benchmark
can change one for a run.
"""

from __future__ import annotations

import math

from xsearch.core.errors import UsageError

#: Below this many vectors an exact Flat index is fast enough and needs no training.
FLAT_MAX_VECTORS = 50_000
#: Graph degree of the HNSW index chosen without a budget.
HNSW_M = 32
#: HNSW build / search breadth. efSearch=128 gives recall@10 >= 0.99 on the clustered tests and benchmark.
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
#: IVF lists probed before calibration: nlist / IVF_NPROBE_DIVISOR, clamped to [IVF_NPROBE_MIN, IVF_NPROBE_MAX].
IVF_NPROBE_DIVISOR = 8
IVF_NPROBE_MIN = 16
IVF_NPROBE_MAX = 256
#: Resident bytes of an IVF index with fast-scan codes ("PQ64x4fs"), measured ÷ the sum of its parts below: 1.22 for
#: both IVF4096,PQ32x4fs and IVF4096,PQ64x4fs + Refine(SQfp16) at 1M × 512 (bench/results/cpu-2core-1m-memory.md):
#: fast-scan lists are padded to whole blocks of 32 codes, plus allocation slack.
FASTSCAN_RESIDENT_FACTOR = 1.22

_REFINE_DTYPES = {"RFlat": "float32", "Refine(Flat)": "float32", "Refine(SQfp16)": "float16"}


def ivf_nlist(n: int) -> int:
    """IVF list count for ``n`` vectors: the power of two nearest 4·sqrt(n), at least 16."""
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))


def default_nprobe(nlist: int) -> int:
    """Lists probed by default for an IVF index with ``nlist`` lists (see IVF_NPROBE_*)."""
    return int(min(nlist, max(IVF_NPROBE_MIN, min(IVF_NPROBE_MAX, nlist // IVF_NPROBE_DIVISOR))))


def split_refine(factory: str) -> tuple[str, str | None]:
    """(first-stage factory, exact-vector type or None): "IVF4096,PQ64x4fs,Refine(SQfp16)" → ("IVF4096,PQ64x4fs",
    "float16"). FAISS's own IndexRefine keeps positions, not ids, and cannot remove; xsearch re-ranks with its own
    memory-mapped exact store instead (index/local/exact.py), under FAISS's spelling of the refine stage."""
    head, sep, tail = factory.rpartition(",")
    tail = tail.strip()
    if sep and (tail in _REFINE_DTYPES):
        return head.strip(), _REFINE_DTYPES[tail]
    if sep and (tail.startswith("Refine(") or tail.startswith("RFlat")):
        raise UsageError(f"refine stage '{tail}' is not supported: use RFlat (exact float32 vectors) or "
                         "Refine(SQfp16) (float16), e.g. IVF4096,PQ64x4fs,Refine(SQfp16)",
                         code="usage.bad_index_factory", factory=factory)
    return factory, None


def ivf_lists(factory: str) -> int | None:
    """The list count of an IVF type ("IVF4096,PQ32" → 4096), None for any other type."""
    head = factory.split(",", 1)[0].strip()
    if not head.startswith("IVF"):
        return None
    try:
        return int(head[3:].split("_")[0])
    except ValueError:
        return None


def is_fastscan(factory: str) -> bool:
    """Whether the first stage stores IVF fast-scan PQ codes ("IVF4096,PQ32x4fs"), which cannot be looked up by id."""
    head = split_refine(factory)[0].split(",")
    return head[0].startswith("IVF") and len(head) > 1 and head[-1].startswith("PQ") and head[-1].endswith("fs")


def _code_bytes(code: str, dim: int) -> float | None:
    """Bytes of one vector's code for an IVF/flat code spec ("Flat", "PQ64x4fs", "SQ8", "RaBitQ4", ...)."""
    if code == "Flat":
        return 4.0 * dim
    if code.startswith("PQ"):
        spec = code[2:].rstrip("fsr")
        m, _, bits = spec.partition("x")
        return int(m) * int(bits or 8) / 8.0
    if code == "SQfp16" or code == "SQbf16":
        return 2.0 * dim
    if code.startswith("SQ"):
        return dim * int(code[2:] or 8) / 8.0
    if code.startswith("RaBitQ"):
        bits = int(code[6:].lstrip("fs") or 1)
        return dim * bits / 8.0 + (8 if bits == 1 else 20)
    return None


def bytes_per_vector(factory: str, dim: int, n: int | None = None) -> float:
    """Estimated resident bytes per stored vector of ``factory`` (ids, codes or vectors, graph links; with ``n``
    also the IVF centroids' share). A refine stage is memory-mapped and adds nothing here: see
    :func:`disk_bytes_per_vector`."""
    first, refine = split_refine(factory)
    head = first.split(",")
    id_cost = 8.0 + 32.0  # the id itself + its hash-map entry (IndexIDMap2 rev_map / IVF direct map)
    if head[0].startswith("HNSW"):
        m = int(head[0][4:].split("_")[0] or 32)
        code = _code_bytes(head[1], dim) if len(head) > 1 else None
        return (4.0 * dim if code is None else code) + 2 * m * 4 * 1.05 + 16 + id_cost
    if head[0].startswith("IVF") and len(head) > 1:
        if refine is not None:
            id_cost = 16.0  # the id in its inverted list + our sorted id array; no direct map (index/local/exact.py)
        code = _code_bytes(head[-1], dim)
        extra = 0.0
        if n:
            nlist = int(head[0][3:].split("_")[0])
            extra = nlist * dim * 4.0 / max(n, 1)
        total = (4.0 * dim if code is None else code) + id_cost + extra
        return total * FASTSCAN_RESIDENT_FACTOR if is_fastscan(first) else total
    return 4.0 * dim + id_cost


def disk_bytes_per_vector(factory: str, dim: int, n: int | None = None) -> float:
    """Estimated bytes per vector on disk: the vector file, plus the exact-vector file of a refined type."""
    first, refine = split_refine(factory)
    disk = bytes_per_vector(first, dim, n)
    if refine is not None:
        disk += 8 + dim * (2 if refine == "float16" else 4)
    return disk
