"""Searching on a GPU: a copy of the CPU index, built when a search first needs it after each change.

The CPU index is always the source of truth (it is what is saved); a GPU copy is only a faster way to search it,
and is dropped whenever the index changes. Types without a GPU kind (HNSW, refined types) search on the CPU, and
``note`` says why.
"""

from __future__ import annotations

import os

import numpy as np

from .faisslib import is_hnsw, load_faiss


def gpu_available() -> bool:
    """True when this FAISS build has GPU support and sees a GPU (XSEARCH_NO_GPU=1 turns GPU use off)."""
    if os.environ.get("XSEARCH_NO_GPU", "") not in ("", "0"):
        return False
    faiss = load_faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class GpuCopy:
    """The GPU copy of one CPU index (``enabled``: whether to use a GPU at all; ``note``: what is happening)."""

    def __init__(self, enabled: bool):
        self.enabled = bool(enabled)
        self._index = None
        self.note = "GPU not available" if not self.enabled else "GPU copy not built yet"

    @property
    def built(self) -> bool:
        return self._index is not None

    def invalidate(self) -> None:
        """Drop the copy: the CPU index changed."""
        self._index = None
        if self.enabled:
            self.note = "GPU copy not built yet"

    def get(self, index, factory: str, *, refined: bool):
        """The GPU copy of ``index`` (built now when there is none), or None when the type has no GPU kind."""
        if self._index is not None:
            return self._index
        faiss = load_faiss()
        if is_hnsw(index) or refined:
            self.note = f"{factory} has no GPU implementation; searching on CPU"
            return None
        try:
            self._index = faiss.index_cpu_to_all_gpus(index)
        except RuntimeError as exc:  # FAISS throws for index types it cannot move to GPU
            self.note = f"{factory} cannot move to GPU ({str(exc).splitlines()[-1][:120]}); on CPU"
            return None
        self.note = f"searching on {faiss.get_num_gpus()} GPU(s)"
        return self._index

    @staticmethod
    def search(gpu, cpu_index, q: np.ndarray, k: int, params: dict):
        """Top-``k`` on the GPU copy ``gpu`` at the CPU index's nprobe (or the caller's): raw (distances, labels)."""
        faiss = load_faiss()
        ivf = faiss.try_extract_index_ivf(cpu_index)
        if ivf is not None:
            faiss.GpuParameterSpace().set_index_parameter(gpu, "nprobe", int(params.get("nprobe", ivf.nprobe)))
        return gpu.search(q, k)
