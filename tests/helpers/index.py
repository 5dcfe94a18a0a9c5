"""Synthetic data for the index tests: clustered (Gaussian-blob) unit vectors, recall against exact search."""

from __future__ import annotations

import numpy as np


def clustered_vectors(n: int, dim: int, *, n_queries: int = 0, n_clusters: int = 200, latent_dim: int = 16,
                      spread: float = 1.0, noise: float = 0.3, seed: int = 0):
    """Unit vectors drawn from Gaussian blobs in a random ``latent_dim``-dimensional subspace plus isotropic
    noise in all ``dim`` dimensions (embeddings are clustered and of low intrinsic dimension, unlike uniform
    noise). Returns (database float32[n, dim], queries float32[n_queries, dim]); queries are fresh draws."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((dim, latent_dim)))[0].T
    centers = rng.standard_normal((n_clusters, latent_dim))

    def draw(m: int) -> np.ndarray:
        z = centers[rng.integers(0, n_clusters, m)] + spread * rng.standard_normal((m, latent_dim))
        x = (z @ basis + noise * rng.standard_normal((m, dim))).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return draw(n), draw(n_queries)


def exact_top_k(database: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Positions of the exact top-k inner products."""
    scores = queries @ database.T
    return np.argsort(-scores, axis=1)[:, :k]


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-k found in each row."""
    k = truth.shape[1]
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth)]))


def unit_rows(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    """``rows`` random unit-length float32 vectors of ``dim`` (the same for the same seed)."""
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
