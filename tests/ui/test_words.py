"""The visitor's words follow the code and the configuration: counts and names from the encoders file, folds and
thresholds from config, the Study's findings from each encoder's role."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import pytest

from search import config
from search.study.compute import findings
from tests.conftest import IN_PROCESS

FOUR = """
[scratch]
role = "scratch"
[pretrained]
role = "frozen"
[transfer]
role = "transfer"
[lite2]
role = "frozen"
trunk = "efficientnet_lite2"
"""
STALE = ("three CNNs", "three encoders", "all three maps", "three folds")


@pytest.fixture()
def four(tmp_path, built, trained, dataset, restore_registry):
    """The session's three indexes and a fourth, a frozen EfficientNet-Lite2, under an encoders file of four."""
    from search.indexing.runner import build_index
    from search.models.encoders import EncoderStore, use_encoders
    from search.serving.engine import SearchEngine

    root = tmp_path / "indexes"
    shutil.copytree(built, root)
    (tmp_path / "encoders.toml").write_text(FOUR)
    use_encoders(tmp_path / "encoders.toml")
    build_index(EncoderStore(trained).load("lite2"), dataset, "all", root, IN_PROCESS)
    return SearchEngine(root, trained)


def page_text(engine, work_dir) -> str:
    """Everything the page's components say (Markdown, labels, tables), as one text, its line breaks as spaces (as
    Markdown reads them)."""
    from ui.root import build_demo

    demo = build_demo(engine, work_dir=work_dir)
    said = json.dumps([c.get("props", {}) for c in demo.config["components"]], ensure_ascii=False, default=str)
    return re.sub(r"(\\n| )+", " ", said)


@pytest.mark.slow
def test_the_page_names_and_counts_the_configured_encoders(four, tmp_path, monkeypatch):
    assert set(four.backends) == {"scratch", "pretrained", "transfer", "lite2"}, four.unavailable
    words = page_text(four, tmp_path / "work")
    assert words.count("the four encoders") >= 2  # the intro and Compare
    assert "The four encoders over the whole gallery" in words  # the Study's heading
    assert "| lite2 | lite2 - EfficientNet-Lite2 (offline) | frozen" in words  # How it works: a row per encoder
    assert "| 1280-d |" in words and "| 256-d |" in words  # dimensions as measured from the indexes
    assert "5 folds for pretrained, transfer and lite2, 3 folds for scratch" in words
    assert not [s for s in STALE if s in words], [s for s in STALE if s in words]
    assert "CNNs" not in words


def test_the_method_follows_the_configured_folds_and_thresholds(monkeypatch):
    """How it works' method text reads folds, thresholds and limits from config (no encoder needs to be loaded)."""
    from types import SimpleNamespace

    from search.models.encoders import REGISTRY
    from ui import text

    monkeypatch.setattr(config, "OPEN_SET", dataclasses.replace(config.OPEN_SET, folds=4, scratch_folds=2, k=8,
                                                                    landmark_dims=64))
    monkeypatch.setattr(config, "RELIABLE_AUROC", 0.8)
    monkeypatch.setattr(config, "MAX_FALSE_CONFIDENT", 0.1)
    monkeypatch.setattr(config, "CONFIDENT_P_SAME", 0.6)
    monkeypatch.setattr(config, "EXACT_SEARCH_LIMIT", 5000)
    words = re.sub(r"\s+", " ", text.how_it_works(REGISTRY, SimpleNamespace(backends={})))
    assert "4 folds for pretrained and transfer, 2 folds for scratch" in words
    assert "how many of the top 8 show its landmark" in words
    assert ("a Gaussian over up to 64 principal axes of the gallery (for transfer, of its vectors and its trunk's "
            "together)") in words
    assert "AUROC is under 0.80" in words
    assert "(at least 60%) above which no more than 10% of absent landmarks came" in words
    assert "exact for galleries of up to 5,000 photos, approximate past that" in words
    assert "three folds" not in words


def test_findings_follow_each_encoders_role_not_its_name():
    """A transfer encoder named "pretrained" is trained; a frozen one named "imagenet" is not."""
    study = {"separation": {"cnn": {"knn_accuracy": 0.9, "silhouette": 0.2},
                            "imagenet": {"knn_accuracy": 0.7, "silhouette": 0.1},
                            "pretrained": {"knn_accuracy": 0.8, "silhouette": 0.15}},
             "unseen": {"cnn": {"seen": 0.8, "unseen": 0.3, "trained": True},
                        "imagenet": {"seen": 0.7, "unseen": 0.7, "trained": False},
                        "pretrained": {"seen": 0.9, "unseen": 0.6, "trained": True}},
             "trained": {"cnn": True, "imagenet": False, "pretrained": True}}
    said = "\n".join(findings(study))
    assert "For cnn and pretrained these are their own training photos." in said
    assert "imagenet 70% (trained on no landmark)" in said
    assert "pretrained 60% (on the landmarks it trained on: 90%)" in said
    assert "scratch" not in said and "transfer" not in said


def test_a_query_expansion_recipe_is_named_as_such_in_the_intro_and_how_it_works():
    from types import SimpleNamespace

    from search.models.encoders import EncoderSpec
    from ui import text

    specs = {"pretrained": EncoderSpec("pretrained", "frozen"),
             "pretrained_qe": EncoderSpec("pretrained_qe", "frozen", expansion=(("kind", "aqe"), ("k", 3)))}
    said = text.intro(specs)
    assert "**pretrained_qe**, a pretrained model used as it is, searched with query expansion" in said
    assert "**pretrained**, a pretrained model used as it is;" in said
    method = re.sub(r"\s+", " ", text.how_it_works(specs, SimpleNamespace(backends={})))
    assert "| pretrained_qe |" in method and "α-QE + DBA (k=3, α=3) |" in method
    assert " pretrained_qe searches with *query expansion*" in method
