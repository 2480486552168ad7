"""Robustness: concurrent load, bad inputs through the API and the CLIs, killed builds, the file route."""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from search import config
from search.index import load_index, manifest_checksum
from search.models.encoders import EncoderStore
from search.models.trunks import OFFLINE_TRUNK
from search.serving.engine import SearchEngine
from tests.conftest import ROOT, make_dataset, run_cli, run_script, synthetic_image

QUERIES_PER_CLIENT = 3  # 60 queries: every client's queries overlap all the others'


@pytest.mark.slow
def test_load_20_concurrent_clients(server, tmp_path, capsys):
    photos = []
    for i in range(4):
        p = tmp_path / f"q{i}.jpg"
        synthetic_image(i % 3, np.random.default_rng(100 + i)).save(p)
        photos.append(p)
    encoders = ["scratch", "pretrained", "transfer"]

    def one_client(c: int) -> list[tuple[float, int, int]]:
        cl = Client(server, verbose=False, download_files=False)
        out = []
        for q in range(QUERIES_PER_CLIENT):
            k = 3 + (c + q) % 7
            t = time.perf_counter()
            gallery, the_map, _ = cl.predict(handle_file(str(photos[(c + q) % 4])), encoders[(c + q) % 3], k,
                                             api_name="/search")
            out.append((time.perf_counter() - t, len(gallery), k))
            assert the_map["traces"][1]["name"] == "your photo"
        return out

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = [r for rs in pool.map(one_client, range(20)) for r in rs]
    assert len(results) == 20 * QUERIES_PER_CLIENT
    assert all(n == k for _, n, k in results)
    lat = sorted(t for t, _, _ in results)
    p50, p95 = statistics.median(lat), lat[int(0.95 * len(lat)) - 1]
    with capsys.disabled():  # shown in the CI log even though pytest captures output
        print(f"\nload: {len(results)} queries from 20 concurrent clients, p50 {1000 * p50:.0f} ms, "
              f"p95 {1000 * p95:.0f} ms")


def test_path_traversal_upload_names_stay_in_the_upload_dir(server, client, tmp_path):
    jpeg = tmp_path / "ok.jpg"
    synthetic_image(0, np.random.default_rng(5)).save(jpeg)
    target = Path("/tmp/landmark_lens_escape_test.jpg")
    target.unlink(missing_ok=True)
    for name in ("../../../../tmp/landmark_lens_escape_test.jpg", "/tmp/landmark_lens_escape_test.jpg",
                 "..\\..\\landmark_lens_escape_test.jpg"):
        r = httpx.post(server + "gradio_api/upload", files={"files": (name, jpeg.read_bytes(), "image/jpeg")})
        assert r.status_code == 200
        saved = Path(r.json()[0])
        assert ".." not in saved.parts and saved.name != "" and saved != target
        assert saved.is_file() and saved.read_bytes() == jpeg.read_bytes()  # the upload itself, kept in the cache
        assert saved.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve() / "gradio")
        gallery, _, _ = client.predict(handle_file(str(saved)), "scratch", 2, api_name="/search")
        assert len(gallery) == 2
    assert not target.exists()


def _file_route(base: str, path: str) -> httpx.Response:
    return httpx.get(base + "gradio_api/file=" + urllib.parse.quote(path, safe="/"))


def test_file_route_serves_thumbnails_only(server, built, dataset, trained):
    thumb = next((built / "thumbnails").glob("*.jpg"))
    ok = _file_route(server, str(thumb.resolve()))
    assert ok.status_code == 200 and ok.content[:2] == b"\xff\xd8"
    secrets = [str((built / "scratch" / "manifest.json").resolve()), str((trained / "scratch.pt").resolve()),
               str(next(dataset.rglob("*.jpg")).resolve()), "/etc/passwd", str(ROOT / "app.py"),
               str((built / "thumbnails").resolve()) + "/../scratch/manifest.json",
               "../../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd"]
    for path in secrets:
        r = _file_route(server, path)
        assert r.status_code in (403, 404, 400), (path, r.status_code)
        assert b"root:" not in r.content and b"schema_version" not in r.content


def test_cli_bad_inputs_get_one_clear_line(built, trained, tmp_path, dataset):
    """Each bad input through the scripts' own main(argv) and error handling (one real subprocess per script is in
    test_cli.py)."""
    cases = {
        "empty.jpg": b"",
        "text.jpg": b"plain text pretending",
        "truncated.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF",
    }
    q = ["scripts/query.py", "--index-dir", built, "--checkpoint-dir", trained, "--encoder", "scratch"]
    for name, data in cases.items():
        f = tmp_path / name
        f.write_bytes(data)
        r = run_cli(*q, "--image", f)
        assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr, r.stderr
    for extra, msg in (([tmp_path / "missing.jpg"], "No such file"), ([tmp_path], "is a directory")):
        r = run_cli(*q, "--image", *extra)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
    good = next(dataset.rglob("*.jpg"))
    r = run_cli(*q, "--image", good, "--top-k", "0")
    assert r.returncode == 2 and "at least 1" in r.stderr
    r = run_cli("scripts/query.py", "--index-dir", built, "--encoder", "nope", "--image", good)
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run_cli("scripts/query.py", "--index-dir", tmp_path / "nowhere", "--encoder", "scratch", "--image", good)
    assert r.returncode == 2 and "build_index.py" in r.stderr
    r = run_cli("scripts/build_index.py", "--encoder", "pretrained", "--trunk", "keras:resnet50")
    assert r.returncode == 2 and "argument --trunk: Unknown trunk 'keras:resnet50'" in r.stderr
    r = run_cli("scripts/build_index.py", "--encoder", "scratch", "--data-dir", tmp_path / "nodata",
                "--checkpoint-dir", trained, "--out-dir", tmp_path / "idx")
    assert r.returncode == 2 and "get_data.py" in r.stderr and "Traceback" not in r.stderr


def test_sigkilled_build_leaves_previous_index_serving(built, trained, tmp_path):
    root = tmp_path / "idx"
    shutil.copytree(built, root)
    bigger = make_dataset(tmp_path / "bigger", n_train=30, n_test=1, seed=3)  # 90 images: seconds to encode
    store = EncoderStore(trained)
    enc = store.load("pretrained", trunk=OFFLINE_TRUNK)
    before = load_index(root / "pretrained", enc)
    query = synthetic_image(2, np.random.default_rng(9))
    answer = [h.row for h in SearchEngine(root, trained, names=("pretrained",)).search("pretrained", query, 5)]
    cmd = [sys.executable, "scripts/build_index.py", "--encoder", "pretrained", "--data-dir", str(bigger),
           "--split", "train", "--out-dir", str(root), "--checkpoint-dir", str(trained), "--trunk", OFFLINE_TRUNK]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = bytearray()

    def pump() -> None:
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            seen.extend(chunk)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and b"indexing pretrained:  " not in seen:
        time.sleep(0.01)
    time.sleep(0.7)  # well into encoding (thumbnails being written)
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    after = load_index(root / "pretrained", enc)
    assert after.manifest == before.manifest
    np.testing.assert_array_equal(after.embeddings, before.embeddings)
    again = [h.row for h in SearchEngine(root, trained, names=("pretrained",)).search("pretrained", query, 5)]
    assert again == answer
    # The next build cleans up whatever the killed one left and completes (the same command, in this process).
    r = run_cli(*cmd[1:])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["count"] == 90 and not list(root.glob(".pretrained.*"))
    # Whatever the kill interrupted, no file under a final name is half-written.
    for thumb in (root / "thumbnails").glob("[!.]*.jpg"):
        Image.open(thumb).load()
    assert load_index(root / "pretrained", enc).manifest["count"] == 90


KILL_DURING_SWAP = """
import os, runpy, signal, sys
from pathlib import Path
point, real = sys.argv[1], os.replace
def replace(src, dst):
    s, d = Path(src).name, Path(dst).name
    if point == "before" and s.startswith(".pretrained.new-") and d == "pretrained":
        os.kill(os.getpid(), signal.SIGKILL)  # the new index is complete, nothing is swapped yet
    real(src, dst)
    if point == "between" and s == "pretrained" and d == ".pretrained.old":
        os.kill(os.getpid(), signal.SIGKILL)  # the old index is moved aside, the new one not yet in place
os.replace = replace
sys.argv = ["scripts/build_index.py", *sys.argv[2:]]
runpy.run_path("scripts/build_index.py", run_name="__main__")
"""


@pytest.mark.parametrize("point", ["before", "between"])
def test_sigkill_during_the_swap_leaves_the_previous_index_serving(built, trained, dataset, tmp_path, point):
    root = tmp_path / "idx"
    shutil.copytree(built, root)
    enc = EncoderStore(trained).load("pretrained", trunk=OFFLINE_TRUNK)
    before = load_index(root / "pretrained", enc)
    query = synthetic_image(0, np.random.default_rng(21))
    answer = [(h.path, round(h.distance, 5)) for h in
              SearchEngine(root, trained, names=("pretrained",)).search("pretrained", query, 6)]
    r = run_script("-c", KILL_DURING_SWAP, point, "--encoder", "pretrained", "--data-dir", dataset, "--split", "train",
                   "--out-dir", root, "--checkpoint-dir", trained, "--trunk", OFFLINE_TRUNK)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    if point == "between":
        assert not (root / "pretrained").exists() and (root / ".pretrained.old").is_dir()  # really half-swapped
    after = load_index(root / "pretrained", enc)  # recovers the half-done swap
    assert after.manifest == before.manifest and after.manifest["count"] == 33
    np.testing.assert_array_equal(after.embeddings, before.embeddings)
    again = [(h.path, round(h.distance, 5)) for h in
             SearchEngine(root, trained, names=("pretrained",)).search("pretrained", query, 6)]
    assert again == answer
    # The next build replaces it cleanly and leaves nothing of the killed one behind.
    r = run_cli("scripts/build_index.py", "--encoder", "pretrained", "--data-dir", dataset, "--split", "train",
                "--out-dir", root, "--checkpoint-dir", trained, "--trunk", OFFLINE_TRUNK)
    assert r.returncode == 0, r.stderr[-2000:]
    assert load_index(root / "pretrained", enc).manifest["count"] == 24 and not list(root.glob(".pretrained*"))


def test_corrupt_eval_report_is_ignored(built, trained, tmp_path):
    root = tmp_path / "idx"
    shutil.copytree(built, root)
    (root / "scratch" / "eval.json").write_text("{broken")
    idx = load_index(root / "scratch", EncoderStore(trained).load("scratch"))
    assert idx.eval_report() is None


def test_upload_over_the_size_limit_gets_a_clear_message(server, client, tmp_path):
    """A photo over 20 MB is refused by the photo box; any file over the upload cap (a zip may be 100 MB) by
    Gradio itself, before the app sees it."""
    photo = tmp_path / "huge.jpg"
    photo.write_bytes(b"\xff\xd8\xff" + bytes(config.MAX_UPLOAD_BYTES + 1024))
    with pytest.raises(Exception, match="File is larger than 20 MB"):
        client.predict(handle_file(str(photo)), "scratch", 3, api_name="/search")
    big = tmp_path / "bigger.jpg"
    big.write_bytes(b"\xff\xd8\xff" + bytes(config.MY_GALLERY.max_upload_bytes + 1024))
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        client.predict(handle_file(str(big)), "scratch", 3, api_name="/search")
    with open(big, "rb") as f:
        r = httpx.post(server + "gradio_api/upload", files={"files": ("bigger.jpg", f, "image/jpeg")})
    assert r.status_code == 413 and "exceeded maximum allowed size" in r.text


def test_missing_or_corrupt_thumbnails_and_other_schema_get_clear_messages(built, trained, tmp_path):
    import gradio as gr

    from ui.search_tab import explain, search
    from ui.text import missing_banner
    from ui.view import GalleryView

    root = tmp_path / "idx"
    shutil.copytree(built, root)
    engine = SearchEngine(root, trained)
    query = synthetic_image(1, np.random.default_rng(31))
    first = engine.search("pretrained", query, 2)
    # A corrupt thumbnail: the index still serves; the hit shows a placeholder and the page says what to do.
    first[0].thumbnail.write_bytes(b"\xff\xd8\xff garbage")
    ui = GalleryView(engine, tmp_path / "work")
    warnings_seen = []
    orig = gr.Warning
    gr.Warning = warnings_seen.append
    try:
        gallery, *_ = search(ui, query, "pretrained", 2)
    finally:
        gr.Warning = orig
    assert gallery[0][0] == str(ui.missing_thumb) and gallery[0][1].endswith("thumbnail missing")
    assert gallery[1][0] == str(first[1].thumbnail)
    assert warnings_seen and "rebuild it with scripts/build_index.py --encoder pretrained" in warnings_seen[0]
    with pytest.raises(gr.Error, match="thumbnail of .* is missing or corrupt .*rebuild"):
        explain(ui, query, "pretrained", first[0].path)
    # A missing thumbnail: the index is refused at load, with the command that fixes it.
    first[1].thumbnail.unlink()
    engine = SearchEngine(root, trained)
    assert "thumbnails missing" in engine.unavailable["pretrained"] and "rebuild" in engine.unavailable["pretrained"]
    # An index written by another version of the format.
    manifest_path = root / "scratch" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["schema_version"] = config.INDEX_SCHEMA_VERSION + 1
    manifest["checksum"] = manifest_checksum(manifest)
    manifest_path.write_text(json.dumps(manifest))
    engine = SearchEngine(root, trained)
    assert f"schema {config.INDEX_SCHEMA_VERSION + 1}" in engine.unavailable["scratch"]
    assert "rebuild the index" in missing_banner(engine)
