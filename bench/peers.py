"""The peer HNSW libraries behind one small interface: hnswlib and usearch (the ``bench`` extra).

Both are built with the same graph as our HNSW32 (M = 32 links per node, 2·M on the base layer, the same
efConstruction), in float32 with inner-product distance, on every core; single queries use one thread.
"""

from __future__ import annotations

import os

import numpy as np

PEERS = ("hnswlib", "usearch")


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
    """usearch.index.Index, metric 'ip', float32 storage."""

    name = "usearch"

    def __init__(self, dim: int, m: int, ef_construction: int):
        from usearch.index import Index

        self._cls = Index
        self.dim, self.m, self.ef_construction = dim, m, ef_construction
        self.index = None

    def build(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        self.index = self._cls(ndim=self.dim, metric="ip", dtype="f32", connectivity=self.m,
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


def make_peer(name: str, dim: int, m: int, ef_construction: int):
    """A peer wrapper, or a string saying why it cannot run (library missing)."""
    classes = {"hnswlib": HnswlibPeer, "usearch": UsearchPeer}
    if name not in classes:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    try:
        return classes[name](dim, m, ef_construction)
    except ImportError:
        return f"{name} is not installed (pip install -e '.[bench]')"


def peer_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
