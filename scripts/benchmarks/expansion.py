"""Query expansion (alpha-QE with database-side augmentation, an encoders file's `query_expansion = "aqe"`) at the
size the issue names: what a search costs over plain search on a 5,000-photo gallery, and what augmenting the gallery
costs once when an index is built."""

from __future__ import annotations

import time

from scripts.benchmarks.common import best_of, clustered_unit_vectors
from scripts.benchmarks.report import row
from search import config
from search.retrieval.expansion import QueryExpansion
from search.retrieval.rank import Searcher


def bench_expansion(n: int = 5000, dim: int = 1280) -> None:
    """A search with query expansion over the stored augmented gallery against plain search, same gallery, same
    queries, interleaved rounds; and the augmentation at build time."""
    gallery = clustered_unit_vectors(n, dim, clusters=50, seed=3)
    qe = QueryExpansion()
    t = time.perf_counter()
    augmented = qe.augment(gallery)
    build_ms = 1000 * (time.perf_counter() - t)
    plain, expanded = Searcher(gallery), Searcher(augmented, expansion=qe)
    query = gallery[11:12] + 0.01
    k = config.TOP_K_MAX
    plain_ms, expanded_ms = [], []
    for _ in range(3):
        plain_ms.append(best_of(lambda: plain.search(query, k), rounds=30))
        expanded_ms.append(best_of(lambda: expanded.search(query, k), rounds=30))
    row(f"search with query expansion (k={qe.k}, alpha={qe.alpha:g}), {n:,} x {dim}", min(expanded_ms),
        min(plain_ms), "ms", "baseline = plain search of the same gallery; budget: at most 2 ms over it")
    row(f"augment the gallery (DBA), {n:,} x {dim}, once per index build", build_ms, 1000.0, "ms",
        "baseline = one second of a build")


PARTS = {"expansion": lambda ctx: bench_expansion()}
