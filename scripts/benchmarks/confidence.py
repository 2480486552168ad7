"""The match confidence's landmark distance: what it adds to the P(same landmark) of a search's hits, and what
fitting the landmark Gaussians costs once per evaluation, on a transfer-sized gallery (a 256-d head followed by a
1,280-d trunk)."""

from __future__ import annotations

import time

import numpy as np

from scripts.benchmarks.common import best_of, clustered_unit_vectors
from scripts.benchmarks.report import row
from search import config
from search.retrieval.confidence import Confidence, hit_features
from search.retrieval.landmark_gaussians import fit_landmark_gaussians, landmark_space


def _logistic(features: int) -> Confidence:
    """A fitted-looking logistic over `features` hit features (its values do not change the cost)."""
    names = ("distance", "margin", "agreement", "trunk_distance", "landmark_distance")[:features]
    return Confidence(names, (0.0,) * features, (1.0,) * features, (-1.0,) * features, 0.0, 10, 1, 1)


def bench_confidence(n: int = 5000, landmarks: int = 50, head: int = 256, trunk: int = 1280) -> None:
    """P(same landmark) of a query's top 10 hits with the landmark distance against without it (same hits, same
    other features, interleaved rounds); and fitting the Gaussians on the gallery."""
    cfg = config.OPEN_SET
    vectors = landmark_space(clustered_unit_vectors(n, head, clusters=landmarks, seed=5),
                             clustered_unit_vectors(n, trunk, clusters=landmarks, seed=6))
    labels = np.arange(n) % landmarks
    t = time.perf_counter()
    gaussians = fit_landmark_gaussians(vectors, labels, cfg.landmark_dims, reads_trunk=True)
    fit_ms = 1000 * (time.perf_counter() - t)
    query, rows = vectors[7:8] + 0.01, np.arange(cfg.k)[None] * 37
    dist, hit_labels = np.linspace(0.5, 1.0, cfg.k)[None], labels[rows]
    trunk_d = np.linspace(0.6, 1.1, cfg.k)[None]
    before, after = _logistic(4), _logistic(5)
    without, with_it = [], []
    for _ in range(3):
        without.append(best_of(lambda: before.ranked(hit_features(dist, hit_labels, trunk_d, cfg.k)), rounds=50))
        with_it.append(best_of(lambda: after.ranked(hit_features(
            dist, hit_labels, trunk_d, cfg.k, gaussians.distances(query, hit_labels))), rounds=50))
    row(f"P(same landmark) of the top {cfg.k} hits with the landmark distance ({cfg.landmark_dims} axes of "
        f"{head}+{trunk}-d)", min(with_it), min(without), "ms", "baseline = the same without the landmark distance")
    row(f"fit the landmark Gaussians, {n:,} photos of {landmarks} landmarks, once per evaluation", fit_ms, 1000.0,
        "ms", "baseline = one second of an evaluation")


PARTS = {"confidence": lambda ctx: bench_confidence()}
