"""Search at scale: exact NumPy and torch against FAISS, and the approximate-search candidates' recall and latency."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from scripts.benchmarks import common as bench
from scripts.benchmarks.report import row
from search import config
from search.retrieval.metrics import recall_at_k
from search.retrieval.rank import Searcher, top_k


def bench_scale(rng: np.random.Generator, sizes: list[int], n_query: int = 20) -> None:
    """Row 6: exact NumPy / torch search vs FAISS flat and HNSW on large synthetic 256-d galleries."""
    for n in sizes:
        _scale_one(rng, n, n_query)


def _scale_one(rng: np.random.Generator, n: int, n_query: int) -> None:
    """The scale rows for one gallery size (its arrays are freed on return)."""
    g = bench.clustered_unit_vectors(n, 256, clusters=max(100, n // 1000), seed=n)
    # Queries: gallery vectors moved by noise of norm ~0.3, like a re-photographed landmark.
    q = g[rng.integers(0, n, n_query)] + 0.3 / 16 * rng.standard_normal((n_query, 256), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact_idx = top_k(q, g, 10)[0]
    numpy_ms = bench.median_ms(lambda: [top_k(v[None], g, 10) for v in q], repeat=3, warmup=1) / n_query
    gt = torch.from_numpy(g)
    torch_ms = bench.median_ms(lambda: [torch.topk(gt @ torch.from_numpy(v), 10) for v in q],
                               repeat=3, warmup=1) / n_query
    row(f"scale {n:,} x 256: exact torch (matmul + topk)", torch_ms, numpy_ms, "ms",
        "ours below 100k; baseline = exact numpy for every scale row; recall 1.00")
    flat = Searcher(g, backend="faiss-flat")
    flat_ms = bench.median_ms(lambda: [flat.search(v[None], 10) for v in q], repeat=3, warmup=1) / n_query
    flat_rec = recall_at_k(flat.search(q, 10)[0], exact_idx)
    row(f"scale {n:,} x 256: FAISS flat", flat_ms, numpy_ms, "ms", f"recall@10 {flat_rec:.3f}")
    t = time.perf_counter()
    ours = Searcher(g, backend=config.ANN_BACKEND)
    build_s = time.perf_counter() - t
    ours_ms = bench.median_ms(lambda: [ours.search(v[None], 10) for v in q], repeat=3, warmup=1) / n_query
    ours_rec = recall_at_k(ours.search(q, 10)[0], exact_idx)
    row(f"scale {n:,} x 256: {config.ANN_BACKEND} (nprobe={config.IVF_NPROBE}, re-rank {config.ANN_RERANK})",
        ours_ms, numpy_ms, "ms", f"ours past 100k; recall@10 {ours_rec:.3f}; build {build_s:.0f} s")


def _gallery_and_queries(n: int, kind: str, n_query: int, dtype=np.float32, seed: int = 0):
    """A 256-d unit-vector gallery (clustered like real embeddings, or uniform: the worst case) and queries that
    are gallery vectors moved by noise of norm ~0.3, like a re-photographed landmark."""
    rng = np.random.default_rng(seed)
    g = np.empty((n, 256), dtype)
    centres = rng.standard_normal((max(100, n // 1000), 256), dtype=np.float32)
    for start in range(0, n, 500_000):
        m = min(500_000, n - start)
        block = rng.standard_normal((m, 256), dtype=np.float32)
        if kind == "clustered":
            block = centres[rng.integers(0, len(centres), m)] + 0.6 * block
        g[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    q = g[rng.integers(0, n, n_query)].astype(np.float32) + 0.3 / 16 * rng.standard_normal((n_query, 256),
                                                                                          dtype=np.float32)
    return g, q / np.linalg.norm(q, axis=1, keepdims=True)


def _exact_top10(g: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact top-10 by streaming the gallery in blocks (works for float16 galleries larger than RAM as float32)."""
    best_s = np.full((len(q), 10), -np.inf, np.float32)
    best_i = np.zeros((len(q), 10), np.int64)
    for start in range(0, len(g), 1_000_000):
        sims = torch.from_numpy(np.ascontiguousarray(g[start:start + 1_000_000], np.float32)) @ torch.from_numpy(q).T
        s, i = torch.topk(sims.T, 10, dim=1)
        cand_s = np.concatenate([best_s, s.numpy()], axis=1)
        cand_i = np.concatenate([best_i, i.numpy() + start], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def bench_ann(sizes: list[int], n_query: int = 50, kinds: tuple[str, ...] = ("clustered", "uniform")) -> None:
    """Approximate search candidates at scale: recall@10 against exact search and the latency of one query."""
    from search.retrieval import ann

    for n in sizes:
        for kind in kinds:
            big = n > 2_000_000
            g, q = _gallery_and_queries(n, kind, n_query, np.float16 if big else np.float32)
            exact = _exact_top10(g, q)
            exact_ms = bench.median_ms(lambda: _exact_top10(g, q[:1]), repeat=3, warmup=1)
            candidates: list[tuple[str, Callable[[], object], list[tuple[str, Callable[[object], None]]]]] = []
            if not big:  # HNSW keeps full float32 vectors plus its graph: past a few million it does not fit here
                for m in (16, 32):
                    candidates.append((f"HNSW M={m}", lambda m=m: ann.HNSW(g, m=m, ef_search=64),
                                       [(f"ef={ef}", lambda idx, ef=ef: setattr(idx.index.hnsw, "efSearch", ef))
                                        for ef in (64, 128, 256, 512)]))
            candidates.append(("IVF-PQ nlist=4096 m=32 + re-rank" + (" (float16 vectors)" if big else ""),
                               lambda: ann.IVFPQRerank(g, nlist=4096, pq_m=32, nprobe=16, rerank=256),
                               [(f"nprobe={p} rerank={r}", lambda idx, p=p, r=r: (setattr(idx.index, "nprobe", p),
                                                                                  setattr(idx, "rerank", r)))
                                for p in (16, 32, 64) for r in (256, 1024)]))
            for name, build, settings in candidates:
                t = time.perf_counter()
                index = build()
                build_s = time.perf_counter() - t
                for label, apply in settings:
                    apply(index)
                    rec = recall_at_k(index.search(q, 10)[0], exact)
                    ms = bench.median_ms(lambda: [index.search(v[None], 10) for v in q[:20]], repeat=3, warmup=1) / 20
                    row(f"ann {n:,} x 256 {kind}: {name} {label}", ms, exact_ms, "ms",
                        f"recall@10 {rec:.3f}; build {build_s:.0f} s; baseline = exact search of one query")
                index = None  # free it before the next candidate is built
            g = q = None


PARTS = {"scale": lambda ctx: bench_scale(ctx.rng, ctx.args.scale),
         "ann": lambda ctx: bench_ann(ctx.args.ann, kinds=tuple(ctx.args.ann_kinds))}
