"""How sure a figure is: 95% bootstrap intervals over queries, paired comparisons of two encoders on the same
queries, and the multiple-comparison correction for many of them at once (scipy.stats). Pure functions over arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from search import config


def interval(values: np.ndarray, cfg: config.BootstrapConfig = config.BOOTSTRAP) -> list[float] | None:
    """The percentile bootstrap interval of a mean over queries, e.g. P@1 from each query's 0 or 1."""
    # only to evaluate: the app reads the stored intervals and skips scipy's import
    from scipy.stats import bootstrap

    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return None
    if np.all(v == v[0]):
        return [round(float(v[0]), 4)] * 2  # every resample gives the same mean
    res = bootstrap((v,), np.mean, n_resamples=cfg.resamples, confidence_level=cfg.level, method="percentile",
                    random_state=np.random.default_rng(cfg.seed), vectorized=True)
    return [round(float(res.confidence_interval.low), 4), round(float(res.confidence_interval.high), 4)]


def statistic_interval(statistic: Callable[..., np.ndarray], arrays: Sequence[np.ndarray],
                       cfg: config.BootstrapConfig = config.BOOTSTRAP) -> list[float] | None:
    """The percentile bootstrap interval of a statistic of per-query arrays resampled together (AUROC of scores and
    outcomes, a rate among the queries of one kind). `statistic(*arrays, axis=-1)` is vectorised over resamples, as
    scipy.stats.bootstrap calls it, and gives NaN where a resample leaves it undefined; None when it is."""
    from scipy.stats import bootstrap

    arrays = [np.asarray(a, np.float64) for a in arrays]
    if len(arrays[0]) < 2:
        return None
    res = bootstrap(arrays, statistic, paired=True, vectorized=True, n_resamples=cfg.resamples,
                    confidence_level=cfg.level, method="percentile", random_state=np.random.default_rng(cfg.seed))
    low, high = res.confidence_interval
    return None if not (np.isfinite(low) and np.isfinite(high)) else [round(float(low), 4), round(float(high), 4)]


def share_of(hit: np.ndarray, among: np.ndarray, axis: int = -1) -> np.ndarray:
    """The share of the queries marked `among` that are marked `hit` (0/1 arrays; NaN without any), vectorised."""
    n = np.sum(among, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.sum(hit * among, axis=axis) / n, np.nan)


def auroc_of(scores: np.ndarray, positive: np.ndarray, negative: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUROC of `scores` separating the queries marked `positive` from those marked `negative` (others left out),
    by the Mann-Whitney rank sum with ties averaged; vectorised over leading axes (NaN without both kinds)."""
    from scipy.stats import rankdata

    s = np.moveaxis(np.asarray(scores, np.float64), axis, -1)
    pos, neg = (np.moveaxis(np.asarray(m, np.float64), axis, -1) > 0 for m in (positive, negative))
    ranks = rankdata(np.where(pos | neg, s, np.nan), axis=-1, nan_policy="omit")
    n_pos, n_neg = pos.sum(-1), neg.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = np.nansum(np.where(pos, ranks, 0.0), axis=-1) - n_pos * (n_pos + 1) / 2
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def paired_difference(a: np.ndarray, b: np.ndarray, cfg: config.BootstrapConfig = config.BOOTSTRAP) -> dict:
    """Encoder A minus encoder B on the same queries (per-query values in the same order): the mean difference, its
    95% bootstrap interval, and the two-sided p-value of a paired permutation test (sign flips of each query's
    difference). `real` says whether the difference passes the test at 1 - level."""
    # only to evaluate: the app reads the stored comparisons and skips scipy's import
    from scipy.stats import permutation_test

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or len(a) < 2:
        raise ValueError("a paired comparison needs the same queries, at least two, for both encoders")
    d = a - b
    low, high = interval(d, cfg)
    moved = d[d != 0]  # queries where the encoders differ: the others flip to themselves
    if len(moved) < 2:
        p = 1.0  # of the sign flips of one difference (or none), every one is as extreme
    else:  # the sign-flip test of the mean difference (exact while 2**len(moved) <= resamples)
        p = float(permutation_test((moved,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                                   n_resamples=cfg.resamples, vectorized=True, alternative="two-sided",
                                   random_state=np.random.default_rng(cfg.seed)).pvalue)
    return {"difference": round(float(d.mean()), 4), "ci95": [low, high], "p": round(p, 4),
            "queries": int(len(d)), "real": bool(p < 1 - cfg.level)}


def adjust(p_values: Sequence[float], method: str = "bh") -> list[float]:
    """p-values adjusted for testing many differences at once (Benjamini-Hochberg by default, or 'by')."""
    from scipy.stats import false_discovery_control

    if not len(p_values):
        return []
    return [round(float(v), 4) for v in false_discovery_control(np.asarray(p_values, np.float64), method=method)]
