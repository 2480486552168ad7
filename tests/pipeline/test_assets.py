"""The prepared demo from the Hub: the app fetches a published asset repo through huggingface_hub's real client
(against a local stand-in for the Hub), serves it, starts again offline from the cache, and says in one line
what is wrong with a missing repo or revision."""

from __future__ import annotations

import fnmatch
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from scripts.stand_ins.hub import FakeHub
from search.errors import LandmarkError
from search.pipeline.assets import fetch, published
from search.serving.engine import SearchEngine
from tests.conftest import ROOT, free_port, synthetic_image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

REPO = "landmark-lens/demo-assets"


def _asset_files(built, trained) -> dict[str, bytes]:
    """The repo publish.py makes of a prepared demo: what published() names, under indexes/ and checkpoints/."""
    files = {}
    for base, prefix in ((built, "indexes"), (trained, "checkpoints")):
        for f in base.rglob("*"):
            rel = f"{prefix}/{f.relative_to(base).as_posix()}"
            if f.is_file() and any(fnmatch.fnmatch(rel, pat) for pat in published()):
                files[rel] = f.read_bytes()
    return files


@pytest.fixture(scope="module")
def hub(built, trained):
    from search.pipeline.prepare import loadable_indexes
    from search.study.store import ensure

    ensure(built, loadable_indexes(built), log=lambda s: None)  # published demos carry their study
    hub = FakeHub({REPO: {"main": _asset_files(built, trained)}})
    yield hub
    hub.close()


def test_fetch_gets_the_published_demo_and_says_what_is_missing(hub, tmp_path):
    index_dir, checkpoint_dir = fetch(REPO, endpoint=hub.url, cache_dir=tmp_path / "hub")
    engine = SearchEngine(index_dir, checkpoint_dir)
    assert set(engine.backends) == {"scratch", "pretrained", "transfer"}, engine.unavailable
    assert not any(p.name.startswith("scratch-") for p in checkpoint_dir.rglob("*"))  # no fold models, no caches
    hits = engine.search("transfer", synthetic_image(1, np.random.default_rng(3)), 3)
    assert len(hits) == 3 and hits[0].thumbnail.is_file()
    with pytest.raises(LandmarkError, match=r"No Hub model repo landmark-lens/nope"):
        fetch("landmark-lens/nope", endpoint=hub.url, cache_dir=tmp_path / "hub")
    with pytest.raises(LandmarkError, match=r"has no revision 'v9'"):
        fetch(f"{REPO}@v9", endpoint=hub.url, cache_dir=tmp_path / "hub")
    with pytest.raises(LandmarkError, match="not a Hub repo"):
        fetch("just-a-name", endpoint=hub.url)


def _spawn(args: list[str], env: dict, log) -> tuple[subprocess.Popen, str]:
    """`python app.py --port P ARGS` started (not yet serving), and its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *args], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}/"


def _serving(proc: subprocess.Popen, url: str, log) -> None:
    """Wait until the app answers its page (or fail with its log)."""
    for _ in range(240):
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(open(log).read()[-3000:])


def _start(args: list[str], env: dict, log) -> tuple[subprocess.Popen, str]:
    proc, url = _spawn(args, env, log)
    _serving(proc, url, log)
    return proc, url


@pytest.fixture()
def home_dir():
    """A folder outside the temp dir and the working directory, as a Space's Hub cache is (~/.cache/huggingface):
    Gradio allows files under the temp dir anyway, so only a cache elsewhere shows what it refuses."""
    folder = Path.home() / ".cache" / f"landmark-lens-test-{secrets.token_hex(4)}"
    assert not folder.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert not folder.resolve().is_relative_to(Path.cwd().resolve())
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_the_app_serves_a_hub_repo_then_starts_offline_from_the_cache(hub, tmp_path, home_dir):
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(home_dir / "hub"),
               LANDMARK_WORK_DIR=str(home_dir / "work"))
    photo = tmp_path / "q.jpg"
    synthetic_image(2, np.random.default_rng(4)).save(photo)
    for run, extra in (("online", {}), ("offline", {"HF_HUB_OFFLINE": "1"})):
        before = len(hub.hits)
        proc, url = _start(["--assets", REPO], {**env, **extra}, tmp_path / f"{run}.log")
        try:  # the default client downloads each thumbnail, as a browser shows it
            gallery, _, _ = Client(url, verbose=False).predict(handle_file(str(photo)), "scratch", 4,
                                                               api_name="/search")
            assert len(gallery) == 4 and all(Path(g["image"]).is_file() for g in gallery)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        blobs = list((home_dir / "hub").glob("models--*/blobs/*"))
        assert blobs and any(p.is_symlink() for p in (home_dir / "hub").rglob("*.jpg"))  # the Hub client's layout
        if run == "offline":
            assert len(hub.hits) == before  # nothing asked of the Hub: the cache alone
        else:
            assert len(hub.hits) > before


BAD_ASSETS = [("landmark-lens/nope", "No Hub model repo landmark-lens/nope"), (f"{REPO}@v9", "has no revision 'v9'"),
              ("bad name/x", "is not a Hub repo"), ("a/b/c", "is not a Hub repo"), ("owner/-name", "is not a Hub repo"),
              (f"{REPO}@", "is not a Hub repo")]


@pytest.mark.slow
def test_a_missing_repo_is_one_line_and_the_app_still_starts(hub, tmp_path):
    """The real process, for its wiring: LANDMARK_ASSETS read, the one line printed, the app serving its banner."""
    spec, line = BAD_ASSETS[0]
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(tmp_path / "hub"),
               LANDMARK_WORK_DIR=str(tmp_path / "w"), LANDMARK_ASSETS=spec)
    proc, url = _start(["--index-dir", str(tmp_path / "none")], env, tmp_path / "app.log")
    try:
        page = httpx.get(url + "config", timeout=10).text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = (tmp_path / "app.log").read_text()
    assert "No gallery index yet" in page  # the banner
    lines = [ln for ln in log.splitlines() if ln.startswith("assets: ")]
    assert len(lines) == 1 and line in lines[0] and "Traceback" not in log


@pytest.mark.parametrize("spec,line", BAD_ASSETS)
def test_a_missing_repo_or_revision_is_one_line_and_the_app_starts_without_it(hub, tmp_path, capsys, spec, line):
    """Each bad spec through the app's own fallback, in this process: one line, and the folders the app was given
    (on which it serves the banner above)."""
    import app

    given = (tmp_path / "none", tmp_path / "checkpoints")
    assert app.assets_dirs(spec, *given, endpoint=hub.url, cache_dir=tmp_path / "hub") == given
    out = capsys.readouterr()
    lines = [ln for ln in out.out.splitlines() if ln.startswith("assets: ")]
    assert len(lines) == 1 and line in lines[0] and "Traceback" not in out.out + out.err


def test_publish_refuses_a_folder_without_a_prepared_demo(tmp_path):
    r = subprocess.run([sys.executable, "scripts/publish.py", "--repo", REPO, "--index-dir", str(tmp_path / "none"),
                        "--endpoint", "http://127.0.0.1:9"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "holds no index that loads: run scripts/prepare_demo.py" in r.stderr
    assert "Traceback" not in r.stderr


def test_publish_with_a_space_makes_a_zero_gpu_space_on_the_published_commit_and_uploads_the_code(
        built, trained, monkeypatch, capsys):
    """The Hub's write API as huggingface_hub's HfApi is called (a stand-in that records each call): a Space created
    on ZeroGPU hardware with the Gradio SDK, its assets variable pinned to the commit just published, and the code
    uploaded through the API (a new Space repo has a first commit, so a plain git push is refused)."""
    import importlib.util

    import huggingface_hub

    calls = []

    class RecordingApi:
        def __init__(self, endpoint=None):
            pass

        def __getattr__(self, name):
            def call(*args, **kwargs):
                calls.append((name, args, kwargs))
                return type("CommitInfo", (), {"oid": f"{len(calls):040x}"})()
            return call

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    spec = importlib.util.spec_from_file_location("publish", ROOT / "scripts" / "publish.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    monkeypatch.setattr(sys, "argv", ["publish.py", "--repo", REPO, "--index-dir", str(built), "--checkpoint-dir",
                                      str(trained), "--space", "someone/landmark-lens"])
    assert publish.main() == 0
    by_name = {}
    for name, args, kwargs in calls:
        by_name.setdefault(name, []).append((args, kwargs))
    space = [kw for _, kw in by_name["create_repo"] if kw.get("repo_type") == "space"]
    assert space == [{"repo_type": "space", "space_sdk": "gradio", "space_hardware": "zero-a10g", "exist_ok": True}]
    published = f"{3:040x}"  # calls: the assets repo created (1), indexes/ (2) and checkpoints/ (3) uploaded
    assert by_name["add_space_variable"] == [(("someone/landmark-lens", "LANDMARK_ASSETS", f"{REPO}@{published}"), {})]
    code = [kw for _, kw in by_name["upload_folder"] if kw["repo_type"] == "space"][0]
    assert {"README.md", "app.py", "requirements.txt"} <= set(code["allow_patterns"])
    assert not any(p.startswith(("indexes/", "checkpoints/", ".venv/")) and p != "indexes/README.md"
                   for p in code["allow_patterns"])
    assert "uploaded the code to the Space someone/landmark-lens" in capsys.readouterr().out
