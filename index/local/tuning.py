"""Search parameters of a FAISS index (nprobe, efSearch, a refined type's k_factor) and their calibration.

After an IVF index is trained, :func:`calibrate` sets its nprobe to the smallest number of lists (at least
min(nlist, IVF_NPROBE_MIN)) that hold CALIBRATION_RECALL of the true CALIBRATION_K nearest neighbours of
CALIBRATION_QUERIES stored vectors used as queries (each query itself excluded), and a refined type's k_factor to
the smallest of CALIBRATION_K_FACTORS whose first-stage candidates lose at most CALIBRATION_RERANK_LOSS of those.
The vector index redoes it when it has grown CALIBRATION_GROWTH× since.

A fixed share of the lists does not carry across data: nlist/8 held 0.92 of the neighbours at 20k clustered
512-d vectors (IVF512) but 0.99 at 100k (IVF1024), and no re-ranking finds a neighbour in a list not probed.
nprobe is therefore measured on the coarse stage alone (which lists a query probes, its centroids ranked as the
IVF ranks them, and which list holds each neighbour), so it bounds the recall of any code or re-ranking behind it;
k_factor by the first stage's own search at that nprobe.
"""

from __future__ import annotations

import numpy as np

from .. import factory as _factory
from .faisslib import ivf_list_ids, load_faiss, unwrap

#: Refined types ("<first stage>,RFlat" / ",Refine(SQfp16)"): the first stage returns k · REFINE_K_FACTOR
#: candidates, re-scored with the exact vectors (see index/local/exact.py). At 200k clustered 512-d vectors,
#: IVF2048,PQ64x4fs re-ranked from 100 candidates reached recall@10 0.94, from 200 0.97.
REFINE_K_FACTOR = 20
CALIBRATION_RECALL = 0.98
CALIBRATION_QUERIES = 256
CALIBRATION_K = 10
CALIBRATION_GROWTH = 2.0
CALIBRATION_K_FACTORS = (10, 20, 40, 80)
CALIBRATION_RERANK_LOSS = 0.01

#: The search parameters a caller may pass (those that do not apply to an index type are ignored).
SEARCH_KEYS = ("nprobe", "efSearch", "k_factor")
_CHUNK = 65536


def check_keys(params: dict) -> None:
    """ValueError for keys that are no search parameter."""
    unknown = set(params) - set(SEARCH_KEYS)
    if unknown:
        raise ValueError(f"unknown search parameters: {sorted(unknown)} (known: nprobe, efSearch, k_factor)")


def search_params(index, selector, params: dict, keep: list):
    """FAISS SearchParameters for ``index``'s structure, or None when defaults and no selector do. ``keep``
    collects the objects FAISS only points to, to keep alive during the call."""
    faiss = load_faiss()
    inner = unwrap(index)
    ivf = faiss.try_extract_index_ivf(index)
    if selector is None and not ((ivf is not None and "nprobe" in params)
                                 or (isinstance(inner, faiss.IndexHNSW) and "efSearch" in params)):
        return None
    if ivf is not None:
        p = faiss.SearchParametersIVF()
        p.nprobe = int(params.get("nprobe", ivf.nprobe))
    elif isinstance(inner, faiss.IndexHNSW):
        p = faiss.SearchParametersHNSW()
        p.efSearch = int(params.get("efSearch", inner.hnsw.efSearch))
    else:
        p = faiss.SearchParameters()
    if selector is not None:
        p.sel = selector
    keep.append(p)
    outer = faiss.downcast_index(index)
    if isinstance(outer, faiss.IndexIDMap2):
        outer = faiss.downcast_index(outer.index)
    if isinstance(outer, faiss.IndexPreTransform):
        wrapper = faiss.SearchParametersPreTransform()
        wrapper.index_params = p
        keep.append(wrapper)
        return wrapper
    return p


def search_defaults(index, k_factor: int | None) -> dict:
    """The parameters ``index`` searches with when a search passes none (``k_factor``: a refined type's)."""
    faiss = load_faiss()
    out = {"k_factor": int(k_factor)} if k_factor is not None else {}
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return {"nprobe": int(ivf.nprobe), **out}
    inner = unwrap(index)
    if isinstance(inner, faiss.IndexHNSW):
        return {"efSearch": int(inner.hnsw.efSearch), **out}
    return out


def apply_search_defaults(index, pinned: dict) -> None:
    """Set a caller's pinned nprobe / efSearch on ``index`` (those that apply to its type)."""
    faiss = load_faiss()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None and "nprobe" in pinned:
        ivf.nprobe = int(min(ivf.nlist, max(1, pinned["nprobe"])))
    inner = unwrap(index)
    if isinstance(inner, faiss.IndexHNSW) and "efSearch" in pinned:
        inner.hnsw.efSearch = int(pinned["efSearch"])


def configure_new(index) -> None:
    """Our defaults on a freshly built index: no polysemous training, HNSW build / search breadth, IVF nprobe."""
    faiss = load_faiss()
    inner = unwrap(index)
    if hasattr(inner, "do_polysemous_training"):
        inner.do_polysemous_training = False  # only serves Hamming pre-filtering, which we never use
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efConstruction = _factory.HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = _factory.HNSW_EF_SEARCH
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = _factory.default_nprobe(ivf.nlist)


def exact_vectors_at_hand(index, *, refined: bool) -> bool:
    """Whether an index can give back (nearly) exact vectors: a refined type's exact store, IVF-Flat or 8-bit+
    scalar codes. Calibrating on PQ-decoded vectors would find neighbours in the decoded space (each next to its
    own centroid) and probe too few lists, so a PQ index without a refine stage keeps the calibration made when
    it was trained (on the exact staged vectors)."""
    faiss = load_faiss()
    if refined:
        return True
    inner = unwrap(index)
    if isinstance(inner, faiss.IndexIVFFlat):
        return True
    if isinstance(inner, faiss.IndexIVFScalarQuantizer):
        sq = faiss.ScalarQuantizer
        return int(inner.sq.qtype) in (sq.QT_8bit, sq.QT_8bit_uniform, sq.QT_fp16, sq.QT_bf16, sq.QT_8bit_direct)
    return False


def calibrate(index, ids: np.ndarray, source, *, pin_nprobe: bool, pin_k_factor: bool) -> dict | None:
    """Calibrate an IVF ``index`` holding the sorted ``ids`` (``source``: ids → their float32 vectors); see the
    module docstring. Sets the IVF's nprobe (unless pinned) and returns what was measured ({"n", "k", "target",
    "queries", "recall", "nprobe"} plus "k_factor" and "candidate_recall" unless k_factor is pinned), or None when
    there was nothing to measure."""
    ivf = load_faiss().try_extract_index_ivf(index)
    n, k = int(ids.size), CALIBRATION_K
    record = {"n": n, "k": k, "target": CALIBRATION_RECALL, "queries": 0, "recall": None}
    if n <= 4 * k:
        return {**record, "nprobe": int(ivf.nprobe)}
    rng = np.random.default_rng(n)
    query_ids = np.sort(rng.choice(ids, size=min(CALIBRATION_QUERIES, n), replace=False))
    queries = np.ascontiguousarray(source(query_ids), dtype=np.float32)
    neighbours = true_neighbours(queries, query_ids, ids, k, source)
    valid = neighbours >= 0
    if not valid.any():
        return None
    record["queries"] = int(queries.shape[0])
    if pin_nprobe:
        nprobe = int(ivf.nprobe)
    else:
        nprobe, record["recall"] = _calibrate_nprobe(index, ivf, queries, neighbours, valid)
        ivf.nprobe = nprobe
    record["nprobe"] = nprobe
    if not pin_k_factor:
        k_factor, found = _calibrate_k_factor(index, queries, query_ids, neighbours, valid, nprobe, n)
        record.update({"k_factor": k_factor, "candidate_recall": round(float(found), 4)})
    return record


def _calibrate_nprobe(index, ivf, queries: np.ndarray, neighbours: np.ndarray, valid: np.ndarray) -> tuple[int, float]:
    """(the fewest lists holding CALIBRATION_RECALL of the neighbours, the share they hold)."""
    nlist = int(ivf.nlist)
    # which list holds each stored id, and the rank of every list for each query
    list_ids, list_nos = ivf_list_ids(ivf)
    order = np.argsort(list_ids, kind="stable")
    list_ids, list_nos = list_ids[order], list_nos[order]
    where = np.clip(np.searchsorted(list_ids, np.where(valid, neighbours, 0)), 0, list_ids.size - 1)
    held = valid & (list_ids[where] == neighbours)
    coarse = coarse_ranking(index, ivf, queries, nlist)
    rank = np.empty_like(coarse)
    np.put_along_axis(rank, coarse, np.broadcast_to(np.arange(nlist, dtype=coarse.dtype), coarse.shape), axis=1)
    needed = np.take_along_axis(rank, np.where(held, list_nos[where], 0), axis=1)[held]  # 0-based
    covered = np.cumsum(np.bincount(needed, minlength=nlist)) / max(1, int(valid.sum()))
    nprobe = int(np.searchsorted(covered, CALIBRATION_RECALL - 1e-9) + 1)
    nprobe = int(min(nlist, max(min(nlist, _factory.IVF_NPROBE_MIN), nprobe)))
    return nprobe, round(float(covered[nprobe - 1]), 4)


def _calibrate_k_factor(index, queries: np.ndarray, query_ids: np.ndarray, neighbours: np.ndarray,
                        valid: np.ndarray, nprobe: int, n: int) -> tuple[int, float]:
    """(the smallest k_factor whose first-stage candidates at ``nprobe`` lose at most CALIBRATION_RERANK_LOSS of the
    neighbours, the share its candidates hold)."""
    k = CALIBRATION_K
    # the first stage's candidates at this nprobe (the query finds itself: one more, then dropped)
    most = k * max(CALIBRATION_K_FACTORS) + 1
    keep: list = []
    params = search_params(index, None, {"nprobe": nprobe}, keep)
    _, cand = index.search(queries, min(most, n), params=params)
    found = {}
    for kf in CALIBRATION_K_FACTORS:
        hits = 0
        for row in range(queries.shape[0]):
            c = cand[row][(cand[row] != query_ids[row]) & (cand[row] >= 0)][:k * kf]
            hits += int(np.isin(neighbours[row][valid[row]], c).sum())
        found[kf] = hits / int(valid.sum())
    best = max(found.values())
    k_factor = next(kf for kf in CALIBRATION_K_FACTORS if found[kf] >= best - CALIBRATION_RERANK_LOSS)
    return int(k_factor), found[k_factor]


def true_neighbours(queries: np.ndarray, query_ids: np.ndarray, ids: np.ndarray, k: int, source) -> np.ndarray:
    """Ids of the exact ``k`` nearest of the stored ``ids`` to each query, the query's own id excluded (-1 pads)."""
    faiss = load_faiss()
    kk = k + 1
    best_s = np.full((queries.shape[0], kk), -np.inf, dtype=np.float32)
    best_i = np.full((queries.shape[0], kk), -1, dtype=np.int64)
    for start in range(0, ids.size, _CHUNK):
        chunk = ids[start:start + _CHUNK]
        d, pos = faiss.knn(queries, np.ascontiguousarray(source(chunk), dtype=np.float32), min(kk, chunk.size),
                           metric=faiss.METRIC_INNER_PRODUCT)
        all_s = np.concatenate([best_s, d], axis=1)
        all_i = np.concatenate([best_i, np.where(pos >= 0, chunk[np.clip(pos, 0, None)], -1)], axis=1)
        top = np.argsort(-all_s, axis=1, kind="stable")[:, :kk]
        best_s, best_i = np.take_along_axis(all_s, top, axis=1), np.take_along_axis(all_i, top, axis=1)
    out = np.full((queries.shape[0], k), -1, dtype=np.int64)
    for row in range(queries.shape[0]):
        others = best_i[row][(best_i[row] != query_ids[row]) & (best_i[row] >= 0)][:k]
        out[row, :others.size] = others
    return out


def coarse_ranking(index, ivf, queries: np.ndarray, nlist: int) -> np.ndarray:
    """Every list number ordered by its centroid's inner product with each query (best first); queries go through
    the index's pre-transform (OPQ, PCA) first when it has one."""
    faiss = load_faiss()
    outer = faiss.downcast_index(index)
    if isinstance(outer, faiss.IndexPreTransform):
        for i in range(outer.chain.size()):
            queries = np.ascontiguousarray(outer.chain.at(i).apply(queries), dtype=np.float32)
    quantizer = faiss.downcast_index(ivf.quantizer)
    try:
        centroids = quantizer.reconstruct_n(0, nlist)
    except RuntimeError:  # a quantizer that cannot reconstruct: its own search order
        _, order = quantizer.search(queries, nlist)
        return order.astype(np.int64)
    score = queries @ centroids.T
    if quantizer.metric_type == faiss.METRIC_L2:  # nearest by L2: largest q·c - |c|²/2
        score -= 0.5 * np.einsum("ij,ij->i", centroids, centroids)[None, :]
    return np.argsort(-score, axis=1, kind="stable").astype(np.int64)
