"""The README's first command: prepare_demo.py downloading through the real download code from a local server."""

from __future__ import annotations

import http.server
import io
import json
import re
import threading
import zipfile
from pathlib import Path

import pytest

from tests.conftest import make_dataset, run_cli, run_script

pytestmark = pytest.mark.slow


def _zip_bytes(src: Path | None = None, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(src.rglob("*")) if src else []:
            if f.is_file():
                zf.write(f, "landmark_images/" + f.relative_to(src).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


class Files(http.server.BaseHTTPRequestHandler):
    """Serves `routes[path]`; a route whose value is ('cut', body) promises the whole body, then hangs up halfway."""

    routes: dict[str, object] = {}
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        cut = isinstance(body, tuple)
        data = body[1] if cut else body
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if cut else data)
        self.wfile.flush()
        if cut:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def files_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _prepare(tmp: Path, url: str, *extra: str, as_typed: bool = False):
    """prepare_demo.py on a download URL: in this process (its main(argv)), or `as_typed` in a process of its own."""
    args = ("scripts/prepare_demo.py", "--url", url, "--data-dir", tmp / "data" / "landmarks", "--index-dir",
            tmp / "indexes", "--checkpoint-dir", tmp / "ckpt", "--trunk", "efficientnet_lite0", "--scratch-epochs", "2",
            "--transfer-epochs", "2", *extra)
    return run_script(*args) if as_typed else run_cli(*args)


def _leftovers(tmp: Path) -> list[Path]:
    return [p for p in (tmp / "data").rglob("*") if p.name.startswith(".")] if (tmp / "data").exists() else []


def test_prepare_demo_downloads_recovers_from_a_cut_download_and_skips_what_is_current(files_server, tmp_path):
    src = make_dataset(tmp_path / "src", n_train=6, n_test=2)
    Files.routes["/landmark_images.zip"] = ("cut", _zip_bytes(src))
    url = files_server + "/landmark_images.zip"

    cut = _prepare(tmp_path, url)
    assert cut.returncode == 2, cut.stderr[-2000:]
    assert cut.stderr.strip().splitlines()[-1].startswith("error: The download of") and "interrupted" in cut.stderr
    assert "Traceback" not in cut.stderr
    assert not (tmp_path / "data" / "landmarks").exists() and _leftovers(tmp_path) == []

    Files.routes["/landmark_images.zip"] = _zip_bytes(src)
    first = _prepare(tmp_path, url, as_typed=True)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "downloading" in first.stderr and "unpacking" in first.stderr  # tqdm progress bars
    out = first.stdout
    for step in ("scratch: training", "transfer: training", "scratch: building index",
                 "pretrained: building index", "transfer: building index", "evaluating"):
        assert step in out, step
    assert "3 of 3 encoders ready" in out
    table = out[out.index("encoder "):]
    assert table.count("index built") == 3 and "trained, val acc" in table
    for name in ("scratch", "pretrained", "transfer"):
        manifest = json.loads((tmp_path / "indexes" / name / "manifest.json").read_text())
        assert manifest["count"] == 18 and manifest["calibration"]["file"] and manifest["confidence"]["file"]
        report = json.loads((tmp_path / "indexes" / name / "eval.json").read_text())
        assert report["queries"] == 6 and report["open_set"]["queries_absent"] == 6
    assert re.search(r"note: open-set evaluation \(.*\): \d+ s", out)  # its own time line
    assert list((tmp_path / "indexes" / "examples").glob("*.jpg"))

    downloads = Files.hits.count("/landmark_images.zip")
    again = _prepare(tmp_path, url)
    assert again.returncode == 0, again.stderr[-2000:]
    assert Files.hits.count("/landmark_images.zip") == downloads  # no second download
    assert "already there" in again.stdout and "training" not in again.stdout
    assert again.stdout.count("index is current") == 3 and "evaluating" not in again.stdout
    table = again.stdout[again.stdout.index("encoder "):]
    assert table.count("up to date") == 3


@pytest.mark.parametrize("name,body,message", [
    ("not-a-zip", b"<html>404 page of a proxy</html>", "is not a valid zip file"),
    ("no-layout", _zip_bytes(extra={"landmark_images/readme.txt": b"hello"}), "no folder with train/ and test/"),
    ("zip-slip", _zip_bytes(extra={"../../escape.txt": b"x"}), "Refusing unsafe path"),
])
def test_bad_downloads_get_one_clear_error_line(files_server, tmp_path, name, body, message):
    Files.routes[f"/{name}.zip"] = body
    r = _prepare(tmp_path, f"{files_server}/{name}.zip")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1] and "Traceback" not in r.stderr
    assert not (tmp_path / "data" / "landmarks").exists() and _leftovers(tmp_path) == []
    assert not list(tmp_path.rglob("escape.txt"))
