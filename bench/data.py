"""Benchmark data: clustered synthetic unit vectors, generated worlds, and real embeddings of a world."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The synthetic distribution (fixed for every size, so that sizes differ only in n).
N_CLUSTERS = 1000
LATENT_DIM = 48
SPREAD = 1.0
NOISE = 0.25
_CHUNK = 50_000


def clustered_vectors(n: int, dim: int, *, seed: int = 0, stream: int = 1) -> np.ndarray:
    """``n`` unit vectors (float32[n, dim]) from Gaussian blobs in a random LATENT_DIM-d subspace plus noise.

    The blobs depend only on ``seed``; ``stream`` picks an independent sample of them (use one stream for the
    database and another for the queries). Real embeddings are clustered and of low intrinsic dimension;
    uniform noise would make every approximate index look either perfect or useless.
    """
    structure = np.random.default_rng(seed)
    latent = min(LATENT_DIM, dim)
    basis = np.linalg.qr(structure.standard_normal((dim, latent)))[0].T.astype(np.float32)
    centres = structure.standard_normal((N_CLUSTERS, latent)).astype(np.float32)
    rng = np.random.default_rng([seed, stream])
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, _CHUNK):
        m = min(_CHUNK, n - start)
        z = centres[rng.integers(0, N_CLUSTERS, m)] + SPREAD * rng.standard_normal((m, latent), dtype=np.float32)
        x = z @ basis + NOISE * rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def ensure_world(workdir: Path, groups: int, seed: int = 0) -> Path:
    """A generated world of ``groups`` groups under ``workdir`` (made once, reused by later benchmarks)."""
    from xsearch.world import is_world, make_world

    out = Path(workdir) / f"world-{groups}-s{seed}"
    if not is_world(out):
        make_world(out, groups, seed, overwrite=out.exists())
    return out


def world_embeddings(workdir: Path, groups: int, device: str = "cpu", workers: int = 2) -> tuple[np.ndarray, dict]:
    """Every item of a generated world (images, sound windows, caption passages) embedded by the builtin model.

    Returns (float32[n, dim] unit vectors, info); cached as .npy in ``workdir``.
    """
    from xsearch.encoders.registry import load_encoder

    world = ensure_world(workdir, groups)
    encoder = load_encoder("builtin", device)
    cache = Path(workdir) / f"embeddings-{world.name}-{encoder.model_id.replace(':', '_').replace('@', '_')}.npy"
    info = {"world_groups": groups, "model_id": encoder.model_id, "trained": bool(encoder.trained)}
    if cache.is_file():
        vectors = np.load(cache)
    else:
        vectors = embed_folder(encoder, world, workers=workers)
        np.save(cache, vectors)
    info["n"] = int(vectors.shape[0])
    return vectors, info


def embed_folder(encoder, root: Path, workers: int = 2, files_per_batch: int = 32) -> np.ndarray:
    """Vectors of every decodable item under ``root``, through the indexer's own decode + embed steps."""
    from xsearch.engine.embed import decode_options, embed_segments
    from xsearch.media import MediaFile, discover, iter_decoded

    files = [f for f in discover(root) if isinstance(f, MediaFile) and f.modality in encoder.modalities]
    parts = []
    for segments, _bad in iter_decoded(files, decode_options(encoder), files_per_batch=files_per_batch,
                                       workers=workers):
        by_modality: dict[str, list] = {}
        for seg in segments:
            by_modality.setdefault(seg.modality, []).append(seg)
        for modality, segs in by_modality.items():
            parts.append(embed_segments(encoder, modality, segs))
    return np.concatenate(parts).astype(np.float32)
