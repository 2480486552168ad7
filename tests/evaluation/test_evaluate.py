"""Evaluation searches test photos against train photos only, whatever the index holds."""

from __future__ import annotations

import json

import numpy as np

from search.evaluation.closed_set import evaluate
from search.index import load_index
from search.indexing.runner import build_index
from search.models.encoders import EncoderStore
from search.models.trunks import OFFLINE_TRUNK
from tests.conftest import IN_PROCESS


def test_split_all_index_evaluates_against_train_photos_only(built, trained, dataset, tmp_path):
    enc = EncoderStore(trained).load("scratch", trunk=OFFLINE_TRUNK)
    everything = load_index(built / "scratch", enc)
    assert {it["split"] for it in everything.items} == {"train", "test"}
    n_train = sum(it["split"] == "train" for it in everything.items)
    on_all = evaluate(enc, everything, dataset, workers=0).report
    train_only = build_index(enc, dataset, "train", tmp_path / "idx", IN_PROCESS)
    on_train = evaluate(enc, train_only, dataset, workers=0).report
    assert on_all["gallery"] == on_train["gallery"] == n_train == 24
    keys = ["precision@1", "precision@5", "precision@10", "mAP@10", "queries"]
    assert {k: on_all[k] for k in keys} == {k: on_train[k] for k in keys}
    # Had the test photos stayed in the gallery, every query would find itself at distance 0.
    assert json.loads(json.dumps(on_all["calibration"]))["pairs"] == 9 * 24


def test_test_photos_with_a_near_identical_gallery_photo_are_listed_and_the_figures_given_without_them():
    from search.evaluation.closed_set import share_near_identical
    from search.retrieval.metrics import near_identical

    gallery = np.eye(4, dtype=np.float32)
    copy = gallery[0]                                                  # a copy of gallery photo 0: cosine 1
    burst = np.array([0.95, np.sqrt(1 - 0.95 ** 2), 0, 0], np.float32)  # a burst shot of it: cosine 0.95
    apart = np.array([0.6, 0.8, 0, 0], np.float32)                      # cosine 0.8 at most: kept
    assert near_identical(np.stack([copy, burst, apart]), gallery, 0.9).tolist() == [True, True, False]
    per_query = {"query": ["t/a.jpg", "t/b.jpg", "t/c.jpg"], "landmark": ["A", "A", "B"],
                 "precision@1": [1.0, 1.0, 0.0], "mAP@10": [1.0, 0.5, 0.25]}
    frozen = {"per_query": per_query, "near_identical": {"queries": ["t/a.jpg", "t/b.jpg"]}}
    trained = {"per_query": {**per_query, "precision@1": [1.0, 1.0, 1.0]}}
    share_near_identical({"pretrained": frozen, "transfer": trained})  # the trained one gets the frozen one's list
    assert trained["near_identical"] == {"cosine": 0.9, "by": "pretrained", "queries": ["t/a.jpg", "t/b.jpg"],
                                         "without": {"precision@1": 1.0, "mAP@10": 0.25, "queries": 1}}
