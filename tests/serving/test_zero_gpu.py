"""On ZeroGPU no GPU exists outside a `spaces.GPU` call, and each call's arguments and result cross a process
boundary pickled: the app, run with a stand-in `spaces` package that pickles both as the real queue does and a guard
that fails any model layer running outside a call, serves every endpoint that runs a model to the default client."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from search.serving import gpu_calls
from tests.conftest import ROOT, free_port, synthetic_image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

GUARDED_APP = r"""
import sys
from pathlib import Path
import spaces
import torch
import layer_guard

layer_guard.install()  # every encoder's layers: none may run outside a GPU call
try:
    torch.nn.Linear(2, 2)(torch.zeros(1, 2))
except RuntimeError:
    print("guard active", flush=True)


class Logged(list):  # every GPU call in the log, with the seconds it asked for
    def append(self, call):
        print("gpu call", *call, flush=True)
        super().append(call)


spaces.calls = Logged()

import app
from search.serving.engine import SearchEngine

index_dir, checkpoint_dir, work, port = sys.argv[1:5]
demo = app.launch(SearchEngine(Path(index_dir), Path(checkpoint_dir)), "127.0.0.1", int(port), work_dir=Path(work),
                  prevent_thread_lock=True, quiet=True)
print("ready", flush=True)
demo.block_thread()
"""


@pytest.fixture(scope="module")
def zero_gpu_server(built, trained, tmp_path_factory):
    port = free_port()
    env = dict(os.environ, SPACES_ZERO_GPU="true",
               PYTHONPATH=os.pathsep.join([str(ROOT / "scripts" / "stand_ins" / "zero_gpu"), str(ROOT)]))
    log = tmp_path_factory.mktemp("zero-gpu") / "app.log"
    proc = subprocess.Popen([sys.executable, "-c", GUARDED_APP, str(built), str(trained),
                             str(tmp_path_factory.mktemp("work")), str(port)], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    yield url, log
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_every_model_call_runs_inside_spaces_gpu(zero_gpu_server, tmp_path):
    url, log = zero_gpu_server
    assert "guard active" in log.read_text(), log.read_text()[-3000:]
    photos = []
    for i in range(4):
        photos.append(tmp_path / f"p{i}.jpg")
        synthetic_image(i % 3, np.random.default_rng(80 + i)).save(photos[-1])
    client = Client(url, verbose=False)  # the default client: it downloads every image it is given
    gallery, _, _ = client.predict(handle_file(str(photos[0])), "transfer", 3, api_name="/search")
    assert len(gallery) == 3 and all(os.path.isfile(g["image"]) for g in gallery)
    out = client.predict(handle_file(str(photos[0])), 3, "", api_name="/compare")
    assert all(len(g) == 3 for g in out[:3])
    q, h = client.predict(handle_file(str(photos[0])), "scratch", "train/01.Blue_Circles/01_train_1.jpg",
                          api_name="/explain")
    assert q and h
    status = client.predict([handle_file(str(p)) for p in photos], api_name="/my_gallery")
    assert "4 photos" in status
    gallery, _, _ = client.predict(handle_file(str(photos[2])), "pretrained", 4, api_name="/search_mine")
    assert len(gallery) == 4 and all(os.path.isfile(g["image"]) for g in gallery)  # the owner's files, downloaded
    text = log.read_text()
    assert "outside a spaces.GPU call" not in text and "ZeroGPU worker error" not in text
    asked = re.findall(r"gpu call (\w+) (\d+)", text)
    seconds = {name: int(s) for name, s in asked}
    assert seconds == {"embed_image": gpu_calls.SEARCH_SECONDS, "similarity_maps": gpu_calls.EXPLAIN_SECONDS,
                       "embed_batch": gpu_calls.BATCH_SECONDS}
    # the build: one call per batch per input (the scratch CNN; the trunk shared by pretrained and transfer)
    assert [name for name, _ in asked].count("embed_batch") == 2
