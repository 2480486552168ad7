"""Any folder of photos: the train/test layout, class sub-folders without splits, or a flat folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from search.errors import DatasetError
from search.evaluation.closed_set import evaluate
from search.indexing.runner import build_index
from search.models.encoders import EncoderStore
from search.models.trunks import OFFLINE_TRUNK
from search.photos.folders import detect_layout
from search.pipeline.prepare import gallery_index_dir, prepare_gallery
from search.serving.engine import SearchEngine
from tests.conftest import IN_PROCESS, ROOT, free_port, run_cli, synthetic_image


@pytest.fixture()
def flat(tmp_path):
    """Nine photos in one folder, no classes, and a hidden file that is not a photo."""
    d = tmp_path / "trip"
    d.mkdir()
    rng = np.random.default_rng(4)
    for i in range(9):
        synthetic_image(i % 3, rng).save(d / f"IMG_{i:04d}.jpg")
    (d / ".DS_Store").write_bytes(b"\0\1")
    (d / "notes.txt").write_text("not a photo")
    return d


def test_layouts_are_recognised(flat, dataset, tmp_path):
    assert detect_layout(dataset) == "splits" and detect_layout(flat) == "flat"
    grouped = tmp_path / "grouped"
    shutil.copytree(dataset / "train", grouped)
    assert detect_layout(grouped) == "classes"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="No photos in"):
        detect_layout(tmp_path / "empty")


def test_flat_folder_indexes_as_one_class_without_metrics(flat, trained, tmp_path):
    enc = EncoderStore(trained).load("pretrained", trunk=OFFLINE_TRUNK)
    index = build_index(enc, flat, "train", tmp_path / "idx", IN_PROCESS)  # --split is ignored without splits
    assert index.manifest["count"] == 9 and index.manifest["split"] == "gallery"
    assert index.manifest["classes"] == ["trip"] and {it["class_id"] for it in index.items} == {0}
    assert sorted(it["path"] for it in index.items) == [f"IMG_{i:04d}.jpg" for i in range(9)]
    with pytest.raises(DatasetError, match="no train/ and test/ split"):
        evaluate(enc, index, flat, workers=0)
    # The search finds the photo itself first.
    engine = SearchEngine(tmp_path / "idx", trained, names=("pretrained",))
    hits = engine.search("pretrained", Image.open(flat / "IMG_0004.jpg").convert("RGB"), 3)
    assert hits[0].path == "IMG_0004.jpg" and hits[0].p_same is None


def test_class_folders_without_splits_keep_their_classes(dataset, trained, tmp_path):
    grouped = tmp_path / "grouped"
    shutil.copytree(dataset / "train", grouped)
    enc = EncoderStore(trained).load("scratch")
    index = build_index(enc, grouped, "test", tmp_path / "idx", IN_PROCESS)
    assert index.manifest["count"] == 24 and index.manifest["split"] == "gallery"
    assert index.manifest["classes"] == ["Red Stripes", "Blue Circles", "Green Checks"]
    assert index.items[0]["path"].startswith("00.Red_Stripes/")


def test_build_index_cli_takes_a_flat_folder(flat, trained, tmp_path):
    r = run_cli("scripts/build_index.py", "--encoder", "pretrained", "--data-dir", flat, "--out-dir",
                   tmp_path / "idx", "--checkpoint-dir", trained, "--trunk", OFFLINE_TRUNK)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["count"] == 9


def test_gallery_is_indexed_with_every_available_encoder_and_reused_when_current(flat, trained, tmp_path):
    root = gallery_index_dir(flat, tmp_path / "indexes")
    assert root.parent.name == "galleries" and root.name.startswith("trip-")
    logs: list[str] = []
    first = prepare_gallery(flat, root, trained, trunk=OFFLINE_TRUNK, log=logs.append)
    assert [r.gallery for r in first] == [9, 9, 9] and all("index built" in r.notes for r in first)
    logs.clear()
    again = prepare_gallery(flat, root, trained, trunk=OFFLINE_TRUNK, log=logs.append)
    assert [r.gallery for r in again] == [9, 9, 9] and sum("index is current" in line for line in logs) == 3
    # Without the trained checkpoints only the pretrained trunk can index it: the others say why.
    partial = prepare_gallery(flat, tmp_path / "other", tmp_path / "no-checkpoints", trunk=OFFLINE_TRUNK,
                              log=lambda s: None)
    assert [r.gallery for r in partial] == [None, 9, None] and "scratch.pt" in partial[0].notes[0]


@pytest.mark.slow
def test_app_gallery_is_one_command_from_a_folder_to_a_running_search(flat, trained, tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--gallery", str(flat), "--index-dir", str(tmp_path / "idx"),
                             "--checkpoint-dir", str(trained), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**__import__("os").environ, "LANDMARK_TRUNK": OFFLINE_TRUNK,
                                 "LANDMARK_WORK_DIR": str(tmp_path / "work")})
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("the app did not start")
        from gradio_client import Client, handle_file

        gallery, _, _ = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            handle_file(str(flat / "IMG_0007.jpg")), "transfer", 3, api_name="/search")
        assert len(gallery) == 3 and gallery[0]["caption"] == "#1 · trip · d=0.000"  # the photo itself, uncalibrated
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "index built" in out and (tmp_path / "idx" / "transfer" / "manifest.json").is_file()
