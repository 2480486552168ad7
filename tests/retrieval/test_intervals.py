"""The intervals on every figure: a bootstrap interval against a distribution whose answer is known, the paired test
on hand-worked cases, and the multiple-comparison correction."""

from __future__ import annotations

import numpy as np
import pytest

from search import config
from search.retrieval.intervals import adjust, interval, paired_difference, statistic_interval


def test_the_bootstrap_interval_of_a_share_covers_the_true_share_95_times_in_100():
    # P@1 of 400 queries, each right with probability 0.8: the interval is about +-1.96 sqrt(0.8 * 0.2 / 400) wide
    rng = np.random.default_rng(11)
    cfg = config.BootstrapConfig(resamples=1000)
    intervals = [interval(rng.random(400) < 0.8, cfg) for _ in range(200)]
    widths = [hi - lo for lo, hi in intervals]
    assert 0.070 < float(np.median(widths)) < 0.088
    covered = np.mean([lo <= 0.8 <= hi for lo, hi in intervals])
    assert 0.90 <= covered <= 0.99
    assert interval(np.ones(50)) == [1.0, 1.0] and interval(np.ones(1)) is None


def test_the_interval_is_seeded():
    v = np.random.default_rng(0).random(300) < 0.7
    assert interval(v) == interval(v)
    assert interval(v, config.BootstrapConfig(seed=1)) != interval(v)


def test_a_statistic_of_arrays_resampled_together():
    from search.retrieval.confidence import auroc
    from search.retrieval.intervals import auroc_of, share_of

    rng = np.random.default_rng(2)
    scores = np.round(rng.random(500), 2)  # ties too
    right = rng.random(500) < scores
    absent = ~right & (rng.random(500) < 0.5)
    # the vectorised AUROC is sklearn's on the queries it separates, row by row
    assert auroc_of(scores, right, absent) == pytest.approx(auroc(scores[right | absent], right[right | absent]))
    two = auroc_of(np.stack([scores, scores[::-1]]), np.stack([right, right[::-1]]), np.stack([absent, absent[::-1]]))
    assert two.tolist() == pytest.approx([float(auroc_of(scores, right, absent))] * 2)
    assert np.isnan(auroc_of(scores, right, np.zeros(500)))
    assert share_of(np.array([1, 0, 1, 1]), np.array([1, 1, 0, 0])) == 0.5
    lo, hi = statistic_interval(auroc_of, [scores, right, absent])
    assert lo < auroc_of(scores, right, absent) < hi and hi - lo < 0.15


def test_a_paired_difference_on_hand_worked_cases():
    same = np.ones(300)
    better = same.copy()
    other = same.copy()
    other[:3] = 0  # A right on 3 queries where B was wrong, the other 297 alike
    # the sign-flip test is exact here: 2 of the 2**3 sign patterns are as extreme as (+,+,+)
    d = paired_difference(better, other)
    assert d["difference"] == pytest.approx(0.01) and d["p"] == pytest.approx(0.25) and not d["real"]
    other[:10] = 0
    d = paired_difference(better, other)
    assert d["p"] == pytest.approx(2 / 2 ** 10, abs=1e-4) and d["real"]
    lo, hi = d["ci95"]
    assert 0 < lo <= d["difference"] <= hi
    assert paired_difference(same, same) == {"difference": 0.0, "ci95": [0.0, 0.0], "p": 1.0, "queries": 300,
                                             "real": False}
    with pytest.raises(ValueError):
        paired_difference(np.ones(3), np.ones(4))


def test_benjamini_hochberg_on_a_hand_worked_case():
    # sorted 0.01, 0.03, 0.04, 0.5 times 4/rank = 0.04, 0.06, 0.0533, 0.5, then the running minimum from the top
    assert adjust([0.01, 0.04, 0.03, 0.5]) == [0.04, 0.0533, 0.0533, 0.5]
    assert adjust([]) == []
