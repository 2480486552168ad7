"""Your photos, the library side: unpacking uploads (groups, caps, hostile zips), phone formats, private galleries."""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search import config
from search.photos.images import open_image
from search.private.uploads import UploadError, plan, unpack
from tests.conftest import synthetic_image

LIMITS = config.MyGalleryLimits(max_photos=6, max_upload_bytes=8 * 2**20, max_unpacked_bytes=4 * 2**20)


def _jpeg(class_id: int = 0, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    synthetic_image(class_id, np.random.default_rng(seed)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_loose_photos_unpack_flat(tmp_path):
    files = []
    for i in range(3):
        files.append(tmp_path / f"IMG {i}.jpg")
        files[-1].write_bytes(_jpeg(seed=i))
    (tmp_path / "notes.txt").write_text("not a photo")
    out = unpack([*files, tmp_path / "notes.txt"], tmp_path / "s" / "photos", LIMITS)
    assert (out.photos, out.groups, out.ignored) == (3, (), 1)
    assert _tree(out.root) == ["IMG 0.jpg", "IMG 1.jpg", "IMG 2.jpg"]


def test_zip_sub_folders_are_groups_under_a_common_root(tmp_path):
    z = _zip(tmp_path / "trip.zip", {"trip/paris/a.jpg": _jpeg(0, 1), "trip/paris/b.JPG": _jpeg(0, 2),
                                     "trip/rome/a.jpg": _jpeg(1, 3), "__MACOSX/trip/._a.jpg": b"junk",
                                     "trip/.DS_Store": b"junk"})
    loose = tmp_path / "extra.png"
    Image.open(io.BytesIO(_jpeg(2, 4))).save(loose)
    out = unpack([z, loose], tmp_path / "s" / "photos", LIMITS)
    assert out.groups == ("paris", "rome", "ungrouped") and out.photos == 4
    assert _tree(out.root) == ["paris", "paris/a.jpg", "paris/b.jpg", "rome", "rome/a.jpg", "ungrouped",
                               "ungrouped/extra.png"]
    assert (out.root / "rome" / "a.jpg").read_bytes() == _jpeg(1, 3)


def _bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("huge.jpg", b"\xff\xd8\xff" + bytes(200 * 2**20))  # 200 MB of zeros: ~200 KB zipped
    return path


BAD_ZIPS = {
    "traversal": (lambda p: _zip(p, {"ok.jpg": _jpeg(), "../../evil.jpg": _jpeg()}), "points outside the archive"),
    "absolute": (lambda p: _zip(p, {"/etc/evil.jpg": _jpeg()}), "points outside the archive"),
    "symlink": (lambda p: _zip(p, {"ok.jpg": _jpeg()}, {"link.jpg": "/etc/passwd"}), "symbolic link"),
    "bomb": (_bomb, "zip bomb"),
    "nested": (lambda p: _zip(p, {"ok.jpg": _jpeg(), "inner.zip": _zip(p.with_suffix(".in"), {"a.jpg": _jpeg()})
                                  .read_bytes()}), "another archive"),
    "no photos": (lambda p: _zip(p, {"readme.txt": b"hello", "data/x.csv": b"1,2"}), "No photos in the upload"),
    "too many": (lambda p: _zip(p, {f"{i}.jpg": _jpeg(seed=i) for i in range(7)}), "at most 6"),
    "not a zip": (lambda p: (p.write_bytes(b"PK\x03\x04 truncated"), p)[1], "not a readable zip"),
}


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_each_bad_zip_gets_its_message_and_nothing_is_written(tmp_path, case):
    make, message = BAD_ZIPS[case]
    upload = tmp_path / "upload"
    upload.mkdir()
    z = make(upload / "photos.zip")
    session = tmp_path / "session"
    session.mkdir()
    before = _tree(tmp_path)
    with pytest.raises(UploadError, match=message):
        unpack([z], session / "photos", LIMITS)
    assert _tree(tmp_path) == before  # not in the session folder, not beside it, not where '../' points
    assert not (tmp_path.parent / "evil.jpg").exists()


def test_upload_over_the_byte_cap_is_refused_before_reading(tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + bytes(9 * 2**20))
    with pytest.raises(UploadError, match="the cap is 8 MB"):
        plan([big], LIMITS)


def _lying_zip(path: Path, declared: int, fix_crc: bool) -> Path:
    """A zip whose one member declares `declared` bytes while its deflated stream holds 3 MB (optionally with the
    CRC of what the declared size covers, so that only the size lies)."""
    content = bytes(range(256)) * (3 * 2**20 // 256)
    z = _zip(path, {"a.jpg": content})
    data = bytearray(z.read_bytes())
    with zipfile.ZipFile(z) as zf:
        info = zf.infolist()[0]
    pairs = [(info.file_size.to_bytes(4, "little"), declared.to_bytes(4, "little"))]
    if fix_crc:
        pairs.append((info.CRC.to_bytes(4, "little"), zlib.crc32(content[:declared]).to_bytes(4, "little")))
    for real, lie in pairs:
        assert data.count(real) == 2  # local header and central directory
        data = bytearray(bytes(data).replace(real, lie))
    z.write_bytes(bytes(data))
    return z


def test_a_member_that_unpacks_to_more_than_it_declares_is_refused_by_its_crc(tmp_path):
    z = _lying_zip(tmp_path / "lie.zip", 1000, fix_crc=False)
    session = tmp_path / "session"
    session.mkdir()
    with pytest.raises(UploadError, match=r"A zip could not be unpacked \(Bad CRC-32 for file 'a.jpg'\): nothing was "
                                          r"kept"):
        unpack([z], session / "photos", LIMITS)
    assert _tree(session) == []


def test_a_member_lying_about_its_size_never_writes_more_than_it_declares(tmp_path):
    """Even with a CRC that matches the declared part, the 3 MB stream writes only the 1,000 bytes it declared: the
    declared sizes, capped before unpacking, bound the disk a zip can take."""
    z = _lying_zip(tmp_path / "lie.zip", 1000, fix_crc=True)
    out = unpack([z], tmp_path / "session" / "photos", LIMITS)
    assert (out.root / "a.jpg").stat().st_size == 1000


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_phone_photos_decode_upright_with_their_exif_rotation(tmp_path, fmt):
    img = Image.new("RGB", (120, 60), (200, 20, 20))
    img.paste((20, 20, 200), (0, 0, 30, 60))  # blue on the left; EXIF 6 (rotate 90 CW) puts it on top
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / f"phone.{fmt.lower()}"
    img.save(path, format=fmt, exif=exif.tobytes(), quality=90)
    out = open_image(path)
    assert out.size == (60, 120)
    top, bottom = np.asarray(out)[5, 30].astype(int), np.asarray(out)[-5, 30].astype(int)
    assert top[2] > 150 > top[0] and bottom[0] > 150 > bottom[2]


def test_a_private_gallery_is_built_searched_expired_and_removed(tmp_path, trained):
    """HEIC and AVIF photos in a zip with two groups: indexed, searchable, removed after the time limit."""
    from search.models.encoders import EncoderStore
    from search.models.trunks import OFFLINE_TRUNK
    from search.private.galleries import PrivateGalleries

    members = {}
    for i in range(3):
        for cid, group in ((0, "reds"), (2, "greens")):
            buf = io.BytesIO()
            synthetic_image(cid, np.random.default_rng(100 + i)).save(buf, format="HEIF" if i % 2 else "AVIF")
            members[f"{group}/{group}-{i}.{'heic' if i % 2 else 'avif'}"] = buf.getvalue()
    query = open_image(members["greens/greens-1.heic"])
    z = _zip(tmp_path / "phone.zip", members)
    store = EncoderStore(trained)
    encoders = {n: store.load(n, trunk=OFFLINE_TRUNK) for n in ("scratch", "pretrained")}
    galleries = PrivateGalleries(tmp_path / "sessions", lambda: encoders,
                                 config.MyGalleryLimits(ttl_seconds=60))
    steps = []
    g = galleries.build("visitor-1", [z], lambda f, what: steps.append((f, what)))
    assert g.photos == 6 and g.groups == ("greens", "reds") and set(g.engine.backends) == {"scratch", "pretrained"}
    whats = [w for _, w in steps]
    assert whats[0] == "unpacking the upload" and whats[-1] == "pretrained: t-SNE map"
    assert "scratch: 6/6 photos" in whats and "scratch: t-SNE map" in whats
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] < 1
    assert [p.name for p in g.folder.iterdir()] == ["index"]  # the originals are gone: thumbnails serve the app
    hits = g.engine.search("pretrained", query, 3)
    assert hits[0].path == "greens/greens-1.heic" and hits[0].class_name == "greens"
    assert galleries.owner_of(g.folder / "index" / "thumbnails" / "x.jpg") == "visitor-1"
    galleries.sweep(now=g.last_used + 59)
    assert galleries.get(g.token) is g and g.folder.is_dir()
    galleries.sweep(now=g.last_used + 61)
    assert galleries.get(g.token) is None and not g.folder.exists() and galleries.owner_of(g.folder) is None
