"""Evaluation searches test photos against train photos only, whatever the index holds."""

from __future__ import annotations

import json

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
