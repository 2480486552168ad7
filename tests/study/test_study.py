"""The Study: k-NN agreement between encoders, map faithfulness, per-landmark figures, the saved study."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from sklearn.manifold import trustworthiness

from search.errors import BadIndexError
from search.pipeline.prepare import loadable_indexes
from search.retrieval.metrics import confusions, per_class
from search.study import store as study_store
from search.study.compute import study

K = 10


def _reference_knn(x: np.ndarray, k: int = K) -> list[set[int]]:
    """Brute force: every pairwise distance, each row's k smallest (itself excluded)."""
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return [set(np.argsort(row, kind="stable")[:k].tolist()) for row in d]


def _grid_gallery(seed: int = 0):
    """Three encoders over 132 photos. 11 photos form one far cluster that encoders a and b place identically (they
    agree exactly there); the other 121 are an 11 x 11 grid that a clusters by row and b by column, so a photo's 10
    neighbours under a (its row) and under b (its column) share no photo: they do not agree at all."""
    rng = np.random.default_rng(seed)
    dim, n_same, side = 16, 11, 11
    centres = rng.normal(size=(2 * side, dim)) * 10
    a, b = [], []
    same = rng.normal(size=(n_same, dim)) * 0.5 + 200.0
    a += list(same)
    b += list(same)
    for r in range(side):
        for c in range(side):
            a.append(centres[r] + rng.normal(size=dim) * 0.3)
            b.append(centres[side + c] + rng.normal(size=dim) * 0.3)
    a, b = np.array(a, np.float32), np.array(b, np.float32)
    c = rng.normal(size=a.shape).astype(np.float32)
    coords = {n: rng.normal(size=(len(a), 2)).astype(np.float32) for n in "abc"}
    coords["a"] = a[:, :2] + 0.1 * coords["a"]  # a map that keeps some of a's structure
    return {"a": a, "b": b, "c": c}, coords, n_same


def test_agreement_trustworthiness_and_knn_preservation_match_plain_references():
    vectors, coords, n_same = _grid_gallery()
    paths = {n: [f"p{i:03d}.jpg" for i in range(len(v))] for n, v in vectors.items()}
    labels = {n: np.arange(len(v)) % 4 for n, v in vectors.items()}
    got = study(vectors, coords, paths, labels)
    ref = {n: _reference_knn(v) for n, v in vectors.items()}
    for pair, agreement in got["agreement"].items():
        x, y = pair.split("|")
        expected = [len(p & q) / len(p | q) for p, q in zip(ref[x], ref[y])]
        assert agreement["per_photo"] == pytest.approx(expected, abs=1e-4)
        assert agreement["mean"] == pytest.approx(np.mean(expected), abs=1e-4)
    ab = np.array(got["agreement"]["a|b"]["per_photo"])
    assert (ab[:n_same] == 1).all() and (ab[n_same:] == 0).all()  # exactly where made to agree, and nowhere else
    for name in vectors:
        m = got["maps"][name]
        assert m["trustworthiness"] == pytest.approx(trustworthiness(vectors[name], coords[name], n_neighbors=K),
                                                     abs=1e-4)
        on_map = _reference_knn(coords[name])
        assert m["knn_preserved"] == pytest.approx(np.mean([len(p & q) / K for p, q in zip(ref[name], on_map)]),
                                                   abs=1e-4)
    assert got["maps"]["a"]["knn_preserved"] > got["maps"]["b"]["knn_preserved"]  # a's map keeps a's structure
    # kNN class accuracy against a plain majority vote of the reference neighbours
    for name in vectors:
        votes = [np.bincount(labels[name][sorted(nb)], minlength=4) for nb in ref[name]]
        clear = [i for i, v in enumerate(votes) if (v == v.max()).sum() == 1]  # no tie to break
        predicted = np.array([np.argmax(votes[i]) for i in clear])
        acc = got["separation"][name]["knn_accuracy"]
        unclear = len(vectors[name]) - len(clear)
        assert abs(acc * len(vectors[name]) - (predicted == labels[name][clear]).sum()) <= unclear


def test_agreement_lines_photos_up_by_path_when_indexes_order_them_differently():
    vectors, coords, _ = _grid_gallery()
    paths = {n: [f"p{i:03d}.jpg" for i in range(len(v))] for n, v in vectors.items()}
    order = np.random.default_rng(1).permutation(len(vectors["b"]))
    shuffled = {**vectors, "b": vectors["b"][order]}
    got = study(shuffled, {**coords, "b": coords["b"][order]}, {**paths, "b": [paths["b"][i] for i in order]})
    plain = study(vectors, coords, paths)
    assert got["photos"] == paths["a"]
    assert got["agreement"]["a|b"]["per_photo"] == plain["agreement"]["a|b"]["per_photo"]


def test_per_landmark_figures_and_confusions_count_what_happened():
    q = np.array([0, 0, 0, 1, 1, 2])
    ranked = np.array([[0, 1, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 1, 1], [1, 2, 2]])
    gallery = np.array([0, 0, 1, 1, 2, 2])  # two gallery photos per class
    by_class = per_class(q, ranked, gallery, k=3)
    assert by_class[0]["precision@1"] == pytest.approx(1 / 3, abs=1e-4) and by_class[1]["precision@1"] == 0.5
    assert by_class[2]["precision@1"] == 0.0 and by_class[0]["queries"] == 3
    # AP@3 of class 0's queries: hits at 1,3 -> (1 + 2/3)/2; hits at 2,3 -> (1/2 + 2/3)/2; hit at 3 -> (1/3)/2
    assert by_class[0]["mAP@3"] == pytest.approx(np.mean([(1 + 2 / 3) / 2, (1 / 2 + 2 / 3) / 2, (1 / 3) / 2]), abs=1e-4)
    assert confusions(q, ranked[:, 0], n=5) == [{"true": 0, "retrieved": 1, "count": 2, "example": 1},
                                                {"true": 1, "retrieved": 0, "count": 1, "example": 4},
                                                {"true": 2, "retrieved": 1, "count": 1, "example": 5}]


def test_saved_study_is_refused_when_corrupt_and_recomputed_when_an_index_changes(built, trained, tmp_path):
    from search.indexing.writer import IndexArrays, write_index
    from search.models.encoders import EncoderStore

    root = tmp_path / "idx"
    shutil.copytree(built, root)
    shutil.rmtree(root / study_store.FOLDER, ignore_errors=True)
    indexes = loadable_indexes(root)
    first = study_store.ensure(root, indexes, log=lambda s: None)
    assert set(first["agreement"]) == {"scratch|pretrained", "scratch|transfer", "pretrained|transfer"}
    assert len(first["agreement"]["scratch|pretrained"]["per_photo"]) == len(indexes["scratch"].items)
    assert first["classes"]["transfer"] and first["confusions"].keys() == {"scratch", "pretrained", "transfer"}
    assert study_store.load(root, indexes) == first  # saved, and current
    data = study_store.study_dir(root) / study_store.DATA
    body = json.loads(data.read_text())
    body["agreement"]["scratch|pretrained"]["mean"] = 0.99  # tampered with
    data.write_text(json.dumps(body))
    with pytest.raises(BadIndexError, match="corrupt"):
        study_store.load(root, indexes)
    again = study_store.ensure(root, indexes, log=lambda s: None)  # refused, then recomputed
    assert again["agreement"]["scratch|pretrained"]["mean"] == first["agreement"]["scratch|pretrained"]["mean"]
    # One index rebuilt with other vectors: the saved study is stale, and the next one differs where it must.
    index = indexes["pretrained"]
    enc = EncoderStore(trained).load("pretrained", trunk=index.manifest["trunk"])
    rng = np.random.default_rng(5)
    other = rng.normal(size=index.embeddings.shape).astype(np.float32)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    meta = {k: index.manifest[k] for k in ("split", "dataset_root", "skipped", "dataset_fingerprint", "classes",
                                           "class_folders") if k in index.manifest}
    write_index(root, enc, IndexArrays(other, index.coords), index.items, meta)
    changed = loadable_indexes(root)
    assert study_store.load(root, changed) is None
    recomputed = study_store.ensure(root, changed, log=lambda s: None)
    assert recomputed["agreement"]["scratch|pretrained"] != first["agreement"]["scratch|pretrained"]
    assert recomputed["agreement"]["scratch|transfer"] == first["agreement"]["scratch|transfer"]
    assert study_store.load(root, changed) == recomputed


def test_a_private_gallery_gets_its_own_study_without_the_landmark_sections(built, trained, tmp_path):
    from search.serving.engine import SearchEngine
    from tests.conftest import synthetic_image
    from ui.site import MINE, Site
    from ui.study_tab import content

    site = Site(SearchEngine(built, trained), tmp_path / "work")
    photos = []
    for i in range(14):
        photos.append(tmp_path / f"p{i}.jpg")
        synthetic_image(i % 3, np.random.default_rng(70 + i)).save(photos[-1])
    gallery = site.galleries.build("visitor", photos)
    view = site.view(MINE, gallery.token)
    assert (gallery.folder / "index" / study_store.FOLDER / study_store.DATA).is_file()  # computed after the build
    shown = content(view)
    assert shown["body"] and not shown["classes"]  # no labels: no per-landmark section
    assert len(view.study["agreement"]["scratch|pretrained"]["per_photo"]) == 14
    assert {r[0] for r in shown["faith"]} == {"scratch", "pretrained", "transfer"}
    least = shown["least"]
    assert least and all(url.startswith("/private/") or "/private/" in url for url, _ in least)
    site.forget(gallery.token)


def test_the_suggested_groups_are_the_landmarks_whose_neighbourhoods_change_most():
    from search.study.compute import changed_groups

    photos = [f"p{i}" for i in range(10)]
    study = {"photos": photos, "agreement": {"a|b": {"per_photo": [0.9, 0.8, 0.9, 0.1, 0.2, 0.0, 0.5, 0.5, 0.5, 0.3]}}}
    group_of = {**{p: "steady" for p in photos[:3]}, **{p: "moved" for p in photos[3:6]},
                **{p: "middle" for p in photos[6:9]}, "p9": "alone"}
    groups = changed_groups(study, "b", "a", group_of)  # either order of the pair
    assert [g["group"] for g in groups] == ["moved", "middle", "steady"]  # "alone" is under 3 photos
    assert groups[0]["paths"] == ["p3", "p4", "p5"] and groups[0]["jaccard"] == 0.1
    assert changed_groups(study, "a", "c", group_of) == []
