"""The path a user online takes: VGG16 (random weights here, the real file format) end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from search.evaluation.closed_set import evaluate_all, save_evaluation
from search.indexing.encode_stage import Vectors
from search.indexing.runner import build_indexes
from search.models.encoders import EncoderStore
from search.models.training import train_transfer
from search.photos.feature_cache import feature_cache_for
from search.serving.engine import SearchEngine
from tests.conftest import CLASSES, FAST_TRAIN, IN_PROCESS, free_port, make_dataset, synthetic_image

pytestmark = pytest.mark.slow

N_TRAIN, N_TEST = 4, 2  # photos per landmark: VGG16 is the slowest trunk, and the flow is the same at any size


@pytest.fixture(scope="module")
def vgg_app(tmp_path_factory, vgg_weights, trained):  # the weights first: another worker may be training
    """Transfer head trained on VGG16 fc7, 4096-d pretrained and 256-d transfer indexes, evaluated, served. Built as
    prepare_demo.py builds them: the two VGG16 indexes in one pass that reads the trunk features the head's training
    kept, and evaluated with the test photos through the trunk once for both."""
    import app

    dataset = make_dataset(tmp_path_factory.mktemp("vgg-data"), n_train=N_TRAIN, n_test=N_TEST)
    ckpt = tmp_path_factory.mktemp("vgg-ckpt")
    shutil.copy(trained / "scratch.pt", ckpt / "scratch.pt")
    store = EncoderStore(ckpt, weights=vgg_weights)
    fit = train_transfer(dataset, ckpt / "transfer_head.pt", 4, store, FAST_TRAIN, trunk="vgg16", log=lambda s: None)
    root = tmp_path_factory.mktemp("vgg-indexes")
    encoders = {name: store.load(name, trunk=None if name == "scratch" else "vgg16")
                for name in ("scratch", "pretrained", "transfer")}
    indexes = build_indexes(list(encoders.values()), dataset, "train", root, IN_PROCESS,
                            vectors=Vectors(features=feature_cache_for(ckpt, store.trunk("vgg16"))))
    reports = {}
    for name, result in evaluate_all({n: (e, indexes[n]) for n, e in encoders.items()}, dataset, workers=0).items():
        save_evaluation(result, indexes[name])
        reports[name] = result.report
    port = free_port()
    demo = app.launch(SearchEngine(root, ckpt, vgg_weights), "127.0.0.1", port,
                      work_dir=tmp_path_factory.mktemp("vgg-work"), prevent_thread_lock=True, quiet=True)
    yield {"url": f"http://127.0.0.1:{port}/", "root": root, "ckpt": ckpt, "fit": fit, "reports": reports}
    demo.close()


def test_vgg16_transfer_head_and_indexes(vgg_app):
    ckpt = torch.load(vgg_app["ckpt"] / "transfer_head.pt", weights_only=True)
    assert ckpt["trunk"] == "vgg16" and ckpt["state_dict"]["hidden.1.weight"].shape == (256, 4096)
    assert len(vgg_app["fit"].history) == 4
    for name, dim in (("pretrained", 4096), ("transfer", 256)):
        manifest = json.loads((vgg_app["root"] / name / "manifest.json").read_text())
        assert manifest["trunk"] == "vgg16" and manifest["dim"] == dim and manifest["count"] == len(CLASSES) * N_TRAIN
        assert manifest["label"].endswith("VGG16") or "VGG16 +" in manifest["label"]
        emb = np.load(vgg_app["root"] / name / "embeddings.npy")
        assert emb.shape == (len(CLASSES) * N_TRAIN, dim) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
        report = vgg_app["reports"][name]
        assert report["queries"] == len(CLASSES) * N_TEST and report["gallery"] == len(CLASSES) * N_TRAIN
        assert "calibration" in report


def test_vgg16_indexes_serve_search_and_compare(vgg_app, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(vgg_app["url"], verbose=False)
    photo = tmp_path / "q.jpg"
    synthetic_image(2, np.random.default_rng(77)).save(photo)
    for name in ("pretrained", "transfer"):
        gallery, the_map, verdict = client.predict(handle_file(str(photo)), name, 5, api_name="/search")
        assert len(gallery) == 5 and the_map["traces"][1]["name"] == "your photo" and verdict
    out = client.predict(handle_file(str(photo)), 4, "", api_name="/compare")
    assert [len(g) for g in out[:3]] == [4, 4, 4]
    assert "pretrained ∩ transfer" in out[9]
    # The transfer head trained on fc7 of the same (random) trunk: a gallery photo's own vector finds itself.
    gallery, _, _ = client.predict("transfer", "train/02.Green_Checks/02_train_1.jpg", 3, api_name="/similar_to")
    assert gallery[0]["caption"].startswith("#1 · Green Checks")
