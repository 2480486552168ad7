"""Shared fixtures: a generated landmark-like dataset, tiny trained encoders, built indexes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from scripts.benchmarks.ports import free_port
from search import config

ROOT = Path(__file__).resolve().parents[1]

# The suite runs in pytest-xdist workers (pytest.ini), one per core: each worker and the processes it starts run
# torch on one thread (two workers' threads waiting on each other's cores cost more than they gain; torch reads
# OMP_NUM_THREADS when first imported, after this file), and each worker's apps keep their uploads in a folder of
# their own, as tests look at what an app left there. This file imports no torch itself: pytest's main process loads
# it before it starts the workers.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["GRADIO_TEMP_DIR"] = str(Path(tempfile.gettempdir()) / "gradio" / f"tests-{WORKER}")


def run_script(*args) -> subprocess.CompletedProcess:
    """Run a repository script (or any args) with this Python, from the repository root."""
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=ROOT)


CLASSES = ["00.Red_Stripes", "01.Blue_Circles", "02.Green_Checks"]
FAST_TRAIN = dataclasses.replace(config.TrainConfig(), batch_size=8, decode_workers=0, lr=3e-3)
FAST_OPEN_SET = dataclasses.replace(config.OPEN_SET, scratch_epochs=3, transfer_epochs=5, workers=0)
IN_PROCESS = config.BuildConfig(workers=0)  # index builds decode in the test's own process


def synthetic_image(class_id: int, rng: np.random.Generator, size: tuple[int, int] = (128, 96)) -> Image.Image:
    """A visibly class-specific picture with random jitter: stripes, circles or a checkerboard."""
    w, h = size
    base = [(200, 40, 40), (40, 60, 200), (40, 170, 60)][class_id]
    jitter = rng.integers(-30, 30, 3)
    bg = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(base, jitter))
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    off = int(rng.integers(0, 12))
    if class_id == 0:
        for y in range(off, h, 12):
            d.rectangle([0, y, w, y + 5], fill=(255, 230, 200))
    elif class_id == 1:
        for _ in range(4):
            x, y, r = int(rng.integers(10, w - 10)), int(rng.integers(10, h - 10)), int(rng.integers(6, 16))
            d.ellipse([x - r, y - r, x + r, y + r], fill=(250, 250, 120))
    else:
        for y in range(0, h, 16):
            for x in range((y // 16 % 2) * 16 + off, w, 32):
                d.rectangle([x, y, x + 15, y + 15], fill=(20, 20, 20))
    for _ in range(5):  # a few random objects make every picture unique within its class
        x, y = int(rng.integers(0, w - 30)), int(rng.integers(0, h - 30))
        s = int(rng.integers(14, 34))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (d.rectangle if rng.random() < 0.5 else d.ellipse)([x, y, x + s, y + s], fill=colour)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-12, 12, (h, w, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_dataset(root: Path, n_train: int = 8, n_test: int = 3, seed: int = 0) -> Path:
    """Write a small ImageFolder dataset with train/ and test/ splits."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for cid, cname in enumerate(CLASSES):
            d = root / split / cname
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                synthetic_image(cid, rng).save(d / f"{cname[:2]}_{split}_{i}.jpg", quality=92)
    return root


def pytest_collection_modifyitems(items):
    """Files holding slow tests first, each file's tests in their order: the workers take one file at a time, and a
    long file started last would leave the other worker idle at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """A session folder made once for the whole run: in this process, or under xdist by the first worker that asks
    while the others wait on a lock and then reuse it (a model trained once serves every worker's tests)."""
    if not WORKER:
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / name
    done = folder.with_name(f"{name}.made")  # beside it, not in it: tests look at every file of these folders
    with FileLock(f"{folder}.lock"):
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    return made_once(tmp_path_factory, "data", lambda d: make_dataset(d / "landmarks")) / "landmarks"


@pytest.fixture(scope="session")
def vgg_weights(tmp_path_factory) -> Path:
    """A randomly initialised VGG16 state dict in a temp file (the real weights cannot be downloaded here)."""
    def make(folder: Path) -> None:
        import torch
        from torchvision import models

        torch.manual_seed(0)
        torch.save(models.vgg16(weights=None).state_dict(), folder / "vgg16-random.pth")

    return made_once(tmp_path_factory, "vgg", make) / "vgg16-random.pth"


@pytest.fixture(scope="session")
def trained(tmp_path_factory, dataset) -> Path:
    """A checkpoint dir with a scratch CNN and an offline-trunk transfer head trained on the dataset."""
    def make(ckpt: Path) -> None:
        from search.models.encoders import EncoderStore
        from search.models.training import train_scratch, train_transfer
        from search.models.trunks import OFFLINE_TRUNK

        store = EncoderStore(ckpt)
        train_scratch(dataset, ckpt / "scratch.pt", 3, store, FAST_TRAIN, log=lambda s: None)
        train_transfer(dataset, ckpt / "transfer_head.pt", 5, store, FAST_TRAIN, trunk=OFFLINE_TRUNK,
                       log=lambda s: None)

    return made_once(tmp_path_factory, "ckpt", make)


@pytest.fixture(scope="session")
def built(tmp_path_factory, dataset, trained) -> Path:
    """An index root with all three encoders' indexes (offline trunk) over train + test, evaluated and calibrated."""
    def make(root: Path) -> None:
        from search.evaluation.closed_set import evaluate_all, save_evaluation
        from search.evaluation.open_set import evaluate_open_set, save_open_set
        from search.index import EVAL
        from search.indexing.runner import build_index
        from search.models.encoders import EncoderStore
        from search.models.trunks import OFFLINE_TRUNK

        store = EncoderStore(trained)
        encoders, indexes = {}, {}
        for name in ("scratch", "pretrained", "transfer"):
            encoders[name] = store.load(name, trunk=OFFLINE_TRUNK)
            indexes[name] = build_index(encoders[name], dataset, "all", root, IN_PROCESS)
        pairs = {name: (encoders[name], indexes[name]) for name in encoders}
        for name, result in evaluate_all(pairs, dataset, workers=0).items():  # as prepare_demo.py evaluates
            save_evaluation(result, indexes[name])
        for name, result in evaluate_open_set(pairs, dataset, store, FAST_OPEN_SET, FAST_TRAIN,
                                              log=lambda s: None).items():
            save_open_set(result, indexes[name], indexes[name].path / EVAL)

    return made_once(tmp_path_factory, "indexes", make)


@pytest.fixture(scope="session")
def app_work(tmp_path_factory) -> Path:
    """The work dir of the session's app (maps, private galleries)."""
    return tmp_path_factory.mktemp("app-work")


PHOTO_HOST_PHOTO = "train/00.Red_Stripes/00_train_3.jpg"  # the dataset photo the photo host serves


@pytest.fixture(scope="session")
def photo_host(dataset):
    """A web server on this machine standing in for a public photo host, reached as http://localhost:PORT/ (a host
    only the tests' apps trust; by 127.0.0.1 it is the loopback address every fetch must refuse): /photo.jpg,
    /notes.txt, /huge.jpg (a declared length over 20 MB), /endless.jpg (no length, streams past 20 MB),
    /slow.jpg (answers after 3 s), /to-loopback (a redirect to 127.0.0.1) and 404s."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    photo = (dataset / PHOTO_HOST_PHOTO).read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, body: bytes, kind: str = "image/jpeg", length: int | None = None):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 (http.server's name)
            port = self.server.server_address[1]
            if self.path == "/photo.jpg":
                self._send(photo)
            elif self.path == "/notes.txt":
                self._send(b"not a photo at all", "text/plain")
            elif self.path == "/huge.jpg":
                self._send(photo, length=config.MAX_UPLOAD_BYTES + 1)
            elif self.path == "/endless.jpg":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.end_headers()
                chunk = photo + bytes(2**20)
                with contextlib.suppress(OSError):
                    for _ in range(config.MAX_UPLOAD_BYTES // len(chunk) + 2):
                        self.wfile.write(chunk)
            elif self.path == "/slow.jpg":
                time.sleep(3)
                with contextlib.suppress(OSError):
                    self._send(photo)
            elif self.path == "/to-loopback":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{port}/photo.jpg")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_error(404)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://localhost:{httpd.server_address[1]}"
    httpd.shutdown()


def trusting_localhost(**changes):
    """The web-photo rules of the tests' apps: the Hub's hosts and the tests' photo host (localhost) trusted."""
    from search.photos.web import TRUSTED_HOSTS, WebPhotoRules

    return WebPhotoRules(**{"trusted_hosts": (*TRUSTED_HOSTS, "localhost"), **changes})


@pytest.fixture(scope="session")
def server(built, trained, dataset, app_work):
    """The app over the built indexes, with examples, served once for the whole session."""
    import app
    from search.pipeline.prepare import write_examples
    from search.serving.engine import SearchEngine

    write_examples(dataset, built, n=3)
    port = free_port()
    demo = app.launch(SearchEngine(built, trained), "127.0.0.1", port, work_dir=app_work, prevent_thread_lock=True,
                      quiet=True, web=trusting_localhost())
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def client(server):
    """The default gradio_client on the session's app."""
    from gradio_client import Client

    return Client(server, verbose=False)


@pytest.fixture()
def restore_registry():
    """Whatever a test makes the encoders registry (a file of its own, through a script's --encoders), the default
    file's afterwards, with LANDMARK_ENCODERS unset as the session started."""
    import os

    from search.models.encoder_file import DEFAULT_FILE, ENV
    from search.models.encoders import use_encoders

    os.environ.pop(ENV, None)
    yield
    use_encoders(DEFAULT_FILE)
    os.environ.pop(ENV, None)


def run_cli(script: str, *args) -> subprocess.CompletedProcess:
    """`scripts/<script>` run as typed, in this process: its main(argv) under the CLI's own error handling, with
    the exit code and what it printed (a subprocess per call would import torch again each time)."""
    import contextlib
    import importlib.util
    import io
    import logging

    from search.pipeline.cli import run

    spec = importlib.util.spec_from_file_location(f"cli_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    root, handlers = logging.getLogger(), logging.getLogger().handlers[:]
    root.handlers = []  # so that the CLI's logging.basicConfig writes to this call's stderr
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run(lambda: module.main(argv))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        finally:
            root.handlers = handlers
    return subprocess.CompletedProcess([script, *argv], code, out.getvalue(), err.getvalue())
