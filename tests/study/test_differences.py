"""The Study claims that one encoder does better only when a paired test over the same photos says the difference
is real: its findings, the retrieval comparisons, and the per-landmark ones corrected for testing many at once."""

from __future__ import annotations

import numpy as np

from search.study.compute import findings, landmark_differences, retrieval_differences


def _per_query(right: np.ndarray, landmarks: list[str]) -> dict:
    return {"query": [f"test/q{i}.jpg" for i in range(len(right))], "landmark": landmarks,
            "precision@1": right.astype(int).tolist(), "mAP@10": right.astype(float).tolist()}


def test_a_one_photo_lead_in_grouping_is_not_called_best_and_a_large_one_is():
    base = np.ones(300, int)
    close = base.copy()
    close[:2] = 0  # b misses two photos a gets: 100% vs 99%
    study = {"separation": {"a": {"knn_accuracy": 1.0, "silhouette": 0.2, "knn_correct": base.tolist()},
                            "b": {"knn_accuracy": 0.9933, "silhouette": 0.2, "knn_correct": close.tolist()}}}
    said = "\n".join(findings(study))
    assert "best" not in said and "a vs b: +0.7 pts" in said and "not a real difference" in said
    far = base.copy()
    far[:60] = 0
    study["separation"]["b"] = {"knn_accuracy": 0.8, "silhouette": 0.1, "knn_correct": far.tolist()}
    said = "\n".join(findings(study))
    assert "**a** groups the photos by landmark best" in said and "a vs b: +20.0 pts" in said


def test_retrieval_differences_pair_the_same_queries_and_say_whether_they_are_real():
    rng = np.random.default_rng(0)
    landmarks = [f"L{i % 6}" for i in range(318)]
    a = rng.random(318) < 0.97
    b = a.copy()
    b[:2] = ~b[:2]  # two queries apart: not a real difference on 318 photos
    c = a.copy()
    c[np.arange(0, 318, 6)] = False  # landmark L0's every query wrong under c
    per_query = {"a": _per_query(a, landmarks), "b": _per_query(b, landmarks), "c": _per_query(c, landmarks)}
    # b's queries in another order: pairs go by path, not by position
    order = rng.permutation(318)
    per_query["b"] = {k: [v[i] for i in order] for k, v in per_query["b"].items()}
    diffs = retrieval_differences(per_query)
    assert set(diffs) == {"a|b", "a|c", "b|c"}
    ab = diffs["a|b"]["precision@1"]
    assert ab["queries"] == 318 and not ab["real"] and ab["ci95"][0] <= 0 <= ab["ci95"][1]
    assert diffs["a|c"]["precision@1"]["real"]
    said = "\n".join(findings({"differences": diffs}))
    assert "a vs b P@1:" in said and "not a real difference on 318 photos" in said
    assert "a vs c P@1: +" in said and "a real difference (p < 0.001)" in said
    by_landmark = landmark_differences(per_query, "precision@1")["a|c"]
    assert by_landmark["L0"]["real"] and by_landmark["L0"]["p_adjusted"] >= by_landmark["L0"]["p"]
    assert not any(d["real"] for lm, d in by_landmark.items() if lm != "L0")


def test_the_per_landmark_bars_star_only_the_real_differences():
    from ui.study_figures import class_bars

    classes = {e: {lm: {"precision@1": v, "queries": 10} for lm, v in zip(("L0", "L1"), vals)}
               for e, vals in (("a", (1.0, 0.9)), ("c", (0.0, 0.8)))}
    tested = {"precision@1": {"a|c": {"L0": {"real": True}, "L1": {"real": False}}}}
    fig = class_bars({"classes": classes, "landmark_differences": tested})
    assert list(fig.data[0].x) == ["L0 *", "L1"]
    assert "Benjamini-Hochberg over each pair's 2 landmarks" in fig.layout.title.text
    tested["precision@1"]["a|c"]["L0"]["real"] = False
    fig = class_bars({"classes": classes, "landmark_differences": tested})
    assert list(fig.data[0].x) == ["L0", "L1"] and "within sampling noise" in fig.layout.title.text
