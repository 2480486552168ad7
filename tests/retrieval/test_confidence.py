"""Match confidence and agreement as pure functions, and the calibration file's place in an index."""

from __future__ import annotations

import json

import numpy as np
import pytest

from search.errors import BadIndexError
from search.index import load_index
from search.retrieval.calibration import Calibration, fit_calibration, pair_distances
from search.serving.explain import view_box
from ui.figures import agreement_summary, overlaps, shared_by_all


def test_calibration_is_non_increasing_and_calibrated_on_known_rates():
    rng = np.random.default_rng(0)
    # Below 0.5 a pair is the same landmark 90% of the time, above 1.0 10% of the time, 50% between.
    d = rng.uniform(0, 1.5, 60_000)
    rate = np.where(d < 0.5, 0.9, np.where(d > 1.0, 0.1, 0.5))
    cal = fit_calibration(d, rng.random(len(d)) < rate)
    p = cal(np.array([0.25, 0.75, 1.25]))
    assert np.allclose(p, [0.9, 0.5, 0.1], atol=0.03)
    grid = cal(np.linspace(0, 2, 500))
    assert np.all(np.diff(grid) <= 1e-12) and grid.min() >= 0 and grid.max() <= 1


def test_calibration_round_trips_and_rejects_a_curve_that_is_not_monotone():
    cal = Calibration((0.1, 0.5, 0.9), (1.0, 0.6, 0.0), 10, 4, "abc")
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    with pytest.raises(ValueError):
        Calibration.from_dict({**cal.to_dict(), "p_same": [0.2, 0.6, 0.0]})
    with pytest.raises(ValueError, match="both"):
        fit_calibration(np.array([0.1, 0.2]), np.array([True, True]))


def test_pair_distances_label_every_query_gallery_pair():
    q = np.eye(3, dtype=np.float32)[:2]
    g = np.eye(3, dtype=np.float32)
    d, same = pair_distances(q, g, np.array([0, 1]), np.array([0, 1, 1]))
    assert np.allclose(d, [0, np.sqrt(2), np.sqrt(2), np.sqrt(2), 0, np.sqrt(2)], atol=1e-6)
    assert same.tolist() == [True, False, False, False, True, True]


def test_evaluated_index_carries_a_checksummed_calibration(built):
    index = load_index(built / "transfer")
    entry = index.manifest["calibration"]
    assert (built / "transfer" / entry["file"]).is_file() and index.calibration is not None
    assert index.calibration(0.0) >= index.calibration(1.5)


def test_corrupt_calibration_file_is_refused_with_a_clear_message(built, tmp_path):
    import shutil

    root = tmp_path / "idx"
    shutil.copytree(built, root)
    entry = load_index(root / "scratch").manifest["calibration"]
    f = root / "scratch" / entry["file"]
    f.write_text(f.read_text().replace('"pairs"', '"pairz"'))
    with pytest.raises(BadIndexError, match="corrupt.*evaluate.py"):
        load_index(root / "scratch")


def test_overlaps_and_photos_every_encoder_returned():
    paths = {"scratch": ["a", "b", "c"], "pretrained": ["b", "c", "d"], "transfer": ["c", "e", "b"]}
    assert overlaps(paths) == [("scratch", "pretrained", 2), ("scratch", "transfer", 2), ("pretrained", "transfer", 2)]
    assert shared_by_all(paths) == {"b", "c"}
    assert shared_by_all({"scratch": ["a"]}) == set()
    assert "returned by all 3: **2**" in agreement_summary(paths, 3)


def test_view_box_is_the_centre_crop_the_encoder_sees():
    from torchvision import models

    vgg = models.VGG16_Weights.IMAGENET1K_V1.transforms()  # resize 256, crop 224
    assert view_box(vgg, 512, 256) == pytest.approx((256 - 112, 16, 256 + 112, 240))
    assert view_box(vgg, 300, 600) == pytest.approx(
        (300 * (1 - 224 / 256) / 2, 300 - 131.25, 300 - 300 * (1 - 224 / 256) / 2, 300 + 131.25))
