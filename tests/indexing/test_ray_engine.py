"""Index builds on Ray Data (Ray started locally): the same index as the local engine, worker failures retried,
an interrupted build leaving the previous index serving."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from search.config import BuildConfig
from search.index import load_index
from search.indexing.runner import build_index
from search.models.encoders import EncoderStore
from search.models.trunks import OFFLINE_TRUNK
from search.serving.engine import SearchEngine
from tests.conftest import IN_PROCESS, ROOT, run_cli, synthetic_image

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

TIMINGS = {"created", "build_seconds", "build", "checksum", "files"}  # files: sha256 of float bits (see below)


@pytest.fixture(scope="module")
def ray_cluster():
    from search.indexing import ray_engine

    ray_engine.start()
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.mark.parametrize("name", ["scratch", "transfer"])
def test_ray_and_local_engines_build_the_same_index(ray_cluster, trained, dataset, tmp_path, name):
    enc = EncoderStore(trained).load(name, trunk=None if name == "scratch" else OFFLINE_TRUNK)
    local = build_index(enc, dataset, "all", tmp_path / "local", IN_PROCESS)
    on_ray = build_index(enc, dataset, "all", tmp_path / "ray", BuildConfig(engine="ray", workers=2))
    assert on_ray.items == local.items  # same photos, same order, same thumbnails
    np.testing.assert_allclose(on_ray.embeddings, local.embeddings, atol=1e-5)  # batches differ, so not bit-equal
    drop = lambda m: {k: v for k, v in m.items() if k not in TIMINGS}  # noqa: E731
    assert drop(on_ray.manifest) == drop(local.manifest)
    assert on_ray.manifest["build"]["engine"] == "ray" and local.manifest["build"]["engine"] == "local"
    assert set(on_ray.manifest["build"]["stage_seconds"]) == {"read", "encode", "thumbnails", "map"}
    thumbs = sorted(p.name for p in (tmp_path / "ray" / "thumbnails").glob("*.jpg"))
    assert thumbs == sorted(p.name for p in (tmp_path / "local" / "thumbnails").glob("*.jpg")) and len(thumbs) == 33
    assert not list((tmp_path / "ray").glob(".*shards*"))


def test_a_worker_that_dies_mid_build_is_retried(ray_cluster, trained, dataset, tmp_path, monkeypatch):
    from search.indexing import ray_engine

    marker = str(tmp_path / "worker-died")

    class DiesOnce(ray_engine.EncodeBatch):  # the first batch any worker gets kills that worker, once
        def __call__(self, batch):
            if not os.path.exists(marker):
                Path(marker).write_text(str(os.getpid()))
                os._exit(1)
            return super().__call__(batch)

    monkeypatch.setattr(ray_engine, "EncodeBatch", DiesOnce)
    enc = EncoderStore(trained).load("pretrained", trunk=OFFLINE_TRUNK)
    on_ray = build_index(enc, dataset, "all", tmp_path / "ray", BuildConfig(engine="ray", workers=1))
    assert os.path.isfile(marker)  # a worker did die (os._exit in its first batch)
    local = build_index(enc, dataset, "all", tmp_path / "local", IN_PROCESS)
    assert on_ray.items == local.items and on_ray.manifest["count"] == 33
    np.testing.assert_allclose(on_ray.embeddings, local.embeddings, atol=1e-5)


def test_a_ray_build_killed_as_a_whole_leaves_the_previous_index_serving(ray_cluster, built, trained, dataset,
                                                                        tmp_path):
    root = tmp_path / "idx"
    shutil.copytree(built, root)
    enc = EncoderStore(trained).load("transfer", trunk=OFFLINE_TRUNK)
    before = load_index(root / "transfer", enc)
    query = synthetic_image(1, np.random.default_rng(8))
    answer = [h.path for h in SearchEngine(root, trained, names=("transfer",)).search("transfer", query, 5)]
    proc = subprocess.Popen([sys.executable, "scripts/build_index.py", "--encoder", "transfer", "--engine", "ray",
                             "--ray-address", ray_cluster, "--data-dir", str(dataset), "--split", "train",
                             "--out-dir", str(root), "--checkpoint-dir", str(trained), "--trunk", OFFLINE_TRUNK],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not list(root.glob(".transfer.shards-*")):
        time.sleep(0.05)
    assert proc.poll() is None, "the build ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    after = load_index(root / "transfer", enc)
    assert after.manifest == before.manifest
    again = [h.path for h in SearchEngine(root, trained, names=("transfer",)).search("transfer", query, 5)]
    assert again == answer
    # The same command again, in this process (the killed one was the real process), completes on Ray.
    r = run_cli("scripts/build_index.py", "--encoder", "transfer", "--engine", "ray", "--ray-address", ray_cluster,
                "--data-dir", dataset, "--split", "train", "--out-dir", root, "--checkpoint-dir", trained,
                "--trunk", OFFLINE_TRUNK)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["count"] == 24
    assert load_index(root / "transfer", enc).manifest["build"]["engine"] == "ray"
    assert not list(root.glob(".transfer.*"))
