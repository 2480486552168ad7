"""Exact nearest-neighbour ranking over L2-normalised vectors (and approximate search for very large galleries)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from search import config
from search.retrieval import ann

if TYPE_CHECKING:  # expansion imports top_k from here
    from search.retrieval.expansion import QueryExpansion


def top_k(queries: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and Euclidean distances of the k nearest gallery rows for each query, nearest first.

    Both inputs are unit vectors, so |q - g|^2 = 2 - 2 q.g: one matrix product, then argpartition.
    k larger than the gallery returns the whole gallery.
    """
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    g = np.asarray(gallery, dtype=np.float32)
    n = g.shape[0]
    k = min(int(k), n)
    if k <= 0:
        return np.zeros((q.shape[0], 0), np.int64), np.zeros((q.shape[0], 0), np.float32)
    sims = q @ g.T
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (q.shape[0], 1))
    part_sims = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-part_sims, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    dist = np.sqrt(np.clip(2.0 - 2.0 * np.take_along_axis(part_sims, order, axis=1), 0.0, None))
    return idx.astype(np.int64), dist.astype(np.float32)


def fold_near_identical(vectors: np.ndarray, cosine: float = config.NEAR_IDENTICAL_COSINE) -> list[list[int]]:
    """Ranked results (unit vectors, best first) in groups of near-identical photos: each result joins the first
    better-ranked kept result it is at least `cosine` similar to, else starts a group. Groups in rank order, each
    listing its positions, the kept one first."""
    v = np.asarray(vectors, np.float32)
    groups: list[list[int]] = []
    for i in range(len(v)):
        kept = [g[0] for g in groups]
        sims = v[kept] @ v[i] if kept else np.zeros(0)
        j = int(np.argmax(sims >= cosine)) if (sims >= cosine).any() else -1
        if j < 0:
            groups.append([i])
        else:
            groups[j].append(i)
    return groups


class Searcher:
    """Top-k over one gallery: exact by default; past `config.EXACT_SEARCH_LIMIT` the approximate index that
    `scripts/benchmark.py --only ann` chose (`config.ANN_BACKEND`: IVF-PQ with exact re-ranking).

    The exact search runs in torch, the same thread pool as the encoders: measured on 2 cores, a NumPy
    (OpenBLAS) product between two forward passes made the next forward ~30% slower.
    """

    def __init__(self, gallery: np.ndarray, backend: str | None = None, expansion: QueryExpansion | None = None):
        self.gallery = np.ascontiguousarray(gallery, dtype=np.float32)
        self.expansion = expansion  # `gallery` is then the augmented one: a query is expanded by a first search
        self._gallery_t = torch.from_numpy(self.gallery)
        self.backend = backend or (config.ANN_BACKEND if len(gallery) > config.EXACT_SEARCH_LIMIT else "exact")
        self._ann = None
        if self.backend == "faiss-flat":
            self._ann = ann.Flat(self.gallery)
        elif self.backend == "faiss-hnsw":
            self._ann = ann.HNSW(self.gallery)
        elif self.backend == "faiss-ivfpq":
            nlist = int(min(config.IVF_NLIST, max(16, 4 * np.sqrt(len(self.gallery)))))  # the usual 4 sqrt(N) cells
            self._ann = ann.IVFPQRerank(self.gallery, nlist=nlist)
        elif self.backend != "exact":
            raise ValueError(f"unknown search backend {self.backend!r}")

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, distances), nearest first."""
        if self.expansion is not None:
            first, _ = self._search(queries, self.expansion.k)
            queries = self.expansion.expand(queries, self.gallery, first)
        return self._search(queries, k)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._ann is None:
            return self._exact(queries, k)
        return self._ann.search(queries, min(int(k), len(self.gallery)))

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        k = min(int(k), len(self.gallery))
        if k <= 0:
            return np.zeros((q.shape[0], 0), np.int64), np.zeros((q.shape[0], 0), np.float32)
        with torch.inference_mode():
            sims, idx = torch.topk(q @ self._gallery_t.T, k, dim=1, largest=True, sorted=True)
        dist = torch.sqrt(torch.clamp(2.0 - 2.0 * sims, min=0.0))
        return idx.numpy().astype(np.int64), dist.numpy().astype(np.float32)
