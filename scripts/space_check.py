"""Run the app as a ZeroGPU Space runs it, and use it as a visitor does: say what fails before you publish.

What a Space adds to a local run, reproduced here:
- ZeroGPU's process boundary: a stand-in `spaces` package (scripts/stand_ins/zero_gpu) that pickles every GPU call's
  arguments and result as the real queue does, and a guard that fails any convolution or linear layer running
  outside a GPU call;
- the prepared demo from the Hub cache: published to a local stand-in of the Hub (scripts/stand_ins/hub.py), fetched by
  huggingface_hub's own client into a cache of blobs and symlinks under your home folder (a Space's cache is
  ~/.cache/huggingface, outside the temp dir and the app's folder), then served with HF_HUB_OFFLINE=1;
- server-side rendering (GRADIO_SSR_MODE=true), where Gradio's Node proxy sends only /gradio_api and a few other
  prefixes to Python.
Then the default gradio_client searches, compares, explains, builds a private gallery and searches it (downloading
every image, as it does by default), and a second visitor tries to read the first one's files.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from search import config
from search.errors import LandmarkError
from search.index import thumbs_dir
from search.pipeline.assets import fetch, published
from search.pipeline.cli import add_index_dir, run

ROOT = Path(__file__).resolve().parents[1]
REPO = "space-check/demo-assets"
GUARDED_APP = r"""
import runpy, sys
import spaces  # first, as on ZeroGPU
import layer_guard

layer_guard.install()
sys.argv = ["app.py", *sys.argv[1:]]
runpy.run_path("app.py", run_name="__main__")
"""


def published_files(index_dir: Path, checkpoint_dir: Path) -> dict[str, bytes]:
    """The files scripts/publish.py uploads of a prepared demo, by their path in the repo."""
    files = {}
    for base, prefix in ((index_dir, "indexes"), (checkpoint_dir, "checkpoints")):
        for f in sorted(Path(base).rglob("*")):
            rel = f"{prefix}/{f.relative_to(base).as_posix()}"
            if f.is_file() and any(fnmatch.fnmatch(rel, pat) for pat in published()):
                files[rel] = f.read_bytes()
    return files


def hub_cache(index_dir: Path, checkpoint_dir: Path, cache: Path) -> None:
    """The prepared demo in a Hub cache as huggingface_hub writes it (blobs, relative symlinks, refs)."""
    from scripts.stand_ins.hub import FakeHub

    hub = FakeHub({REPO: {"main": published_files(index_dir, checkpoint_dir)}})
    try:
        fetch(REPO, endpoint=hub.url, cache_dir=cache, into=cache.parent / "fetched")
    finally:
        hub.close()


def start(port: int, env: dict, log: Path, timeout: float = 240) -> subprocess.Popen:
    """The app under the ZeroGPU stand-in and its guard, answering its page (through the SSR proxy)."""
    import httpx

    proc = subprocess.Popen([sys.executable, "-c", GUARDED_APP, "--port", str(port)], cwd=ROOT, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise LandmarkError(f"The app did not start: see {log}:\n{log.read_text()[-2000:]}")


def visitor_checks(url: str, photos: list[Path], gallery_photo: str) -> list[tuple[str, Callable[[], str]]]:
    """What a visitor does, as (name, check) pairs; each check returns a detail or raises."""
    import httpx
    from gradio_client import Client, handle_file

    owner, other = Client(url, verbose=False), Client(url, verbose=False)  # the default client: downloads files

    def search() -> str:
        gallery, _, verdict = owner.predict(handle_file(str(photos[0])), "transfer", 3, api_name="/search")
        assert len(gallery) == 3 and all(Path(g["image"]).is_file() for g in gallery), gallery
        return f"3 hits downloaded; {verdict.splitlines()[0][:60]}"

    def compare() -> str:
        out = owner.predict(handle_file(str(photos[0])), 3, "", api_name="/compare")
        assert all(len(g) == 3 for g in out[:3]), out[:3]
        return "3 columns of 3"

    def explain() -> str:
        q, h = owner.predict(handle_file(str(photos[0])), "pretrained", gallery_photo, api_name="/explain")
        assert Path(q).is_file() and Path(h).is_file()
        return "two heatmaps downloaded"

    def my_gallery() -> str:
        status = owner.predict([handle_file(str(p)) for p in photos], api_name="/my_gallery")
        assert f"{len(photos)} photos" in status, status
        return status[:70]

    def search_mine() -> str:
        gallery, _, _ = owner.predict(handle_file(str(photos[1])), "pretrained", 3, api_name="/search_mine")
        assert len(gallery) == 3 and all(Path(g["image"]).is_file() for g in gallery), gallery
        return "3 of your photos downloaded"

    def others_refused() -> str:
        owner.download_files = False  # once, to see the URL the owner's page is given
        try:
            image = owner.predict(handle_file(str(photos[1])), "pretrained", 1, api_name="/search_mine")[0][0]["image"]
        finally:
            owner.download_files = True
        urls = [image["url"], f"{url}gradio_api/file={image['url']}"]  # as a browser and as gradio_client ask
        for u in urls:
            assert httpx.get(u, cookies=owner.cookies).status_code == 200, u
            for cookies in (other.cookies, None):
                status = httpx.get(u, cookies=cookies).status_code
                assert status == 404, (u, status)
        return f"{len(urls)} URLs: 200 for the owner, 404 for another visitor and for none"

    return [("search", search), ("compare", compare), ("explain", explain), ("my_gallery", my_gallery),
            ("search_mine", search_mine), ("another visitor", others_refused)]


def app_steps(port: int, log: Path, photos: list[Path], gallery_path: str) -> list[tuple[str, bool, str]]:
    """The started app's steps: it runs under ZeroGPU and SSR, a visitor's calls, and the GPU guard never fired."""
    for _ in range(60):  # the launch line follows the page's first answer by a moment
        if "Running on local URL" in log.read_text():
            break
        time.sleep(0.5)
    ssr = "with SSR" in log.read_text()
    results = [("app under ZeroGPU and SSR", ssr, f"http://127.0.0.1:{port}/" + (
        ", behind Gradio's Node proxy" if ssr else ": Gradio started without SSR (is Node.js installed?)"))]
    for step, check in visitor_checks(f"http://127.0.0.1:{port}/", photos, gallery_path):
        try:
            results.append((step, True, check()))
        except Exception as exc:  # a failed step is reported, and the next one runs
            results.append((step, False, f"{type(exc).__name__}: {str(exc)[:300]}"))
    text = log.read_text()
    guard = "outside a spaces.GPU call" not in text and "ZeroGPU worker error" not in text
    results.append(("every model call inside spaces.GPU", guard, "the guard never fired" if guard else
                    "see the log: a model ran outside a GPU call or failed inside one"))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_index_dir(p)
    p.add_argument("--checkpoint-dir", type=Path, default=config.CHECKPOINT_DIR)
    p.add_argument("--port", type=int, default=None, help="the app's port (default: a free one)")
    p.add_argument("--keep", action="store_true", help="keep the Hub cache and the app's log (printed at the end)")
    a = p.parse_args(argv)
    from scripts.benchmarks.ports import free_port
    from search.pipeline.prepare import loadable_indexes

    indexes = loadable_indexes(a.index_dir)
    if not indexes:
        raise LandmarkError(f"{a.index_dir} holds no index that loads: run scripts/prepare_demo.py first.")
    home = Path.home() / ".cache" / f"landmark-lens-space-check-{os.getpid()}"
    for outside in (Path(tempfile.gettempdir()), ROOT):
        if home.resolve().is_relative_to(outside.resolve()):
            raise LandmarkError(f"{home} lies inside {outside}: set HOME to a folder outside it.")
    results: list[tuple[str, bool, str]] = []
    proc = None
    try:
        hub_cache(a.index_dir, a.checkpoint_dir, home / "hub")
        results.append(("Hub cache", True, f"{sum(1 for _ in (home / 'hub').rglob('*') if _.is_symlink())} "
                                           f"symlinked files under {home / 'hub'}"))
        env = dict(os.environ, SPACES_ZERO_GPU="true", GRADIO_SSR_MODE="true", HF_HUB_OFFLINE="1",
                   HF_HUB_CACHE=str(home / "hub"), LANDMARK_WORK_DIR=str(home / "work"),
                   **{config.ASSETS_ENV: REPO},
                   PYTHONPATH=os.pathsep.join([str(ROOT / "scripts" / "stand_ins" / "zero_gpu"), str(ROOT)]))
        port = a.port if a.port else free_port()
        log = home / "app.log"
        proc = start(port, env, log)
        results += app_steps(port, log, sorted(thumbs_dir(a.index_dir).glob("*.jpg"))[:4],
                             next(iter(indexes.values())).items[0]["path"])
    finally:
        if proc is not None:  # the app and its Node proxy: the whole process group
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        if not a.keep:
            shutil.rmtree(home, ignore_errors=True)
    for step, ok, detail in results:
        print(f"{'ok' if ok else 'FAILED':7} {step:36} {detail}")
    failed = [s for s, ok, _ in results if not ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    run(main)
