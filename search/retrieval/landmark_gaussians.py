"""How far a query lies from a landmark, measured against how that landmark's photos vary: the relative Mahalanobis
distance (Ren et al. 2021, "A Simple Fix to Mahalanobis Distance for Improving Near-OOD Detection").

One Gaussian per landmark of the gallery, with a covariance shared by all of them (shrunk by OAS), fitted after a
PCA of the gallery's vectors; minus the distance under one Gaussian of the whole gallery. A query that differs from a
landmark the way its own photos differ from each other (light, season, viewpoint) stays near it; one that differs
along the directions that tell landmarks apart is far, even at the same cosine distance. That is what a landmark the
gallery lacks looks like, so it is one of the match confidence's hit features (search.retrieval.confidence).

Pure functions over arrays; fitted where the confidence is fitted (search/evaluation/open_set.py), stored with it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from search import config


@dataclass(frozen=True, eq=False)
class LandmarkGaussians:
    """The fitted Gaussians: a projection, each landmark's mean, the shared within-landmark precision, and the
    whole gallery's mean and precision (the background the distance is relative to)."""

    center: np.ndarray                # (D,) the gallery's mean vector, subtracted before the projection
    components: np.ndarray            # (d, D) the principal axes kept
    classes: np.ndarray               # (C,) landmark ids, ascending
    means: np.ndarray                 # (C, d) each landmark's mean, projected
    precision: np.ndarray             # (d, d) the inverse of the shared within-landmark covariance
    background_mean: np.ndarray       # (d,)
    background_precision: np.ndarray  # (d, d)
    reads_trunk: bool = False         # the vectors are the encoder's followed by its trunk's (a transfer head's)

    def distances(self, queries: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """(n, H) relative Mahalanobis distance of each of n queries (n, D) to the landmarks of its H hits (n, H)."""
        x = (np.asarray(queries, np.float64) - self.center) @ self.components.T
        labels = np.asarray(labels)
        which = np.searchsorted(self.classes, labels).clip(0, len(self.classes) - 1)
        if np.any(self.classes[which] != labels):
            raise ValueError("a hit's landmark is not among the landmarks the Gaussians were fitted on")
        diff = x[:, None, :] - self.means[which]
        own = ((diff @ self.precision) * diff).sum(axis=2)  # matmul: BLAS, where einsum's three operands are not
        b = x - self.background_mean
        return own - ((b @ self.background_precision) * b).sum(axis=1)[:, None]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted values as named arrays (for `np.savez`)."""
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays) -> LandmarkGaussians:
        """Read back what `to_arrays` gave, checking that the shapes fit together."""
        a = {f.name: np.asarray(arrays[f.name]) for f in fields(cls)}
        g = cls(**{k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in a.items()
                   if k != "reads_trunk"}, reads_trunk=bool(a["reads_trunk"]))
        d, dim = g.components.shape
        if not (g.center.shape == (dim,) and g.means.shape == (len(g.classes), d) and g.precision.shape == (d, d)
                and g.background_mean.shape == (d,) and g.background_precision.shape == (d, d)
                and np.all(np.diff(g.classes) > 0)):
            raise ValueError("the landmark Gaussians' arrays do not fit together")
        return g


def landmark_space(vectors: np.ndarray, trunk_vectors: np.ndarray | None = None) -> np.ndarray:
    """The vectors the Gaussians read: the encoder's unit vectors, followed by its trunk's when given."""
    v = np.asarray(vectors, np.float64)
    return v if trunk_vectors is None else np.concatenate([v, np.asarray(trunk_vectors, np.float64)], axis=1)


def fit_landmark_gaussians(vectors: np.ndarray, labels: np.ndarray, dims: int,
                           reads_trunk: bool = False) -> LandmarkGaussians:
    """Fit the Gaussians on a gallery's (n, D) vectors and landmark ids (at most `dims` principal axes)."""
    # only to fit: the app and Ray workers skip its second of import
    from sklearn.covariance import OAS
    from sklearn.decomposition import PCA

    x, y = np.asarray(vectors, np.float64), np.asarray(labels)
    if len(x) < 3:
        raise ValueError("landmark Gaussians need at least 3 gallery photos")
    pca = PCA(n_components=max(1, min(int(dims), len(x) - 1, x.shape[1])), random_state=config.SEED).fit(x)
    z = pca.transform(x)
    classes, which = np.unique(y, return_inverse=True)
    means = np.stack([z[which == c].mean(axis=0) for c in range(len(classes))])
    within = OAS().fit(z - means[which])
    background = OAS().fit(z)
    return LandmarkGaussians(pca.mean_, pca.components_, classes, means, within.precision_, background.location_,
                             background.precision_, reads_trunk)
