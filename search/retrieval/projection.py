"""2-D map of a gallery (t-SNE) and where a query lands on it."""

from __future__ import annotations

import numpy as np

from search import config


def tsne_2d(embeddings: np.ndarray, cfg: config.TsneConfig = config.TsneConfig()) -> np.ndarray:
    """Seeded t-SNE coordinates (N, 2) float32; perplexity shrinks for small galleries.

    Past `cfg.fit_limit` photos, t-SNE is fitted on a seeded sample of that size and every other photo is placed
    into that map like a query: at the distance-weighted mean of its nearest sampled photos.
    """
    # only to fit: the app and Ray workers skip its second of import
    from sklearn.manifold import TSNE

    emb = np.asarray(embeddings, dtype=np.float32)
    n = len(emb)
    if n < 4:
        return np.zeros((n, 2), np.float32) + np.arange(n, dtype=np.float32)[:, None]
    if n > cfg.fit_limit:
        sample = np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.fit_limit, replace=False))
        coords = np.empty((n, 2), np.float32)
        coords[sample] = tsne_2d(emb[sample], cfg)
        rest = np.setdiff1d(np.arange(n), sample)
        coords[rest] = place_rows(coords[sample], emb[sample], emb[rest])
        return coords
    perplexity = min(cfg.perplexity, (n - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=cfg.seed,
                metric="euclidean", **cfg.extra)
    return tsne.fit_transform(emb).astype(np.float32)


def place_rows(coords: np.ndarray, fitted: np.ndarray, others: np.ndarray, n: int = config.MAP_NEIGHBOURS,
               block: int = 20_000) -> np.ndarray:
    """Map positions of unit vectors `others` on a map fitted to `fitted`: each at its n nearest fitted
    photos' distance-weighted mean (the rule that places a query)."""
    from search.retrieval.rank import top_k

    out = np.empty((len(others), 2), np.float32)
    for start in range(0, len(others), block):
        idx, dist = top_k(others[start:start + block], fitted, n)
        w = 1.0 / (dist.astype(np.float64) + 1e-6)
        out[start:start + block] = ((coords[idx] * w[..., None]).sum(axis=1) / w.sum(axis=1, keepdims=True))
    return out


def place_query(coords: np.ndarray, hit_idx: np.ndarray, hit_dist: np.ndarray,
                n: int = config.MAP_NEIGHBOURS) -> np.ndarray:
    """A query's map position: the distance-weighted mean of its top-n hits' coordinates."""
    idx, dist = np.asarray(hit_idx)[:n], np.asarray(hit_dist, dtype=np.float64)[:n]
    if len(idx) == 0:
        return np.zeros(2, np.float32)
    w = 1.0 / (dist + 1e-6)
    return (coords[idx] * w[:, None]).sum(axis=0).astype(np.float32) / np.float32(w.sum())
