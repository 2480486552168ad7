"""Ranking against brute force; metrics against values worked out by hand; query placement."""

import numpy as np
import pytest

from search.retrieval.metrics import average_precision_at_k, precision_at_k, relevance, retrieval_report
from search.retrieval.projection import place_query, tsne_2d
from search.retrieval.rank import Searcher, top_k


def _unit(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("n,k", [(200, 10), (50, 1), (7, 7), (5, 20)])
def test_top_k_equals_brute_force(n, k):
    rng = np.random.default_rng(n)
    g, q = _unit(rng, n, 32), _unit(rng, 4, 32)
    idx, dist = top_k(q, g, k)
    brute = np.linalg.norm(q[:, None, :] - g[None, :, :], axis=2)
    ref = np.argsort(brute, axis=1, kind="stable")[:, :min(k, n)]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(dist, np.take_along_axis(brute, ref, axis=1), atol=1e-5)
    assert idx.shape == (4, min(k, n))


@pytest.mark.parametrize("k", [1, 10, 300])
def test_searcher_exact_matches_top_k(k):
    rng = np.random.default_rng(k)
    g, q = _unit(rng, 200, 48), _unit(rng, 6, 48)
    idx, dist = Searcher(g).search(q, k)
    ref_idx, ref_dist = top_k(q, g, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, atol=1e-5)


def test_top_k_zero_returns_nothing():
    idx, dist = top_k(np.ones((1, 2), np.float32) / np.sqrt(2), np.eye(2, dtype=np.float32), 0)
    assert idx.shape == (1, 0) and dist.shape == (1, 0)


def test_faiss_flat_backend_matches_exact():
    rng = np.random.default_rng(3)
    g, q = _unit(rng, 500, 16), _unit(rng, 5, 16)
    exact = Searcher(g).search(q, 10)
    flat = Searcher(g, backend="faiss-flat").search(q, 10)
    np.testing.assert_array_equal(exact[0], flat[0])
    np.testing.assert_allclose(exact[1], flat[1], atol=1e-3)


def test_metrics_match_hand_computed_values():
    # Two queries of class 0 and 1; gallery has 2 items of class 0 and 3 of class 1.
    gallery_labels = np.array([0, 0, 1, 1, 1])
    ranked = np.array([[0, 1, 0, 1],    # rel: 1 0 1 0
                       [0, 1, 1, 0]])   # rel: 0 1 1 0
    q = np.array([0, 1])
    rel = relevance(q, ranked)
    assert precision_at_k(rel, 1) == pytest.approx(0.5)        # (1 + 0) / 2
    assert precision_at_k(rel, 4) == pytest.approx(0.5)        # (2/4 + 2/4) / 2
    # AP@4 q0: (1/1 + 2/3) / min(4, 2) = 0.8333; q1: (1/2 + 2/3) / min(4, 3) = 0.3889
    ap = average_precision_at_k(rel, np.array([2, 3]), 4)
    np.testing.assert_allclose(ap, [5 / 6, 7 / 18])
    report = retrieval_report(q, ranked, gallery_labels, ks=(1, 4), map_k=4)
    assert report == {"precision@1": 0.5, "precision@4": 0.5, "mAP@4": round((5 / 6 + 7 / 18) / 2, 4), "queries": 2}


def test_precision_divides_by_k_when_fewer_results_and_scores_a_class_without_gallery_photos_zero():
    # A 3-photo gallery searched at k=5: every result relevant is still 3/5, not 3/3.
    gallery_labels = np.array([0, 0, 0])
    full = relevance(np.array([0]), np.array([[0, 0, 0]]))
    assert precision_at_k(full, 5) == pytest.approx(3 / 5)
    # A query of class 1, which has no gallery photo: P@k 0 and AP 0 (no division by zero).
    report = retrieval_report(np.array([0, 1]), np.array([[0, 0, 0], [0, 0, 0]]), gallery_labels, ks=(1, 5),
                              map_k=5)
    assert report["precision@1"] == pytest.approx(0.5) and report["precision@5"] == pytest.approx(0.3)
    assert report["mAP@5"] == pytest.approx(0.5)


def test_metric_values_on_a_gallery_with_two_indistinguishable_classes():
    """Classes 0 and 1 are drawn from one cluster, class 2 from its own: P@1 must be about (1/2 + 1/2 + 1) / 3."""
    rng = np.random.default_rng(0)
    centres = _unit(rng, 2, 32)

    def draw(cluster: int, n: int) -> np.ndarray:
        x = centres[cluster] + 0.15 * rng.normal(size=(n, 32)).astype(np.float32)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    g_labels = np.repeat([0, 1, 2], 300)
    gallery = np.concatenate([draw(0, 300), draw(0, 300), draw(1, 300)])
    q_labels = np.repeat([0, 1, 2], 300)
    queries = np.concatenate([draw(0, 300), draw(0, 300), draw(1, 300)])
    idx, _ = top_k(queries, gallery, 10)
    report = retrieval_report(q_labels, g_labels[idx], g_labels)
    assert report["precision@1"] == pytest.approx(2 / 3, abs=0.04)
    assert report["precision@10"] == pytest.approx(2 / 3, abs=0.03)
    per_class = [precision_at_k(relevance(q_labels[q_labels == c], g_labels[idx[q_labels == c]]), 1) for c in range(3)]
    assert per_class[2] == 1.0 and abs(per_class[0] - 0.5) < 0.08 and abs(per_class[1] - 0.5) < 0.08


def test_place_query_is_distance_weighted_mean():
    coords = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
    p = place_query(coords, np.array([0, 1]), np.array([0.1, 0.3]))
    # weights 1/0.1 = 10 and 1/0.3 = 3.33: x = 10 * 3.33 / 13.33 = 2.5
    np.testing.assert_allclose(p, [2.5, 0.0], atol=1e-3)


def test_tsne_is_seeded_and_separates_clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(3, 16, dtype=np.float32) * 5
    x = np.concatenate([c + rng.normal(scale=0.1, size=(20, 16)) for c in centres]).astype(np.float32)
    a, b = tsne_2d(x), tsne_2d(x)
    np.testing.assert_array_equal(a, b)
    means = np.array([a[i * 20:(i + 1) * 20].mean(0) for i in range(3)])
    spread = max(a[i * 20:(i + 1) * 20].std(0).max() for i in range(3))
    assert min(np.linalg.norm(means[i] - means[j]) for i in range(3) for j in range(i + 1, 3)) > 3 * spread


def test_large_galleries_switch_to_approximate_search_with_high_recall(monkeypatch):
    from scripts.benchmarks.common import clustered_unit_vectors
    from search import config
    from search.retrieval.metrics import recall_at_k

    g = clustered_unit_vectors(3000, 32, clusters=30, seed=1)
    q = g[:50] + 0.05
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    assert Searcher(g).backend == "exact"
    monkeypatch.setattr(config, "EXACT_SEARCH_LIMIT", 1000)
    ann = Searcher(g)
    assert ann.backend == config.ANN_BACKEND == "faiss-ivfpq"
    idx, dist = ann.search(q, 10)
    exact_idx, exact_dist = top_k(q, g, 10)
    assert recall_at_k(idx, exact_idx) >= 0.95
    assert (np.diff(dist, axis=1) >= -1e-6).all()
    np.testing.assert_allclose(dist[:, 0], exact_dist[:, 0], atol=1e-3)


def test_large_gallery_map_is_fitted_on_a_sample_and_the_rest_placed_into_it():
    rng = np.random.default_rng(1)
    centres = _unit(rng, 4, 16)
    labels = rng.integers(0, 4, 400)
    x = centres[labels] + 0.1 * rng.normal(size=(400, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    from search import config

    cfg = config.TsneConfig(fit_limit=100)
    coords = tsne_2d(x, cfg)
    assert coords.shape == (400, 2) and np.isfinite(coords).all()
    sample = np.sort(np.random.default_rng(cfg.seed).choice(400, 100, replace=False))
    np.testing.assert_array_equal(coords[sample], tsne_2d(x[sample], cfg))  # the sample's own map, unchanged
    rest = np.setdiff1d(np.arange(400), sample)
    # Each placed photo lands among its own cluster's sampled photos on the map.
    d = np.linalg.norm(coords[rest][:, None, :] - coords[sample][None, :, :], axis=2)
    assert np.mean(labels[sample][d.argmin(axis=1)] == labels[rest]) >= 0.95


def test_near_identical_results_fold_into_the_better_ranked_one():
    from search.retrieval.rank import fold_near_identical

    a, b = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    tilt = np.array([0.99, np.sqrt(1 - 0.99 ** 2), 0])       # cosine 0.99 with a
    half = np.array([np.sqrt(0.5), np.sqrt(0.5), 0])          # cosine 0.71 with a and with b: its own result
    near_b = np.array([0, 0.95, np.sqrt(1 - 0.95 ** 2)])       # cosine 0.95 with b
    ranked = np.stack([a, tilt, b, half, near_b, tilt])
    assert fold_near_identical(ranked, cosine=0.9) == [[0, 1, 5], [2, 4], [3]]
    assert fold_near_identical(ranked, cosine=0.999) == [[0], [1, 5], [2], [3], [4]]
    assert fold_near_identical(np.zeros((0, 3))) == []
