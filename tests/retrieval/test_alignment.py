"""Every encoder's map in one shared frame: turned, mirrored, scaled and shifted onto the maps' consensus, never
made alike; done once when the indexes load, whoever built them."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
from sklearn.manifold import trustworthiness

from search.retrieval.alignment import align_maps, rotation_gain
from search.serving.engine import SearchEngine
from tests.conftest import ROOT

MAX_GAIN = 0.05  # the bound: a further turn or mirror of one served map onto another gains at most 5%


def _mirror(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, s], [s, -c]])


def test_a_turned_mirrored_scaled_shifted_copy_lands_on_its_original():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 2)) * [5, 2]
    b = 3.0 * a @ _mirror(0.7) + [40, -9]
    paths = [f"p{i}.jpg" for i in range(200)]
    assert rotation_gain(a, b) > 0.99
    out = align_maps({"a": a, "b": b}, {"a": paths, "b": paths})
    assert rotation_gain(out["a"], out["b"]) < 1e-9
    np.testing.assert_allclose(out["a"], out["b"], atol=1e-4)


def test_alignment_keeps_each_map_as_faithful_and_the_maps_different():
    rng = np.random.default_rng(1)
    vectors = {n: rng.normal(size=(150, 16)) for n in "abc"}
    maps = {n: v[:, :2] @ _mirror(i) * (i + 1) + i for i, (n, v) in enumerate(vectors.items())}
    paths = {n: [f"p{i}.jpg" for i in range(150)] for n in maps}
    out = align_maps(maps, paths)
    for n in maps:
        assert trustworthiness(vectors[n], out[n], n_neighbors=10) == pytest.approx(
            trustworthiness(vectors[n], maps[n], n_neighbors=10), abs=1e-9)
    for x, y in itertools.combinations(out, 2):
        assert rotation_gain(out[x], out[y]) <= MAX_GAIN
        assert not np.allclose(out[x], out[y], atol=1.0)  # aligned, not copied


def test_photos_only_one_index_holds_move_with_their_map():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(60, 2))
    b = np.vstack([a @ _mirror(1.0), rng.normal(size=(5, 2))])  # b holds 5 more photos
    paths_a = [f"p{i}" for i in range(60)]
    out = align_maps({"a": a, "b": b}, {"a": paths_a, "b": paths_a + [f"extra{i}" for i in range(5)]})
    assert out["b"].shape == (65, 2)
    np.testing.assert_allclose(out["a"], out["b"][:60], atol=1e-4)


def _gains(engine: SearchEngine) -> dict[tuple[str, str], float]:
    maps = {n: b.index.coords for n, b in engine.backends.items()}
    return {(x, y): rotation_gain(maps[x], maps[y]) for x, y in itertools.combinations(maps, 2)}


def _stored(root, names=("scratch", "pretrained", "transfer")) -> dict[str, np.ndarray]:
    """The maps as the index files hold them (no encoder needed to read them)."""
    return {n: np.load(root / n / "tsne.npy") for n in names}


def test_the_served_maps_share_one_frame(built, trained):
    """The session's indexes were built one at a time (build_index, their own t-SNE each): as stored, some pair is
    turned or mirrored; as the engine serves them, none is."""
    stored = _stored(built)
    assert max(rotation_gain(stored[x], stored[y]) for x, y in itertools.combinations(stored, 2)) > MAX_GAIN
    engine = SearchEngine(built, trained)
    assert max(_gains(engine).values()) <= MAX_GAIN, _gains(engine)
    # a private gallery's engine gets its encoders already loaded: the same alignment
    shared = SearchEngine(built, trained, encoders={n: b.encoder for n, b in engine.backends.items()})
    assert max(_gains(shared).values()) <= MAX_GAIN


def test_indexes_written_before_this_change_are_aligned_when_loaded(tmp_path):
    """Indexes the code before this change wrote (their maps as stored, never aligned) are aligned as they load."""
    fixture = ROOT / "tests" / "fixtures" / "before_subpackages"
    shutil.copytree(fixture / "checkpoints", tmp_path / "ckpt")
    shutil.copytree(fixture / "indexes", tmp_path / "idx")
    stored = _stored(tmp_path / "idx")
    engine = SearchEngine(tmp_path / "idx", tmp_path / "ckpt")
    paths = {n: [it["path"] for it in b.index.items] for n, b in engine.backends.items()}
    expected = align_maps(stored, paths)
    for n in stored:
        assert not np.allclose(engine.backends[n].index.coords, stored[n], atol=1e-3)
        np.testing.assert_allclose(engine.backends[n].index.coords, expected[n], atol=1e-4)
    before = {(x, y): rotation_gain(stored[x], stored[y]) for x, y in itertools.combinations(stored, 2)}
    assert sum(_gains(engine).values()) < sum(before.values()) / 2, (before, _gains(engine))
