"""Get the landmark dataset: download or copy, unpack safely, verify the ImageFolder layout."""

from __future__ import annotations

import http.client
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from search import config
from search.errors import DatasetError


def verify_layout(root: Path) -> dict[str, int]:
    """Check `root/{train,test}/<class>/<images>`; return image counts per split or raise DatasetError."""
    root = Path(root)
    counts = {}
    train_classes = None
    for split in config.SPLITS:
        d = root / split
        if not d.is_dir():
            raise DatasetError(f"{root} is not a landmark dataset: no '{split}' folder.")
        classes = sorted(p.name for p in d.iterdir() if p.is_dir())
        if not classes:
            raise DatasetError(f"{d} has no class folders.")
        if split == "train":
            train_classes = classes
        elif set(classes) - set(train_classes or []):
            raise DatasetError(f"{d} has classes missing from train: {sorted(set(classes) - set(train_classes))}")
        counts[split] = sum(1 for c in classes for f in (d / c).iterdir() if f.is_file())
    counts["classes"] = len(train_classes or [])
    return counts


def _find_root(folder: Path) -> Path:
    """The folder inside an unpacked archive that holds train/ and test/."""
    for cand in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        if (cand / "train").is_dir() and (cand / "test").is_dir():
            return cand
    raise DatasetError("The archive has no folder with train/ and test/ inside: is it the landmark zip?")


def _safe_extract(zip_path: Path, dest: Path) -> None:
    """Unzip, refusing members that would land outside `dest`."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            dest_resolved = dest.resolve()
            members = zf.infolist()
            for m in members:
                target = (dest / m.filename).resolve()
                if not target.is_relative_to(dest_resolved):
                    raise DatasetError(f"Refusing unsafe path in archive: {m.filename}")
            for m in tqdm(members, desc="unpacking", unit="file"):
                if "__MACOSX" not in m.filename:
                    zf.extract(m, dest)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{zip_path} is not a valid zip file ({exc}).") from exc


def _install(src_root: Path, out: Path) -> dict[str, int]:
    counts = verify_layout(src_root)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        shutil.rmtree(out)
    shutil.move(str(src_root), str(out))
    return counts


def from_zip(zip_path: Path, out: Path) -> dict[str, int]:
    """Unpack a local copy of the landmark zip into `out` (atomically)."""
    if not Path(zip_path).is_file():
        raise DatasetError(f"No such zip file: {zip_path}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".unpack-") as tmp:
        _safe_extract(Path(zip_path), Path(tmp))
        return _install(_find_root(Path(tmp)), out)


def from_dir(src: Path, out: Path) -> dict[str, int]:
    """Copy a local dataset folder into `out` (atomically)."""
    src, out = Path(src), Path(out)
    verify_layout(src)
    if src.resolve() == out.resolve():
        return verify_layout(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".copy-") as tmp:
        copy = Path(tmp) / "data"
        shutil.copytree(src, copy, ignore=shutil.ignore_patterns(".*", "README*"))
        return _install(copy, out)


def download(url: str, dest: Path) -> None:
    """Stream `url` to `dest` with a progress bar; fails with a DatasetError that says what to do.

    A connection that closes before Content-Length bytes arrived is an interrupted download, not a short file.
    """
    got, total = 0, None
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, open(dest, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="downloading") as bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except http.client.IncompleteRead as exc:
        got += len(exc.partial)
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
        raise DatasetError(
            f"Could not download {url} ({getattr(exc, 'reason', exc)}). Download it on a machine with "
            "internet access and run: python scripts/get_data.py --from-zip landmark_images.zip") from exc
    if total is not None and got < total:
        raise DatasetError(f"The download of {url} was interrupted ({got:,} of {total:,} bytes): nothing was "
                           "kept; run the same command again.")


def get_data(out: Path, url: str = config.DATASET_URL, zip_path: Path | None = None,
             src_dir: Path | None = None) -> dict[str, int]:
    """Make `out` a verified landmark dataset; a no-op when it already is one."""
    out = Path(out)
    try:
        return {**verify_layout(out), "already_present": 1}
    except DatasetError:
        pass
    if src_dir is not None:
        return from_dir(src_dir, out)
    if zip_path is not None:
        return from_zip(zip_path, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".download-") as tmp:
        z = Path(tmp) / "landmark_images.zip"
        download(url, z)
        return from_zip(z, out)
