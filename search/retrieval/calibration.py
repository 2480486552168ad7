"""Match confidence: a per-encoder map from embedding distance to P(same landmark), fitted on labelled pairs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from search import config


@dataclass(frozen=True)
class Calibration:
    """A non-increasing piecewise-linear curve distance -> P(same landmark), as isotonic regression fits it."""

    distances: tuple[float, ...]     # knots, increasing
    p_same: tuple[float, ...]        # P(same) at each knot, non-increasing
    pairs: int                       # labelled pairs it was fitted on
    positives: int                   # of which same-landmark pairs
    encoder_fingerprint: str = ""

    def __call__(self, distance: np.ndarray | float) -> np.ndarray:
        """P(same landmark) at each distance (clipped to the fitted range)."""
        return np.interp(np.asarray(distance, dtype=np.float64), self.distances, self.p_same)

    def to_dict(self) -> dict:
        return {"kind": "isotonic", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        if d.get("kind") != "isotonic":
            raise ValueError(f"unknown calibration kind {d.get('kind')!r}")
        dist, p = tuple(map(float, d["distances"])), tuple(map(float, d["p_same"]))
        if len(dist) < 1 or len(dist) != len(p) or np.any(np.diff(dist) < 0) or np.any(np.diff(p) > 1e-12):
            raise ValueError("calibration knots are not a non-increasing curve")
        return cls(dist, p, int(d["pairs"]), int(d["positives"]), str(d.get("encoder_fingerprint", "")))


def pair_distances(queries: np.ndarray, gallery: np.ndarray, q_labels: np.ndarray,
                   g_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances of every (query, gallery) pair of unit vectors and whether the pair shows the same class."""
    sims = np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T
    dist = np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, None)).ravel()
    same = (np.asarray(q_labels)[:, None] == np.asarray(g_labels)[None, :]).ravel()
    return dist, same


def fit_calibration(distances: np.ndarray, same: np.ndarray, encoder_fingerprint: str = "",
                    max_pairs: int = config.CALIBRATION_MAX_PAIRS, seed: int = config.SEED) -> Calibration:
    """Isotonic regression of same-landmark on distance (non-increasing), on at most `max_pairs` pairs."""
    # only to fit: the app and Ray workers skip its second of import
    from sklearn.isotonic import IsotonicRegression

    d, y = np.asarray(distances, np.float64), np.asarray(same, np.float64)
    if len(d) == 0 or y.min() == y.max():
        raise ValueError("calibration needs both same-landmark and different-landmark pairs")
    if len(d) > max_pairs:
        keep = np.random.default_rng(seed).choice(len(d), max_pairs, replace=False)
        d, y = d[keep], y[keep]
    iso = IsotonicRegression(increasing=False, y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(d, y)
    return Calibration(tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_)),
                       int(len(d)), int(y.sum()), encoder_fingerprint)
