"""Choosing an index type from the collection size, the dimension and a memory and latency budget.

Every candidate is a FAISS factory string (read by index/factory.py), with estimates of what it costs and gives:

- resident bytes per vector (factory.bytes_per_vector: codes, ids, graph links, centroids' share) and bytes
  per vector on disk (a refined type's exact vectors are a memory-mapped file, read only for candidates);
- expected recall@10 and single-query p50, from measurements of our own index layer on 512-d clustered
  vectors on 2 shared CPU cores (bench/index.py; the constants below say which run), scaled by n and dim.

The rule (``choose_factory``): without any budget, today's default (Flat below FLAT_MAX_VECTORS, HNSW32 above).
With a budget: the candidates whose resident memory fits the memory budget and whose expected p50 fits the
latency budget (DEFAULT_LATENCY_MS when only a memory budget is given); among them the fastest one whose
expected recall reaches RECALL_TARGET (within 10% of the fastest, the best recall), else the one with the best
recall; when nothing fits, the smallest.
"Fastest" counts a type that reads exact vectors from disk at DISK_LATENCY_FACTOR × its warm-cache estimate:
when the page cache does not hold them, every candidate is a disk read, so a type held wholly in memory wins
when it fits and is about as fast (HNSW32 vs IVF-PQ + re-ranking at 1M: ~1 ms each).
The choice records why, and the collection size up to which it holds (``max_n``: past it the memory budget no
longer fits, or an IVF should be retrained for more lists), so a collection re-chooses as it grows
(Collection.maybe_reindex, which switches only past the hysteresis of ``should_switch``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .. import factory as _factory
from .tuning import REFINE_K_FACTOR

#: A choice aims at this recall@10 (vs exact search); below it only when no candidate within budget reaches it.
RECALL_TARGET = 0.95
#: Single-query p50 budget assumed when only a memory budget is given (exact search at 1M × 512-d takes ~85 ms).
DEFAULT_LATENCY_MS = 10.0
#: Ranking weight of a disk-backed type's warm-cache p50 (see the module docstring).
DISK_LATENCY_FACTOR = 2.0

# Latency model, ms for one query on one thread (2-core AMD EPYC, bench/results/cpu-2core-1m.md):
#: exact scan per vector·dimension (Flat 1M × 512: 83 ms)
_MS_FLAT = 1.6e-7
#: IVF-Flat / SQ8 scan per scanned vector·dimension (IVF4096,Flat nprobe 256 at 1M: 9.6 ms; cache misses)
_MS_IVF = 2.9e-7
#: fast-scan PQ per scanned code byte, and re-ranking per candidate row of 512 dims (page cache warm; at 200k
#: × 512-d, IVF2048,PQ64x4fs re-ranking 200 candidates: p50 0.8–1.3 ms, recall@10 0.97–0.98)
_MS_FASTSCAN_BYTE = 3e-8
_MS_RERANK_ROW = 3e-3
#: HNSW32 at efSearch 128: 0.84–1.34 ms for 100k–1M × 512
_MS_HNSW = 1.3

def format_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


@dataclass
class Candidate:
    """One index type at one collection size, with its estimates."""

    factory: str
    family: str
    recall: float  # expected recall@10
    p50_ms: float  # expected single-query p50, one thread
    resident: float  # bytes per vector
    disk: float  # bytes per vector
    search: dict = field(default_factory=dict)  # search defaults the choice applies


@dataclass
class FactoryChoice:
    """What ``choose_factory`` picked and why (saved with the index and in the collection's manifest)."""

    factory: str
    reason: str
    n: int
    dim: int
    expected_recall: float | None
    expected_p50_ms: float | None
    resident_bytes_per_vector: float
    disk_bytes_per_vector: float
    search: dict = field(default_factory=dict)
    max_n: int | None = None  # re-choose past this many vectors (None: no limit from the budget)
    memory_budget_bytes: int | None = None
    latency_budget_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _hnsw_recall(n: int) -> float:
    """HNSW32 at efSearch 128 on clustered 512-d data: 0.999 at 10k, 0.99 at 100k, 0.968 at 1M."""
    if n <= 100_000:
        return 0.99
    return max(0.9, 0.99 - 0.022 * (math.log10(n) - 5))


def candidates(n: int, dim: int) -> list[Candidate]:
    """The index types choose_factory weighs at ``n`` vectors of ``dim`` dimensions (see the module docstring)."""
    bpv, disk = _factory.bytes_per_vector, _factory.disk_bytes_per_vector
    scale = dim / 512
    out = [Candidate("Flat", "exact", 1.0, _MS_FLAT * n * dim, bpv("Flat", dim), disk("Flat", dim))]
    hnsw = f"HNSW{_factory.HNSW_M}"
    out.append(Candidate(hnsw, "graph", 0.999 if n <= 10_000 else _hnsw_recall(n), _MS_HNSW * max(scale, 0.25),
                         bpv(hnsw, dim), disk(hnsw, dim), {"efSearch": _factory.HNSW_EF_SEARCH}))
    nlist = _factory.ivf_nlist(n)
    while nlist > 16 and 39 * nlist > n:  # lists that n vectors can train now (FAISS: 39 points per list)
        nlist //= 2
    nprobe = _factory.default_nprobe(nlist)
    scanned = n * nprobe / nlist
    ivf_ms = _MS_IVF * dim * (nlist + scanned)
    # nprobe (and a refined type's k_factor) are not part of the choice: the index calibrates them on its own
    # vectors after training (index/local/tuning.py: the fewest lists holding 98% of the true neighbours), because
    # no fixed share of the lists carries across data (nlist/8 held 0.92 of them at 20k clustered 512-d vectors,
    # 0.99 at 100k). Expected recall is therefore what calibration aims at; latency assumes nlist/8 lists.
    for code, recall, name in (("Flat", 0.97, "IVF, exact codes"), ("SQ8", 0.96, "IVF, 8-bit scalar codes")):
        fac = f"IVF{nlist},{code}"
        ms = ivf_ms if code == "Flat" else _MS_IVF * dim * nlist + _MS_IVF * dim * scanned * 0.6
        out.append(Candidate(fac, name, recall, ms, bpv(fac, dim, n), disk(fac, dim, n)))
    # Compressed first stage + exact re-ranking: PQ fast-scan codes of dim/16 (4-bit, dim/32 bytes), dim/8 (dim/16
    # bytes) or dim/4 (dim/8 bytes) sub-quantizers; float16 exact vectors on disk. The smallest codes need more
    # candidates re-ranked: calibration gave k_factor 80 at 1M × 512 (recall@10 0.969, bench/results/
    # cpu-2core-1m-memory.md) where dim/8 needed 40 (0.977) and dim/4 10-20.
    for m, recall, k_factor in ((max(1, dim // 16), 0.955, 80), (max(1, dim // 8), 0.96, REFINE_K_FACTOR),
                                (max(1, dim // 4), 0.97, REFINE_K_FACTOR)):
        if dim % m or (m == dim // 16 and m < 8):
            continue
        fac = f"IVF{nlist},PQ{m}x4fs,Refine(SQfp16)"
        ms = (_MS_FLAT * nlist * dim + _MS_FASTSCAN_BYTE * scanned * m / 2
              + _MS_RERANK_ROW * 10 * k_factor * scale)
        out.append(Candidate(fac, "IVF-PQ fast scan + exact re-ranking (float16, memory-mapped)", recall, ms,
                             bpv(fac, dim, n), disk(fac, dim, n)))
    return out


def _max_n(c: Candidate, n: int, memory_budget: int | None) -> int | None:
    """Collection size up to which ``c`` stays the choice's shape: the memory budget (at this per-vector cost)
    and, for IVF, 4× the size its list count was picked for (Collection.maybe_reindex's hysteresis)."""
    limits = []
    if memory_budget is not None and c.resident > 0:
        limits.append(int(memory_budget // c.resident))
    if c.factory.startswith("IVF"):
        limits.append(4 * max(n, 1))
    if c.factory == "Flat":
        limits.append(_factory.FLAT_MAX_VECTORS)
    return min(limits) if limits else None


def choose_factory(n: int, dim: int, memory_budget_bytes: int | None = None,
                   latency_budget_ms: float | None = None) -> FactoryChoice:
    """The index type for ``n`` vectors of ``dim`` dimensions under the budgets, with the reason."""
    n, dim = int(n), int(dim)
    flat_max = _factory.FLAT_MAX_VECTORS
    pool = candidates(max(n, 1), dim)
    by_factory = {c.factory: c for c in pool}
    hnsw = f"HNSW{_factory.HNSW_M}"

    def make(c: Candidate, reason: str) -> FactoryChoice:
        return FactoryChoice(c.factory, reason, n, dim, round(c.recall, 3), round(c.p50_ms, 3),
                           round(c.resident, 1), round(c.disk, 1), dict(c.search),
                           _max_n(c, n, memory_budget_bytes), memory_budget_bytes, latency_budget_ms)

    if n < flat_max:
        c = by_factory["Flat"]
        over = ""
        if memory_budget_bytes is not None and n * c.resident > memory_budget_bytes:
            # not silently: the budget is kept and applies from flat_max vectors on (maybe_reindex)
            over = (f"; this is {format_bytes(n * c.resident)}, over the memory budget of "
                    f"{format_bytes(memory_budget_bytes)}, which applies from {flat_max:,} vectors on")
        return make(c, f"{n:,} vectors: below {flat_max:,} an exact Flat index is fast enough and needs no "
                       f"training{over}")
    if memory_budget_bytes is None and latency_budget_ms is None:
        c = by_factory[hnsw]
        return make(c, f"{n:,} vectors and no budget: {hnsw}, the fastest index at recall@10 ≥ {RECALL_TARGET} "
                       f"(about {c.resident:,.0f} B/vector)")
    pool = [c for c in pool if c.factory != "Flat"]  # above flat_max graph / IVF search is much faster
    latency = latency_budget_ms if latency_budget_ms is not None else DEFAULT_LATENCY_MS
    budget_words = []
    if memory_budget_bytes is not None:
        budget_words.append(f"a memory budget of {format_bytes(memory_budget_bytes)} "
                            f"({memory_budget_bytes / n:,.0f} B/vector)")
    budget_words.append(f"a latency budget of {latency:g} ms"
                        + ("" if latency_budget_ms is not None else " (default)"))
    head = f"{n:,} × {dim}-d vectors under " + " and ".join(budget_words)

    def fits_memory(c: Candidate) -> bool:
        return memory_budget_bytes is None or n * c.resident <= memory_budget_bytes

    fits = [c for c in pool if fits_memory(c) and c.p50_ms <= latency]
    too_big = [c for c in pool if not fits_memory(c)]
    too_slow = [c for c in pool if fits_memory(c) and c.p50_ms > latency]
    excluded = []
    if too_big:
        excluded.append("too large: " + ", ".join(f"{c.factory} ({c.resident:,.0f} B/vector)" for c in too_big))
    if too_slow:
        excluded.append("too slow: " + ", ".join(f"{c.factory} (~{c.p50_ms:.1f} ms)" for c in too_slow))
    why_not = ("; " + "; ".join(excluded)) if excluded else ""
    if not fits:
        memory_ok = [c for c in pool if fits_memory(c)]
        if memory_ok:
            c = min(memory_ok, key=lambda c: c.p50_ms)
            return make(c, f"{head}: nothing fits both; the fastest that fits the memory is {c.factory} "
                           f"(~{c.p50_ms:.1f} ms, recall@10 ~{c.recall:.2f}){why_not}")
        c = min(pool, key=lambda c: c.resident)
        return make(c, f"{head}: nothing fits; the smallest is {c.factory} ({c.resident:,.0f} B/vector "
                       f"resident, {format_bytes(n * c.resident)} in all){why_not}")
    good = [c for c in fits if c.recall >= RECALL_TARGET]
    if good:
        def cost(c: Candidate) -> float:
            return c.p50_ms * (DISK_LATENCY_FACTOR if "Refine" in c.factory else 1)

        fastest = min(cost(c) for c in good)
        c = max((c for c in good if cost(c) <= 1.1 * fastest), key=lambda c: (c.recall, -c.resident))
        how = f"the fastest within budget at recall@10 ≥ {RECALL_TARGET}"
    else:
        c = max(fits, key=lambda c: (c.recall, -c.p50_ms))
        how = f"the best recall within budget (none reaches {RECALL_TARGET})"
    disk = f", {c.disk:,.0f} B/vector on disk" if c.disk > c.resident * 1.5 else ""
    return make(c, f"{head}: {c.factory}, {how}: ~{c.resident:,.0f} B/vector resident{disk}, expected "
                   f"recall@10 ~{c.recall:.2f}, p50 ~{c.p50_ms:.1f} ms{why_not}")


def choice_key(choice: dict) -> tuple:
    """What makes two recorded choices the same choice: the type and the budgets it was chosen under."""
    return (choice.get("factory"), choice.get("memory_budget_bytes"), choice.get("latency_budget_ms"))


def should_switch(current: str, target: str, n: int) -> bool:
    """Whether an index of type ``current`` holding ``n`` vectors is rebuilt as the newly chosen ``target``.
    Hysteresis: back to Flat only below FLAT_MAX_VECTORS / 2, and an IVF is retrained for a new list count only
    when the ideal count moved by 4x or more."""
    if current == target:
        return False
    if target == "Flat":
        return n < _factory.FLAT_MAX_VECTORS // 2
    cur_codes, new_codes = current.partition(",")[2], target.partition(",")[2]
    a, b = _factory.ivf_lists(current), _factory.ivf_lists(target)
    if a is not None and b is not None and cur_codes == new_codes:
        return max(a, b) / min(a, b) >= 4
    return True
