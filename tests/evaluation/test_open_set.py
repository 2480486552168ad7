"""Open-set match confidence: its figures on hand-made cases, the leave-classes-out folds, and the app saying "not in
the gallery" for a landmark the gallery lacks while a copy of a gallery photo stays a confident match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from search import config
from search.evaluation.open_set import FoldRun, recalibrated_confidence
from search.retrieval.confidence import (
    Confidence,
    auroc,
    calibration_error,
    class_folds,
    fit_confidence,
    fit_curve,
    gap,
    hit_features,
    match_threshold,
    open_set_report,
    reliability,
)
from tests.conftest import CLASSES


def absent_landmark(rng: np.random.Generator, size: tuple[int, int] = (128, 96)) -> Image.Image:
    """A picture of a kind none of the generated landmarks shows (they are stripes, circles and checks on a flat
    colour): a smooth two-colour gradient with a few triangles."""
    w, h = size
    a, b = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    t = np.linspace(0, 1, w)[None, :, None]
    arr = (a * (1 - t) + b * t) * np.ones((h, 1, 1))
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(3):
        pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(3)]
        d.polygon(pts, fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return img


# -- the figures, on cases worked out by hand -------------------------------------------------------------------

def test_gap_on_a_hand_worked_case():
    # ranked by confidence: right (precision 1/1), wrong, right (2/3), wrong; 3 queries have a right answer
    assert gap(np.array([0.6, 0.9, 0.7, 0.8]), np.array([False, True, True, False]), n_relevant=3) == pytest.approx(
        (1 + 2 / 3) / 3)
    # an absent-landmark query ranked first only adds a false positive: 0/1, then right at 1/2
    assert gap(np.array([0.95, 0.5]), np.array([False, True]), n_relevant=1) == pytest.approx(0.5)
    assert gap(np.array([0.5, 0.95]), np.array([False, True]), n_relevant=1) == pytest.approx(1.0)


def test_auroc_on_a_hand_worked_case():
    # positives 0.9 and 0.7, negatives 0.8 and 0.6: 3 of the 4 (positive, negative) pairs are ordered right
    assert auroc(np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, False, True, False])) == pytest.approx(0.75)
    assert auroc(np.array([0.1, 0.2]), np.array([True, True])) is None


def test_open_set_report_on_a_hand_worked_case():
    p = np.array([0.9, 0.8, 0.3, 0.7])
    correct = np.array([True, False, False, False])   # q0 right, q1 wrong hit of a present landmark
    absent = np.array([False, False, True, True])     # q2, q3: their landmark is not in the gallery
    r = open_set_report(p, correct, absent, threshold=0.5)
    assert r["auroc"] == 1.0                  # 0.9 (right) above 0.3 and 0.7 (absent)
    assert r["false_confident"] == 0.5        # 0.7 of the two absent is called confident
    assert r["confident_when_right"] == 1.0
    assert r["gap"] == 0.5                    # right at rank 1 (1/1), over 2 queries whose landmark is present
    assert (r["queries_absent"], r["queries_present"]) == (2, 2)


def test_hit_features_on_a_hand_worked_ranking():
    d = np.array([[0.1, 0.2, 0.4], [0.3, 0.5, 0.6]])
    labels = np.array([[1, 1, 2], [7, 7, 7]])
    f = hit_features(d, labels, trunk_distances=np.array([[0.5, 0.6, 0.7], [0.1, 0.2, 0.3]]))
    np.testing.assert_allclose(f[0, :, 0], [0.1, 0.2, 0.4])           # distance
    np.testing.assert_allclose(f[0, :, 1], [0.3, 0.2, -0.3])          # to the nearest hit of another landmark
    np.testing.assert_allclose(f[0, :, 2], [2 / 3, 2 / 3, 1 / 3])     # share of the top 3 with its landmark
    np.testing.assert_allclose(f[1, :, 1], [0.3, 0.1, 0.0])           # all agree: margin to the last hit
    np.testing.assert_allclose(f[1, :, 3], [0.1, 0.2, 0.3])
    # a hit beyond the window is judged against the window: here the top 2
    g = hit_features(d[:1], labels[:1], window=2)
    np.testing.assert_allclose(g[0, :, 1], [0.1, 0.0, -0.3])  # all of the window agree: to its last hit, 0.2
    np.testing.assert_allclose(g[0, :, 2], [1.0, 1.0, 0.0])


def test_the_match_threshold_on_a_hand_worked_case():
    # 20 absent-landmark queries, 5% may be called a match: one. The second highest is 0.8, so a match needs more.
    p = np.array([0.95, 0.8] + [0.3] * 18)
    t = match_threshold(p, max_false=0.05, floor=0.5)
    assert 0.8 < t <= 0.95 and (p >= t).sum() == 1
    assert match_threshold(np.array([0.2, 0.1]), max_false=0.05, floor=0.5) == 0.5  # never below more-likely-than-not


def test_reliability_bins_on_a_hand_worked_case():
    points = reliability(np.array([0.05, 0.15, 0.95, 0.91]), np.array([False, True, True, True]), bins=10)
    assert points == [{"p": 0.05, "observed": 0.0, "n": 1}, {"p": 0.15, "observed": 1.0, "n": 1},
                      {"p": 0.93, "observed": 1.0, "n": 2}]


def test_class_folds_are_disjoint_cover_every_class_and_are_seeded():
    folds = class_folds(21, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(21)) and [len(f) for f in folds] == [7, 7, 7]
    assert all(np.array_equal(a, b) for a, b in zip(folds, class_folds(21, 3, seed=0)))
    assert not all(np.array_equal(a, b) for a, b in zip(folds, class_folds(21, 3, seed=1)))
    with pytest.raises(ValueError):
        class_folds(3, 4)


def test_a_fitted_confidence_is_monotone_and_survives_its_file():
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(0.4, 0.1, 300), rng.normal(1.0, 0.1, 300)])
    y = np.arange(600) < 300
    x = np.stack([d, rng.normal(0, 1, 600), rng.random(600)], axis=1)
    conf = fit_confidence(x, y, ("distance", "margin", "agreement"), 10, "fp")
    probe = np.array([[0.3, 0, 0.5], [0.7, 0, 0.5], [1.1, 0, 0.5]])
    p = conf(probe)
    assert p[0] > 0.9 > p[1] > p[2] and p[2] < 0.1
    again = Confidence.from_dict(json.loads(json.dumps(conf.to_dict())))
    np.testing.assert_allclose(again(probe), p)
    bad = {**conf.to_dict(), "coef": [1.0]}
    with pytest.raises(ValueError):
        Confidence.from_dict(bad)


def test_an_isotonic_curve_recalibrates_a_score_that_says_more_than_it_knows():
    rng = np.random.default_rng(3)
    said = rng.random(20000)
    right = rng.random(20000) < said ** 3  # says 80% where 51% are right
    assert calibration_error(said, right) > 0.15
    curve = fit_curve(said[:10000], right[:10000])
    assert calibration_error(curve(said[10000:]), right[10000:]) < 0.02
    np.testing.assert_allclose(curve(np.array([0.5, 0.8])), [0.125, 0.512], atol=0.06)
    # twenty right answers and twenty wrong ones, perfectly separated: 98% and 2%, never a certainty it did not see
    sure = fit_curve(np.r_[np.zeros(20), np.ones(20)], np.r_[np.zeros(20), np.ones(20)])
    np.testing.assert_allclose(sure(np.array([0.0, 1.0])), [0.5 / 21, 20.5 / 21])


def _synthetic_run(rng: np.random.Generator, queries: int = 600, k: int = 10) -> FoldRun:
    """Ranked hits whose one feature, the distance, means one thing for the top hit and another below it: a
    logistic fitted on every hit is then overconfident for the top hit, as on the development photos."""
    d = np.sort(rng.random((queries, k)), axis=1)
    p_true = np.where(np.arange(k) == 0, (1 - d) ** 3, 0.3 * (1 - d))
    same = rng.random((queries, k)) < p_true
    feats = np.stack([d, rng.normal(0, 1, (queries, k)), rng.random((queries, k))], axis=2)
    return FoldRun(np.array([0]), feats, same, np.zeros(queries, bool), np.zeros(queries))


def test_the_recalibrated_confidence_means_what_it_says_on_queries_it_was_not_fitted_on():
    rng = np.random.default_rng(5)
    runs = [_synthetic_run(rng) for _ in range(4)]
    names = ("distance", "margin", "agreement")
    fresh = _synthetic_run(rng, queries=5000)
    conf = recalibrated_confidence(runs, names, 10)
    raw = fit_confidence(np.concatenate([r.feats.reshape(-1, 3) for r in runs]),
                         np.concatenate([r.same.ravel() for r in runs]), names, 10)
    top_right, lower_right = fresh.same[:, 0], fresh.same[:, 1:]
    assert calibration_error(raw(fresh.feats[:, 0, :]), top_right) > 0.08  # the logistic alone
    assert calibration_error(conf.ranked(fresh.feats)[:, 0], top_right) < 0.03
    assert calibration_error(conf.ranked(fresh.feats)[:, 1:].ravel(), lower_right.ravel()) < 0.03
    again = Confidence.from_dict(json.loads(json.dumps(conf.to_dict())))
    np.testing.assert_allclose(again.ranked(fresh.feats), conf.ranked(fresh.feats))


# -- the leave-classes-out evaluation on generated data ---------------------------------------------------------

def test_the_folds_never_train_on_the_landmarks_they_leave_out(built, trained):
    report = json.loads((built / "scratch" / "eval.json").read_text())
    held = [set(h) for h in report["held_out"]]
    assert len(held) == 3 and set().union(*held) == set(CLASSES)
    for kind in ("scratch", "transfer"):
        ckpts = sorted((trained / "open-set").glob(f"{kind}-*.pt"))
        trained_on = [set(torch.load(c, weights_only=True)["classes"]) for c in ckpts]
        assert len(ckpts) == 3
        assert sorted(map(sorted, trained_on)) == sorted(sorted(set(CLASSES) - h) for h in held)
    for name in ("scratch", "pretrained", "transfer"):
        r = json.loads((built / name / "eval.json").read_text())
        assert r["open_set"]["queries_absent"] == 9 and r["open_set"]["queries_present"] == 18
        assert r["open_set_before"]["queries_absent"] == 9
        assert (name == "pretrained") != ("unseen" in r)
        # the scores behind the reliability diagram, one per scored query, rebinnable to the same figure
        oof = r["out_of_fold"]
        assert len(oof["p"]) == len(oof["right"]) == 27
        assert r["calibration_error"] == calibration_error(np.array(oof["p"]), np.array(oof["right"]))
        assert r["reliability"] == reliability(np.array(oof["p"]), np.array(oof["right"]))
    manifest = json.loads((built / "transfer" / "manifest.json").read_text())
    assert manifest["confidence"]["trunk_file"]  # transfer reads its trunk's distances


def test_every_confidence_reads_the_distance_to_the_hit_s_landmark(built):
    from search.index import load_index

    for name in ("scratch", "pretrained", "transfer"):
        index = load_index(built / name)
        assert "landmark_distance" in index.confidence.features, name
        assert set(index.landmarks.classes.tolist()) == {it["class_id"] for it in index.items}
        # a transfer head's Gaussians read its trunk's vectors too, as its folds' did
        assert index.landmarks.reads_trunk == (name == "transfer")
        trunk_dim = index.trunk_vectors.shape[1] if name == "transfer" else 0
        assert index.landmarks.center.shape == (index.embeddings.shape[1] + trunk_dim,)


@pytest.mark.parametrize("part", ["trunk_file", "landmarks_file"])
def test_a_corrupt_confidence_file_is_refused_with_the_fix(built, trained, tmp_path, part):
    import shutil

    from search.errors import BadIndexError
    from search.index import load_index

    root = tmp_path / "idx"
    shutil.copytree(built, root)
    manifest = json.loads((root / "transfer" / "manifest.json").read_text())
    (root / "transfer" / manifest["confidence"][part]).write_bytes(b"broken")
    with pytest.raises(BadIndexError, match="corrupt.*evaluate.py --encoder transfer"):
        load_index(root / "transfer")


def _search_json(app_client, path: Path, encoder: str) -> dict:
    from gradio_client import handle_file

    return json.loads(app_client.predict(handle_file(str(path)), encoder, 5, api_name="/search_json"))


@pytest.fixture(scope="module")
def absent_photos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("absent")
    paths = []
    for i in range(3):
        paths.append(folder / f"absent-{i}.jpg")
        absent_landmark(np.random.default_rng(300 + i)).save(paths[-1], quality=92)
    return paths


@pytest.mark.parametrize("encoder", ["scratch", "pretrained", "transfer"])
def test_a_landmark_the_gallery_lacks_is_not_a_confident_match(client, absent_photos, encoder):
    for photo in absent_photos:
        out = _search_json(client, photo, encoder)
        assert out["confident"] is False, (encoder, photo.name, out["hits"][0])


@pytest.mark.parametrize("encoder", ["pretrained", "transfer"])
def test_a_perturbed_copy_of_a_gallery_photo_stays_a_confident_match(client, dataset, tmp_path, encoder):
    from tests.ui.test_explore import _perturbed_copy

    path = "train/01.Blue_Circles/01_train_2.jpg"
    out = _search_json(client, _perturbed_copy(dataset / path, tmp_path / "copy.jpg"), encoder)
    assert out["hits"][0]["path"] == path and out["confident"] is True


def test_an_encoder_whose_confidence_cannot_tell_says_so_next_to_its_verdict(client, built, trained, dataset,
                                                                             tmp_path):
    """An encoder whose open-set AUROC is under the bar cannot tell absent landmarks from present ones; the page says
    so instead of offering its percentages as if they were reliable (and says nothing of the kind for the others)."""
    from gradio_client import handle_file

    from tests.ui.test_explore import _perturbed_copy

    copy = _perturbed_copy(dataset / "train/01.Blue_Circles/01_train_2.jpg", tmp_path / "copy.jpg")
    for encoder in ("scratch", "pretrained", "transfer"):
        auroc_ = json.loads((built / encoder / "eval.json").read_text())["open_set"]["auroc"]
        _, _, verdict = client.predict(handle_file(str(copy)), encoder, 5, api_name="/search")
        warned = "cannot tell when a landmark is missing from the gallery" in verdict
        assert warned == (auroc_ < config.RELIABLE_AUROC), (encoder, auroc_, verdict)
        if warned:
            assert f"AUROC {auroc_:.2f}" in verdict
    # The warning itself, whatever the fixture's models learned: the same index with an open-set AUROC under the bar.
    import shutil

    from search.photos.images import open_image
    from search.serving.engine import SearchEngine
    from ui.search_tab import search
    from ui.view import GalleryView

    root = tmp_path / "idx"
    shutil.copytree(built, root)
    report = json.loads((root / "scratch" / "eval.json").read_text())
    report["open_set"]["auroc"] = 0.6
    (root / "scratch" / "eval.json").write_text(json.dumps(report))
    _, _, verdict, _, _ = search(GalleryView(SearchEngine(root, trained), tmp_path / "work"), open_image(copy),
                                 "scratch", 5)
    assert "cannot tell when a landmark is missing from the gallery" in verdict and "AUROC 0.60" in verdict


def test_the_verdict_says_the_landmark_is_not_in_the_gallery(client, absent_photos):
    from gradio_client import handle_file

    _, _, verdict = client.predict(handle_file(str(absent_photos[0])), "transfer", 5, api_name="/search")
    assert "does not seem to be in the gallery" in verdict




def test_an_index_evaluated_before_the_landmark_distance_keeps_its_confidence(built, trained, dataset, tmp_path):
    """A confidence fitted before the landmark distance existed reads three or four features and no Gaussians: it
    still loads and gives every hit a P."""
    import dataclasses
    import shutil

    from search.index import attach_confidence, load_index
    from search.photos.images import open_image
    from search.serving.engine import SearchEngine

    root = tmp_path / "idx"
    shutil.copytree(built, root)
    for name in ("pretrained", "transfer"):
        index = load_index(root / name)
        conf = index.confidence
        keep = [i for i, f in enumerate(conf.features) if f != "landmark_distance"]
        older = dataclasses.replace(conf, features=tuple(conf.features[i] for i in keep),
                                    **{key: tuple(getattr(conf, key)[i] for i in keep)
                                       for key in ("mean", "scale", "coef")})
        attach_confidence(index, older, index.trunk_vectors if name == "transfer" else None)
        manifest = json.loads((root / name / "manifest.json").read_text())
        assert "landmarks_file" not in manifest["confidence"]
        photo = open_image(sorted((dataset / "test" / CLASSES[0]).iterdir())[0])
        hits = SearchEngine(root, trained, names=(name,)).search(name, photo, 5)
        assert len(hits) == 5 and all(h.p_same is not None for h in hits)


def test_gaussians_that_lack_a_landmark_of_the_gallery_are_refused(built, tmp_path):
    """Landmark Gaussians fitted on another gallery (one landmark short) would leave a hit without its landmark: the
    index is refused with the fix rather than searched."""
    import shutil

    from search.errors import BadIndexError
    from search.index import attach_confidence, load_index
    from search.retrieval.landmark_gaussians import fit_landmark_gaussians

    root = tmp_path / "idx"
    shutil.copytree(built, root)
    index = load_index(root / "pretrained")
    labels = np.array([it["class_id"] for it in index.items])
    some = labels != labels.max()
    attach_confidence(index, index.confidence, None, fit_landmark_gaussians(index.embeddings[some], labels[some], 8))
    with pytest.raises(BadIndexError, match="lacks the Gaussians of its landmarks.*evaluate.py --encoder pretrained"):
        load_index(root / "pretrained")
