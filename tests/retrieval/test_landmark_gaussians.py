"""The landmark Gaussians behind a hit's landmark distance: far along the directions that tell landmarks apart, near
along those in which a landmark's own photos vary; stored and read back whole."""

from __future__ import annotations

import io

import numpy as np
import pytest

from search.retrieval.landmark_gaussians import LandmarkGaussians, fit_landmark_gaussians, landmark_space


def _gallery(rng: np.random.Generator, per_landmark: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Four landmarks in 6-d: their means 3 apart along axes 0-3; each one's photos vary little along those axes
    (sd 0.1) and a lot along axes 4 and 5 (sd 1: light, season, viewpoint)."""
    sd = np.array([0.1, 0.1, 0.1, 0.1, 1.0, 1.0])
    x = np.concatenate([3 * np.eye(6)[c] + rng.normal(size=(per_landmark, 6)) * sd for c in range(4)])
    return x, np.repeat(np.arange(4), per_landmark)


def test_a_query_is_far_from_a_landmark_along_what_tells_landmarks_apart():
    x, y = _gallery(np.random.default_rng(0))
    g = fit_landmark_gaussians(x, y, dims=6)
    centre = 3 * np.eye(6)[0]
    # both 1.5 from landmark 0's centre: one the way its photos vary, one towards a look no photo of it has
    like_its_photos, unlike_them = centre + 1.5 * np.eye(6)[4], centre + 1.5 * np.eye(6)[1]
    d = g.distances(np.stack([centre, like_its_photos, unlike_them]), np.zeros((3, 1), int))[:, 0]
    assert d[0] < d[1] < d[2]
    assert d[2] - d[1] > 50  # 1.5 is 15 of the landmark's sd along axis 1, 1.5 of them along axis 4
    # relative to the whole gallery: a query in the middle of everything is near no landmark in particular
    between = x.mean(axis=0)
    near = g.distances(np.stack([centre, between]), np.zeros((2, 1), int))[:, 0]
    assert near[0] < near[1]


def test_the_distances_follow_each_hit_s_landmark():
    x, y = _gallery(np.random.default_rng(1))
    g = fit_landmark_gaussians(x, y, dims=4)  # fewer axes than the vectors have: projected first
    q = 3 * np.eye(6)[2][None]
    d = g.distances(q, np.array([[2, 0, 1, 3]]))[0]
    assert d[0] == d.min()
    with pytest.raises(ValueError, match="not among the landmarks"):
        g.distances(q, np.array([[7]]))


def test_the_gaussians_round_trip_through_an_npz_and_refuse_arrays_that_do_not_fit():
    x, y = _gallery(np.random.default_rng(2))
    g = fit_landmark_gaussians(landmark_space(x, x[:, :2]), y, dims=5, reads_trunk=True)
    buf = io.BytesIO()
    np.savez(buf, **g.to_arrays())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as arrays:
        back = LandmarkGaussians.from_arrays(arrays)
    q, labels = landmark_space(x[:3], x[:3, :2]), np.array([[0, 1], [1, 2], [3, 3]])
    np.testing.assert_allclose(back.distances(q, labels), g.distances(q, labels))
    assert back.reads_trunk is True
    with pytest.raises(ValueError, match="do not fit"):
        LandmarkGaussians.from_arrays({**g.to_arrays(), "means": g.means[:, :2]})
