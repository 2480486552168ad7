"""Exact search on the demo-sized gallery against scikit-learn's brute force."""

from __future__ import annotations

import numpy as np

from scripts.benchmarks import common as bench
from scripts.benchmarks.report import row
from search.retrieval.rank import Searcher


def bench_search(rng: np.random.Generator) -> None:
    """Row 2: exact top-10 on the demo-sized gallery vs scikit-learn brute force."""
    from sklearn.neighbors import NearestNeighbors

    for dim in (4096, 256):
        g = bench.clustered_unit_vectors(6000, dim, clusters=50, seed=dim)
        q = g[rng.integers(0, 6000, 20)] + 0.3 / np.sqrt(dim) * rng.standard_normal((20, dim), dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        nn = NearestNeighbors(n_neighbors=10, algorithm="brute").fit(g)
        searcher = Searcher(g)
        ours = bench.median_ms(lambda: [searcher.search(v[None], 10) for v in q], repeat=5) / len(q)
        base = bench.median_ms(lambda: [nn.kneighbors(v[None]) for v in q], repeat=5) / len(q)
        same = all((searcher.search(v[None], 10)[0] == nn.kneighbors(v[None])[1]).all() for v in q)
        row(f"search 6,000 x {dim}, top-10, one query", ours, base, "ms",
            f"vs sklearn brute; top-10 {'identical' if same else 'DIFFERS'} on 20 queries")


PARTS = {"search": lambda ctx: bench_search(ctx.rng)}
