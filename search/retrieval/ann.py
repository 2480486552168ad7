"""Approximate nearest-neighbour search for galleries past `config.EXACT_SEARCH_LIMIT` (FAISS).

`IVFPQRerank` is FAISS IVF-PQ (vectors compressed to `pq_m` bytes, a coarse quantiser of `nlist` cells,
`nprobe` cells searched per query) whose `rerank` best candidates are re-ranked by exact distance on the
stored vectors (float16 is enough for that). `HNSW` is FAISS HNSW-Flat. Which one the product uses, with
which settings, was decided by `scripts/benchmark.py --only ann` (docs/performance.md says why).
"""

from __future__ import annotations

import numpy as np

from search import config


def _faiss():
    import faiss  # imported only when a large gallery needs it

    return faiss


class Flat:
    """FAISS exact search (a reference for the others)."""

    def __init__(self, vectors: np.ndarray):
        self.index = _faiss().IndexFlatL2(vectors.shape[1])
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        d2, idx = self.index.search(np.atleast_2d(queries).astype(np.float32), k)
        return idx.astype(np.int64), np.sqrt(np.clip(d2, 0, None)).astype(np.float32)


class HNSW:
    """FAISS HNSW over the full-precision vectors."""

    def __init__(self, vectors: np.ndarray, m: int = config.HNSW_M, ef_search: int = config.HNSW_EF_SEARCH,
                 ef_construction: int = 40):
        faiss = _faiss()
        self.index = faiss.IndexHNSWFlat(vectors.shape[1], m)
        self.index.hnsw.efConstruction = ef_construction
        for start in range(0, len(vectors), 200_000):
            self.index.add(np.ascontiguousarray(vectors[start:start + 200_000], dtype=np.float32))
        self.index.hnsw.efSearch = ef_search

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        d2, idx = self.index.search(np.atleast_2d(queries).astype(np.float32), k)
        return idx.astype(np.int64), np.sqrt(np.clip(d2, 0, None)).astype(np.float32)


class IVFPQRerank:
    """IVF-PQ candidates, re-ranked exactly on the stored vectors (which may be float16 or a memmap)."""

    def __init__(self, vectors: np.ndarray, nlist: int = config.IVF_NLIST, pq_m: int = config.PQ_M,
                 nprobe: int = config.IVF_NPROBE, rerank: int = config.ANN_RERANK, train_size: int = 100_000,
                 seed: int = config.SEED):
        faiss = _faiss()
        n, dim = vectors.shape
        self.vectors, self.nprobe, self.rerank = vectors, nprobe, rerank
        quantizer = faiss.IndexFlatL2(dim)
        self.index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, 8)
        sample = np.random.default_rng(seed).choice(n, min(n, max(train_size, 40 * nlist)), replace=False)
        self.index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
        for start in range(0, n, 200_000):
            self.index.add(np.ascontiguousarray(vectors[start:start + 200_000], dtype=np.float32))
        self.index.nprobe = nprobe

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.atleast_2d(queries).astype(np.float32)
        _, cand = self.index.search(q, max(k, self.rerank))
        out_i = np.empty((len(q), k), np.int64)
        out_d = np.empty((len(q), k), np.float32)
        for r, (qv, c) in enumerate(zip(q, cand)):
            c = c[c >= 0]
            sims = self.vectors[c].astype(np.float32) @ qv
            top = np.argsort(-sims, kind="stable")[:k]
            out_i[r, :len(top)], out_d[r, :len(top)] = c[top], np.sqrt(np.clip(2 - 2 * sims[top], 0, None))
        return out_i, out_d
