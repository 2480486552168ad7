"""2-D map of a gallery (t-SNE) and where a query lands on it."""

from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE

from . import config


def tsne_2d(embeddings: np.ndarray, cfg: config.TsneConfig = config.TsneConfig()) -> np.ndarray:
    """Seeded t-SNE coordinates (N, 2) float32; perplexity shrinks for small galleries."""
    n = len(embeddings)
    if n < 4:
        return np.zeros((n, 2), np.float32) + np.arange(n, dtype=np.float32)[:, None]
    perplexity = min(cfg.perplexity, (n - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=cfg.seed,
                metric="euclidean", **cfg.extra)
    return tsne.fit_transform(np.asarray(embeddings, dtype=np.float32)).astype(np.float32)


def place_query(coords: np.ndarray, hit_idx: np.ndarray, hit_dist: np.ndarray,
                n: int = config.MAP_NEIGHBOURS) -> np.ndarray:
    """A query's map position: the distance-weighted mean of its top-n hits' coordinates."""
    idx, dist = np.asarray(hit_idx)[:n], np.asarray(hit_dist, dtype=np.float64)[:n]
    if len(idx) == 0:
        return np.zeros(2, np.float32)
    w = 1.0 / (dist + 1e-6)
    return (coords[idx] * w[:, None]).sum(axis=0).astype(np.float32) / np.float32(w.sum())
