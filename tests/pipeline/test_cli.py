"""The command-line tools end to end on generated data: train, build, query, evaluate."""

import json

import pytest

from tests.conftest import CLASSES, ROOT, make_dataset, run_cli, run_script


@pytest.mark.slow
def test_train_build_query_evaluate(tmp_path):
    dataset = make_dataset(tmp_path / "data", n_train=4, n_test=2)  # 12 + 6 photos: every step, a little data
    n_train, n_test = len(CLASSES) * 4, len(CLASSES) * 2
    ck, idx = tmp_path / "ck", tmp_path / "idx"
    r = run_script("scripts/train.py", "--encoder", "scratch", "--data-dir", dataset, "--epochs", "2",
             "--checkpoint-dir", ck, "--workers", "0", "--batch-size", "8")
    assert r.returncode == 0, r.stderr
    final = json.loads(r.stdout.strip().splitlines()[-1])
    assert final["encoder"] == "scratch" and 0 <= final["val_acc"] <= 1 and (ck / "scratch.pt").is_file()
    assert "epoch   2/2" in r.stderr + r.stdout
    # In this process: build_index.py runs as typed, as a real process, in the killed-build tests.
    r = run_cli("scripts/build_index.py", "--encoder", "scratch", "--data-dir", dataset, "--split", "train",
                "--out-dir", idx, "--checkpoint-dir", ck, "--workers", "0")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["count"] == n_train
    query = next((dataset / "test").rglob("*.jpg"))
    r = run_script("scripts/query.py", "--index-dir", idx, "--encoder", "scratch", "--image", query, "--top-k", "5",
             "--checkpoint-dir", ck)
    assert r.returncode == 0, r.stderr
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert all({"path", "class", "distance"} <= h.keys() for h in hits)
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    r = run_script("scripts/evaluate.py", "--data-dir", dataset, "--index-dir", idx, "--encoder", "scratch",
             "--checkpoint-dir", ck, "--workers", "0")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["queries"] == n_test and {"precision@1", "precision@5", "precision@10", "mAP@10"} <= report.keys()
    assert json.loads((idx / "scratch" / "eval.json").read_text())["mAP@10"] == report["mAP@10"]
    assert report["open_set"]["queries_absent"] == n_test and "unseen" in report  # the open-set evaluation, by default
    # every figure with its 95% interval, in the line and in eval.json; the per-query values stay in the file
    for key in ("precision@1", "precision@5", "mAP@10"):
        lo, hi = report["ci95"][key]
        assert lo <= report[key] <= hi
    assert set(report["open_set"]["ci95"]) == {"auroc", "false_confident", "confident_when_right"}
    assert "per_query" not in report and "out_of_fold" not in report
    stored = json.loads((idx / "scratch" / "eval.json").read_text())
    assert stored["ci95"] == report["ci95"] and len(stored["per_query"]["precision@1"]) == n_test
    assert json.loads((idx / "scratch" / "manifest.json").read_text())["confidence"]["file"]


def test_cli_errors_are_one_line(tmp_path):
    r = run_cli("scripts/query.py", "--index-dir", tmp_path, "--encoder", "scratch", "--image", tmp_path / "x.jpg")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error:")
    bad = tmp_path / "note.jpg"
    bad.write_text("just text")
    r = run_cli("scripts/query.py", "--index-dir", tmp_path, "--encoder", "scratch", "--image", bad)
    assert r.returncode == 2 and "not an image" in r.stderr


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.py") if p.name != "__init__.py"))
def test_every_script_imports_and_shows_its_help(script):
    r = run_cli(f"scripts/{script}", "--help")
    assert r.returncode == 0 and "usage:" in r.stdout, r.stderr[-2000:]


@pytest.mark.slow
def test_study_cli_compares_the_built_indexes(built, tmp_path):
    import shutil

    root = tmp_path / "indexes"
    shutil.copytree(built, root)
    r = run_script("scripts/study.py", "--index-dir", root)  # as typed: the CLI's own process
    assert r.returncode == 0, r.stderr[-2000:]
    assert "study of scratch, pretrained, transfer" in r.stdout and "agreement scratch" in r.stdout
