"""Open-set match confidence: P(this hit shows the query's landmark) from more evidence than one distance, fitted
with landmarks left out so that queries whose landmark the gallery lacks are among its negatives; and the figures
that say whether an encoder knows when it does not know (AUROC, false-confident rate, GAP).

Pure functions over arrays; the evaluation that produces the data lives in `search/evaluation/open_set.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from search import config
from search.retrieval.intervals import auroc_of, share_of, statistic_interval

BASE_FEATURES = ("distance", "margin", "agreement")
TRUNK_FEATURE = "trunk_distance"
LANDMARK_FEATURE = "landmark_distance"


def class_folds(n_classes: int, folds: int, seed: int = config.SEED) -> list[np.ndarray]:
    """The class ids split into `folds` disjoint, seeded groups of near-equal size (each left out once)."""
    if not 2 <= folds <= n_classes:
        raise ValueError(f"need 2 to {n_classes} folds for {n_classes} classes (got {folds})")
    order = np.random.default_rng(seed).permutation(n_classes)
    return [np.sort(part) for part in np.array_split(order, folds)]


def hit_features(distances: np.ndarray, labels: np.ndarray, trunk_distances: np.ndarray | None = None,
                 window: int | None = None, landmark_distances: np.ndarray | None = None) -> np.ndarray:
    """(n, H, F) evidence for each of a query's ranked hits (distances ascending along H), read off the top
    `window` hits (all H by default): the hit's distance; the margin to the nearest hit of another landmark among
    them (to the last of them when all agree); the share of them that show its landmark; and, when given, the
    query-hit distance in the trunk's own space and the query's distance to the hit's landmark as a whole
    (search.retrieval.landmark_gaussians)."""
    d = np.asarray(distances, np.float64)
    lab = np.asarray(labels)
    w = d.shape[1] if window is None else min(int(window), d.shape[1])
    dw, lw = d[:, :w], lab[:, :w]
    other = lw[:, None, :] != lab[:, :, None]                        # (n, H hit, window)
    other_d = np.where(other, dw[:, None, :], np.inf).min(axis=2)    # nearest hit of another landmark
    other_d = np.where(np.isfinite(other_d), other_d, dw[:, -1:])
    margin = other_d - d
    agreement = (lw[:, None, :] == lab[:, :, None]).mean(axis=2)
    feats = [d, margin, agreement]
    feats += [np.asarray(v, np.float64) for v in (trunk_distances, landmark_distances) if v is not None]
    return np.stack(feats, axis=2)


@dataclass(frozen=True)
class Curve:
    """A non-decreasing piecewise-linear map from a score to a probability (isotonic regression's knots)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, score: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(score, np.float64), self.x, self.y)

    @classmethod
    def from_dict(cls, d: dict) -> Curve:
        x, y = tuple(map(float, d["x"])), tuple(map(float, d["y"]))
        if not x or len(x) != len(y) or np.any(np.diff(x) < 0) or np.any(np.diff(y) < -1e-12):
            raise ValueError("a recalibration curve is not non-decreasing")
        return cls(x, y)


def fit_curve(scores: np.ndarray, right: np.ndarray) -> Curve:
    """Isotonic regression of being right on a score: the recalibration that makes a score mean what it says. Each
    block of the fit says (right + 1/2) / (queries + 1) instead of right / queries (Jeffreys' prior), so that a block
    of 20 right answers says 98%, not a certainty it never saw."""
    # only to fit: the app and Ray workers skip its second of import
    from sklearn.isotonic import IsotonicRegression

    s, y = np.asarray(scores, np.float64).ravel(), np.asarray(right, np.float64).ravel()
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    fitted = iso.predict(s)
    levels = np.unique(fitted)
    block = np.searchsorted(levels, fitted)  # each score's block, by its fitted value
    rate = (np.bincount(block, weights=y) + 0.5) / (np.bincount(block) + 1.0)
    knots = rate[np.searchsorted(levels, iso.y_thresholds_)]
    return Curve(tuple(map(float, iso.X_thresholds_)), tuple(map(float, np.maximum.accumulate(knots))))


@dataclass(frozen=True)
class Confidence:
    """Logistic regression on standardised hit features -> a score, monotone in each feature; recalibrated (when
    fitted so) into P(same landmark) by one isotonic curve for the top hit and one for the hits below it: the top
    hit is the best of k, so the same evidence means more there."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    k: int                               # the hits the features look at
    rows: int                            # (query, hit) rows it was fitted on
    positives: int
    encoder_fingerprint: str = ""
    threshold: float = config.CONFIDENT_P_SAME   # a top hit is called a match at or above this P
    top: Curve | None = None             # the recalibration of the top hit's score
    rest: Curve | None = None            # and of the hits below it (none: the logistic's own P, as fitted before)

    @property
    def uses_trunk(self) -> bool:
        return TRUNK_FEATURE in self.features

    @property
    def uses_landmarks(self) -> bool:
        return LANDMARK_FEATURE in self.features

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        """The logistic's P(same landmark) for features of shape (..., F), before any recalibration."""
        z = (np.asarray(feats, np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def ranked(self, feats: np.ndarray) -> np.ndarray:
        """P(same landmark) of a query's ranked hits, features (..., H, F) with the top hit first: recalibrated."""
        p = self(feats)
        if self.top is None or self.rest is None:
            return p
        return np.concatenate([self.top(p[..., :1]), self.rest(p[..., 1:])], axis=-1)

    def to_dict(self) -> dict:
        return {"kind": "logistic", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> Confidence:
        if d.get("kind") != "logistic":
            raise ValueError(f"unknown confidence kind {d.get('kind')!r}")
        features = tuple(map(str, d["features"]))
        vecs = [tuple(map(float, d[key])) for key in ("mean", "scale", "coef")]
        if not features or any(len(v) != len(features) for v in vecs) or min(vecs[1]) <= 0:
            raise ValueError("confidence parameters do not match its features")
        unknown = set(features) - {*BASE_FEATURES, TRUNK_FEATURE, LANDMARK_FEATURE}
        if unknown:
            raise ValueError(f"unknown confidence features {sorted(unknown)}")
        threshold = float(d.get("threshold", config.CONFIDENT_P_SAME))
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"confidence threshold {threshold} is not a probability")
        curves = [Curve.from_dict(d[key]) if d.get(key) else None for key in ("top", "rest")]
        return cls(features, *vecs, float(d["intercept"]), int(d["k"]), int(d["rows"]), int(d["positives"]),
                   str(d.get("encoder_fingerprint", "")), threshold, *curves)


def fit_confidence(feats: np.ndarray, same: np.ndarray, names: tuple[str, ...], k: int,
                   encoder_fingerprint: str = "") -> Confidence:
    """Fit P(same landmark) on (rows, F) hit features and whether each hit shows the query's landmark."""
    # only to fit: the app and Ray workers skip its second of import
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = np.asarray(feats, np.float64), np.asarray(same, bool)
    if len(x) == 0 or y.all() or not y.any():
        raise ValueError("a confidence needs hits of the query's landmark and hits of others")
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = LogisticRegression(C=1.0, max_iter=1000).fit((x - scaler.mean_) / scale, y)
    return Confidence(tuple(names), tuple(map(float, scaler.mean_)), tuple(map(float, scale)),
                      tuple(map(float, model.coef_[0])), float(model.intercept_[0]), int(k), int(len(x)),
                      int(y.sum()), encoder_fingerprint)


def match_threshold(p_absent: np.ndarray, max_false: float = config.MAX_FALSE_CONFIDENT,
                    floor: float = config.CONFIDENT_P_SAME) -> float:
    """The lowest P at or above which at most `max_false` of these absent-landmark queries are called a match (and
    never below `floor`: a match is always more likely than not)."""
    p = np.sort(np.asarray(p_absent, np.float64))[::-1]
    allowed = int(np.floor(max_false * len(p)))
    if allowed >= len(p):
        return floor
    return float(min(1.0, max(floor, np.nextafter(p[allowed], np.inf))))  # a P of 1 is the most it can ask


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of `scores` separating positives from negatives (None without both)."""
    # only to fit: the app and Ray workers skip its second of import
    from sklearn.metrics import roc_auc_score

    y = np.asarray(positive, bool)
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, np.asarray(scores, np.float64)))


def gap(confidence: np.ndarray, correct: np.ndarray, n_relevant: int | None = None) -> float:
    """Global Average Precision (Google Landmark Recognition): each query's one prediction ranked by confidence,
    precision at each correct one, summed and divided by the queries that have a right answer (`n_relevant`,
    default: every correct prediction's query); queries whose landmark is absent can only add false positives."""
    order = np.argsort(-np.asarray(confidence, np.float64), kind="stable")
    hits = np.asarray(correct, bool)[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    m = int(hits.sum()) if n_relevant is None else int(n_relevant)
    return float((precision * hits).sum() / m) if m else 0.0


def open_set_report(p_top: np.ndarray, correct: np.ndarray, absent: np.ndarray,
                    threshold: float | np.ndarray = config.CONFIDENT_P_SAME) -> dict:
    """What a confidence does on queries whose landmark is present and absent: AUROC of the top hit's P(same)
    separating "top hit right" from "landmark absent", the share of absent-landmark queries called confident, the
    share of right top hits called confident, and GAP over all queries (`threshold`: one, or one per query)."""
    p, ok, out = np.asarray(p_top, np.float64), np.asarray(correct, bool), np.asarray(absent, bool)
    sep = ok | out
    confident = p >= threshold
    present = ~out
    return {"auroc": _round(auroc(p[sep], ok[sep])),
            "false_confident": _round(float(confident[out].mean()) if out.any() else None),
            "confident_when_right": _round(float(confident[ok].mean()) if ok.any() else None),
            "gap": round(gap(p, ok, n_relevant=int(present.sum())), 4),
            "queries_absent": int(out.sum()), "queries_present": int(present.sum()),
            "threshold": threshold}


def open_set_intervals(p_top: np.ndarray, correct: np.ndarray, absent: np.ndarray,
                       threshold: float | np.ndarray) -> dict:
    """95% bootstrap intervals over queries of the open-set figures `open_set_report` gives (same keys)."""
    p, ok, out = np.asarray(p_top, np.float64), np.asarray(correct, bool), np.asarray(absent, bool)
    confident = p >= threshold
    return {"auroc": statistic_interval(auroc_of, [p, ok, out]),
            "false_confident": statistic_interval(share_of, [confident, out]),
            "confident_when_right": statistic_interval(share_of, [confident, ok])}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def calibration_error(p: np.ndarray, correct: np.ndarray, bins: int = config.RELIABILITY_BINS) -> float:
    """Expected calibration error: |predicted P - share right| per equal-width bin of P, weighted by its queries."""
    points = reliability(p, correct, bins, decimals=None)
    n = sum(b["n"] for b in points)
    return round(sum(b["n"] * abs(b["p"] - b["observed"]) for b in points) / n, 4) if n else 0.0


def reliability(p: np.ndarray, correct: np.ndarray, bins: int = config.RELIABILITY_BINS,
                decimals: int | None = 4) -> list[dict]:
    """Predicted P against observed share correct, in equal-width bins of P (the reliability diagram's points)."""
    p, ok = np.asarray(p, np.float64), np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    keep = (lambda v: v) if decimals is None else (lambda v: round(v, decimals))
    return [{"p": keep(float(p[which == b].mean())), "observed": keep(float(ok[which == b].mean())),
             "n": int((which == b).sum())} for b in range(bins) if (which == b).any()]
