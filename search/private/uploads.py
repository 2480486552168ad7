"""A visitor's upload (photos, and zips whose sub-folders name groups) unpacked into a gallery folder: checked
in full before anything is written, written into a staging folder and renamed into place, or nothing at all."""

from __future__ import annotations

import re
import shutil
import stat
import uuid
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from search import config
from search.errors import LandmarkError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
UNGROUPED = "ungrouped"  # the group of loose photos uploaded next to a zip with sub-folders
MB = 1024 * 1024


class UploadError(LandmarkError):
    """An upload that cannot become a gallery; the message says why and what to upload instead."""


@dataclass(frozen=True)
class Photo:
    """One photo to unpack: a loose file, or a member of a zip."""

    source: Path
    member: zipfile.ZipInfo | None
    folders: tuple[str, ...]  # folders it sits in inside its zip
    name: str


@dataclass(frozen=True)
class Unpacked:
    """What an upload became: the gallery folder, its photo count, its groups (sub-folders) and skipped files."""

    root: Path
    photos: int
    groups: tuple[str, ...]
    ignored: int


def _mb(n: int) -> str:
    return f"{n / MB:,.0f} MB"


def _member_folders(zip_name: str, info: zipfile.ZipInfo) -> tuple[str, ...] | None:
    """The folders of a zip member, after refusing members that could write outside the gallery folder;
    None for members that are not content (folders, macOS metadata, hidden files)."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise UploadError(f"{zip_name} has a member that points outside the archive ({info.filename}): nothing "
                          "was unpacked. Zip the photos again from their folder.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UploadError(f"{zip_name} holds a symbolic link ({info.filename}): nothing was unpacked. Zip the "
                          "photos themselves, not links to them.")
    if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return None
    return tuple(parts[:-1])


def _zip_photos(path: Path, limits: config.MyGalleryLimits) -> tuple[list[Photo], int]:
    """The photos of one zip, after checking every member; and how many other files it holds."""
    label = path.name
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadError(f"{label} is not a readable zip ({exc}).") from exc
    photos, ignored, unpacked = [], 0, 0
    for info in infos:
        folders = _member_folders(label, info)
        if folders is None:
            continue
        suffix = PurePosixPath(info.filename).suffix.lower()
        if suffix in ARCHIVE_SUFFIXES:
            raise UploadError(f"{label} holds another archive ({info.filename}): archives inside archives are not "
                              "unpacked. Upload the inner zip itself, or its photos.")
        if suffix not in config.PHOTO_EXTENSIONS:
            ignored += 1
            continue
        unpacked += info.file_size
        if info.file_size > MB and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise UploadError(f"{label} looks like a zip bomb: {info.filename} would unpack to "
                              f"{_mb(info.file_size)} from {info.compress_size:,} bytes. Nothing was unpacked.")
        photos.append(Photo(path, info, folders, PurePosixPath(info.filename).name))
    if unpacked > limits.max_unpacked_bytes:
        raise UploadError(f"{label} would unpack to {_mb(unpacked)}, over the cap of "
                          f"{_mb(limits.max_unpacked_bytes)} (a zip bomb, or too many photos): nothing was unpacked.")
    return photos, ignored


def _strip_common_root(photos: list[Photo]) -> list[Photo]:
    """Drop folders every photo shares ('trip/paris/a.jpg', 'trip/rome/b.jpg' -> groups paris and rome)."""
    while photos and all(p.folders for p in photos) and len({p.folders[0] for p in photos}) == 1:
        photos = [Photo(p.source, p.member, p.folders[1:], p.name) for p in photos]
    return photos


def _safe(name: str, limit: int = 80) -> str:
    """A file or folder name that is one harmless path component."""
    cleaned = re.sub(r"[^\w.\- ]+", "_", name).strip(" .")[:limit]
    return cleaned or "photo"


def _unique(folder: Path, name: str) -> Path:
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    target, n = folder / f"{_safe(stem)}{suffix}", 1
    while target.exists():
        n += 1
        target = folder / f"{_safe(stem)}-{n}{suffix}"
    return target


def _copy(photo: Photo, target: Path, zips: dict[Path, zipfile.ZipFile]) -> int:
    """Write one photo; its bytes written.

    A zip member never unpacks to more than it declares: zipfile stops reading a member at its declared size, and a
    member whose data goes on past it fails the CRC check (BadZipFile), which `unpack` turns into one message. So
    the declared sizes, capped in `_zip_photos` before anything is written, bound what is written."""
    if photo.member is None:
        shutil.copyfile(photo.source, target)
        return target.stat().st_size
    if photo.source not in zips:  # each zip is opened once for all its members
        zips[photo.source] = zipfile.ZipFile(photo.source)
    with zips[photo.source].open(photo.member) as src, open(target, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return target.stat().st_size


def plan(files: Sequence[Path | str], limits: config.MyGalleryLimits = config.MY_GALLERY) -> tuple[list[Photo], int]:
    """Every photo an upload holds, checked against the caps and the zip rules; and how many files were skipped."""
    paths = [Path(f) for f in files if f]
    if not paths:
        raise UploadError("Choose some photos, or a zip of them, first.")
    total = sum(p.stat().st_size for p in paths)
    if total > limits.max_upload_bytes:
        raise UploadError(f"The upload is {_mb(total)}; the cap is {_mb(limits.max_upload_bytes)}.")
    photos: list[Photo] = []
    ignored = 0
    for path in paths:
        suffix = path.suffix.lower()
        if suffix == ".zip" or (suffix not in config.PHOTO_EXTENSIONS and zipfile.is_zipfile(path)):
            found, skipped = _zip_photos(path, limits)
            photos += _strip_common_root(found)
            ignored += skipped
        elif suffix in ARCHIVE_SUFFIXES:
            raise UploadError(f"{path.name}: only zip archives can be unpacked; zip the photos instead.")
        elif suffix in config.PHOTO_EXTENSIONS:
            photos.append(Photo(path, None, (), path.name))
        else:
            ignored += 1
    if not photos:
        raise UploadError("No photos in the upload: give JPEG, PNG, WebP, HEIC or AVIF photos, or a zip of them "
                          f"(extensions: {' '.join(config.PHOTO_EXTENSIONS)}).")
    if len(photos) > limits.max_photos:
        raise UploadError(f"The upload holds {len(photos):,} photos; a gallery takes at most {limits.max_photos:,}.")
    return photos, ignored


def unpack(files: Sequence[Path | str], dest: Path,
           limits: config.MyGalleryLimits = config.MY_GALLERY) -> Unpacked:
    """The photos of an upload in `dest` (a flat folder, or one sub-folder per group), all or nothing."""
    photos, ignored = plan(files, limits)
    grouped = any(p.folders for p in photos)
    dest = Path(dest)
    staging = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir(parents=True)
    zips: dict[Path, zipfile.ZipFile] = {}
    try:
        for photo in photos:
            folder = staging / _safe(photo.folders[0] if photo.folders else UNGROUPED) if grouped else staging
            folder.mkdir(exist_ok=True)
            _copy(photo, _unique(folder, photo.name), zips)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UploadError(f"A zip could not be unpacked ({exc}): nothing was kept.") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        for zf in zips.values():
            zf.close()
    groups = tuple(sorted(d.name for d in dest.iterdir() if d.is_dir())) if grouped else ()
    return Unpacked(dest, len(photos), groups, ignored)


def discard(files: Sequence[Path | str], upload_dir: Path) -> int:
    """Delete the uploaded copies of an upload that live in the web framework's upload folder (never anything
    outside it); how many were deleted."""
    root, n = Path(upload_dir).resolve(), 0
    for f in files:
        path = Path(f).resolve()
        if root not in path.parents or not path.is_file():
            continue
        path.unlink()
        n += 1
        try:
            path.parent.rmdir()  # Gradio keeps each upload in a folder of its own
        except OSError:
            pass
    return n
