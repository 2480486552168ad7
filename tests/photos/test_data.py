"""Data: display names, get_data from a zip, undecodable images skipped with a warning, image normalisation."""

import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from search.errors import BadImageError, DatasetError
from search.indexing.runner import build_index
from search.models.encoders import EncoderStore
from search.photos.download import from_zip, verify_layout
from search.photos.folders import UndecodableImageWarning, display_name
from search.photos.images import open_image
from tests.conftest import IN_PROCESS, ROOT, make_dataset, run_cli


def test_display_name():
    assert display_name("00.Haleakala_National_Park") == "Haleakala National Park"
    assert display_name("49.Temple_of_Olympian_Zeus") == "Temple of Olympian Zeus"
    assert display_name("Plain") == "Plain"


def _zip_dataset(src, zpath):
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in src.rglob("*"):
            zf.write(f, "landmark_images/" + f.relative_to(src).as_posix())


def test_get_data_from_zip_cli_and_rerun(tmp_path):
    src = make_dataset(tmp_path / "src", n_train=2, n_test=1)
    zpath = tmp_path / "landmark_images.zip"
    _zip_dataset(src, zpath)
    out = tmp_path / "data" / "landmark_images"
    cmd = [sys.executable, str(ROOT / "scripts" / "get_data.py"), "--out", str(out), "--from-zip", str(zpath)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert verify_layout(out) == {"train": 6, "test": 3, "classes": 3}
    r2 = run_cli("scripts/get_data.py", *cmd[2:])  # the same command again, in this process
    assert r2.returncode == 0 and '"already_present": 1' in r2.stdout
    assert not list(out.parent.glob(".unpack-*"))


def test_get_data_offline_fails_with_one_clear_line(tmp_path):
    r = run_cli("scripts/get_data.py", "--out", tmp_path / "d", "--url", "http://127.0.0.1:9/landmark_images.zip")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert "--from-zip" in r.stderr


def test_zip_without_layout_and_zip_slip_are_refused(tmp_path):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(DatasetError, match="train/ and test/"):
        from_zip(z, tmp_path / "out")
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../escape.txt", "x")
    with pytest.raises(DatasetError, match="unsafe"):
        from_zip(z, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_undecodable_image_is_skipped_with_warning(tmp_path, trained):
    root = make_dataset(tmp_path / "d", n_train=3, n_test=1)
    bad = root / "train" / "01.Blue_Circles" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    enc = EncoderStore(trained).load("scratch")
    with pytest.warns(UndecodableImageWarning, match="broken.jpg"):
        idx = build_index(enc, root, "train", tmp_path / "idx", IN_PROCESS)
    assert idx.manifest["skipped"] == 1 and idx.manifest["count"] == 9
    assert all("broken" not in it["path"] for it in idx.items)


def _png_bytes(img, **kw):
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def test_open_image_normalises_modes():
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    assert open_image(_png_bytes(rgba)).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    gray16 = Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16))
    out = open_image(_png_bytes(gray16))
    assert out.mode == "RGB" and out.size == (40, 30)
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))
    r, g, b = open_image(_png_bytes(cmyk, format="JPEG")).getpixel((5, 5))
    assert r > 200 and g < 60 and b < 60
    pal = Image.new("P", (40, 30))
    assert open_image(_png_bytes(pal)).mode == "RGB"


def test_open_image_applies_exif_rotation():
    img = Image.new("RGB", (60, 30), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    data = _png_bytes(img, format="JPEG", exif=exif.tobytes())
    assert open_image(data).size == (30, 60)


@pytest.mark.parametrize("data,msg", [
    (b"", "not an image"),
    (b"hello, I am text", "not an image"),
])
def test_bad_bytes_are_refused_clearly(data, msg):
    with pytest.raises(BadImageError, match=msg):
        open_image(data)


def test_tiny_and_huge_images_are_refused():
    with pytest.raises(BadImageError, match="too small"):
        open_image(_png_bytes(Image.new("RGB", (1, 1))))
    with pytest.raises(BadImageError, match="too large"):
        open_image(_png_bytes(Image.new("1", (20000, 20000))))
