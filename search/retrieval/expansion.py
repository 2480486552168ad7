"""Query expansion as the landmark-retrieval benchmarks use it (revisited Oxford and Paris): alpha-QE with
database-side augmentation (DBA). Each gallery vector is replaced, once, by the similarity-weighted mean of itself and
its k nearest gallery vectors; a query is searched once, replaced by the weighted mean of itself and its top k hits
(weights: cosine similarity to the power alpha), and searched again. Pure functions over unit vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search import config
from search.retrieval.rank import top_k

KINDS = ("aqe",)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)).astype(np.float32)


@dataclass(frozen=True)
class QueryExpansion:
    """alpha-QE with DBA: `k` neighbours averaged, weighted by similarity ** `alpha`."""

    k: int = config.QUERY_EXPANSION.k
    alpha: float = config.QUERY_EXPANSION.alpha

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            raise ValueError(f"query expansion's k must be a whole number of at least 1 (got {self.k!r})")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 100:
            raise ValueError(f"query expansion's alpha must be a number from 0 to 100 (got {self.alpha!r})")

    def to_dict(self) -> dict:
        return {"kind": "aqe", "k": self.k, "alpha": float(self.alpha)}

    def _mean(self, vectors: np.ndarray, gallery: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Each vector plus its neighbours `idx` (rows of `gallery`), weighted by similarity ** alpha, unit length."""
        neighbours = gallery[idx]                                          # (n, k, D)
        sims = np.einsum("nd,nkd->nk", vectors, neighbours).clip(0.0, None)
        return _unit(vectors + np.einsum("nk,nkd->nd", sims ** self.alpha, neighbours))

    def augment(self, gallery: np.ndarray, block: int = 2048) -> np.ndarray:
        """DBA: every gallery vector as the weighted mean of itself and its k nearest other gallery vectors."""
        g = np.ascontiguousarray(gallery, dtype=np.float32)
        k = min(self.k, len(g) - 1)
        if k < 1:
            return g.copy()
        out = np.empty_like(g)
        for start in range(0, len(g), block):
            part = g[start:start + block]
            sims = part @ g.T
            rows = np.arange(start, start + len(part))
            sims[np.arange(len(part)), rows] = -np.inf                    # itself is the "vectors +" term
            idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            out[start:start + len(part)] = self._mean(part, g, idx)
        return out

    def expand(self, queries: np.ndarray, gallery: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """alpha-QE: each query as the weighted mean of itself and its first-round top k hits (`idx`, rows of the
        augmented `gallery`, nearest first)."""
        q = np.atleast_2d(np.asarray(queries, np.float32))
        return self._mean(q, np.asarray(gallery, np.float32), np.asarray(idx)[:, :self.k])


def from_dict(d: dict | None) -> QueryExpansion | None:
    """The query expansion an encoder's recipe or an index records (None: none; a missing k or alpha: the
    default)."""
    if not d:
        return None
    if d.get("kind") not in KINDS:
        raise ValueError(f"unknown query expansion {d.get('kind')!r}")
    return QueryExpansion(d.get("k", config.QUERY_EXPANSION.k), d.get("alpha", config.QUERY_EXPANSION.alpha))


def ranked(queries: np.ndarray, gallery: np.ndarray, k: int, expansion: QueryExpansion | None = None,
           augmented: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (indices, distances) of each query, with query expansion when given: against the gallery augmented
    (`augmented`, or computed here from `gallery`), the query expanded by its first-round hits."""
    if expansion is None:
        return top_k(queries, gallery, k)
    g = expansion.augment(gallery) if augmented is None else augmented
    first, _ = top_k(queries, g, expansion.k)
    return top_k(expansion.expand(queries, g, first), g, k)
