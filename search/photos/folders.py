"""Dataset discovery and reading: ImageFolder splits, display names, undecodable-image handling."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision import datasets

from search import config
from search.errors import DatasetError
from search.photos.images import open_image


class UndecodableImageWarning(UserWarning):
    """A dataset image could not be decoded and was skipped."""


def display_name(folder: str) -> str:
    """'00.Haleakala_National_Park' -> 'Haleakala National Park'."""
    head, sep, tail = folder.partition(".")
    name = tail if sep and head.isdigit() else folder
    return name.replace("_", " ").strip()


def split_dir(root: Path, split: str) -> Path:
    """The folder of one split, or a DatasetError saying what is missing."""
    path = Path(root) / split
    if not path.is_dir():
        raise DatasetError(
            f"No '{split}' folder in {root}: expected {root}/{{train,test}}/<NN.Class_Name>/*.jpg "
            "(get it with scripts/get_data.py)."
        )
    return path


def find_classes(root: Path) -> list[str]:
    """Class folder names of the train split, sorted; the class list always comes from the data."""
    classes, _ = datasets.folder.find_classes(str(split_dir(root, "train")))
    return classes


class ClassFolder(datasets.ImageFolder):
    """torchvision's ImageFolder listing of one split, with the train split's class ids; reading the photos is
    `search.photos.reader.PhotoReader`'s job (it skips undecodable ones)."""

    def __init__(self, root: Path, classes: Sequence[str] | None = None):
        self._fixed_classes = list(classes) if classes is not None else None
        super().__init__(str(root), loader=open_image, is_valid_file=is_photo_name)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        """Use the train split's class list for every split so ids agree across splits."""
        if self._fixed_classes is None:
            return super().find_classes(directory)
        present = {p.name for p in Path(directory).iterdir() if p.is_dir()}
        unknown = present - set(self._fixed_classes)
        if unknown:
            raise DatasetError(f"{directory} has classes not in the train split: {sorted(unknown)}")
        return self._fixed_classes, {c: i for i, c in enumerate(self._fixed_classes)}

def warn_bad(errors: list[str]) -> None:
    """Emit one warning per skipped image, naming it."""
    for err in errors:
        warnings.warn(f"skipping undecodable image {err}", UndecodableImageWarning, stacklevel=2)


@dataclass(frozen=True)
class Item:
    """One gallery image's metadata."""

    path: str          # relative to the dataset root, POSIX separators
    class_id: int
    class_name: str    # display name
    split: str


def list_items(root: Path, splits: Sequence[str], classes: Sequence[str]) -> list[tuple[Path, Item]]:
    """Every image file of the given splits as (absolute path, metadata), in a stable order."""
    out: list[tuple[Path, Item]] = []
    for split in splits:
        out += _items(root, ClassFolder(split_dir(root, split), classes=classes).samples, classes, split)
    return out


def _items(root: Path, samples: Sequence[tuple[str, int]], classes: Sequence[str],
           split: str) -> list[tuple[Path, Item]]:
    """ImageFolder samples as (absolute path, metadata relative to `root`)."""
    return [(Path(p), Item(Path(p).relative_to(root).as_posix(), t, display_name(classes[t]), split))
            for p, t in samples]


GALLERY_SPLIT = "gallery"  # the split recorded for photos of a folder without train/ and test/


def split_names(split: str) -> tuple[str, ...]:
    """'all' -> both splits; otherwise the one split."""
    return config.SPLITS if split == "all" else (split,)


def is_photo_name(path: str | Path) -> bool:
    """A visible file with a photo extension (config.PHOTO_EXTENSIONS)."""
    p = Path(path)
    return not p.name.startswith(".") and p.suffix.lower() in config.PHOTO_EXTENSIONS


def _is_photo(p: Path) -> bool:
    return p.is_file() and is_photo_name(p)


def detect_layout(root: Path) -> str:
    """'splits' (train/ and test/ with class folders), 'classes' (class folders, no splits) or 'flat' (photos)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"No such folder: {root} (give a folder of photos, or get the landmark dataset with "
                           "scripts/get_data.py).")
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "splits"
    subdirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    if any(_is_photo(f) for d in subdirs for f in d.rglob("*")):
        return "classes"
    if any(_is_photo(f) for f in root.iterdir()):
        return "flat"
    raise DatasetError(f"No photos in {root}: give a folder of photos, of class sub-folders, or with train/ and test/.")


def gallery_items(root: Path, split: str) -> tuple[list[str], list[tuple[Path, Item]], str]:
    """The class folders, the photos and the split an index records, for any photo folder: the train/test layout
    (only `split` of it), class sub-folders without splits, or a flat folder of photos (one class named after
    the folder); the last two record the split 'gallery'."""
    root = Path(root)
    layout = detect_layout(root)
    if layout == "splits":
        classes = find_classes(root)
        return classes, list_items(root, split_names(split), classes), split
    if layout == "classes":
        classes, _ = datasets.folder.find_classes(str(root))
        classes = [c for c in classes if not c.startswith(".")]
        return classes, _items(root, ClassFolder(root, classes).samples, classes, GALLERY_SPLIT), GALLERY_SPLIT
    name = root.resolve().name or "photos"
    photos = sorted(str(f) for f in root.iterdir() if _is_photo(f))
    return [name], _items(root, [(f, 0) for f in photos], [name], GALLERY_SPLIT), GALLERY_SPLIT


def stratified_split(targets: Sequence[int], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation indices held out per class, seeded."""
    # only to split: the app and Ray workers skip its second of import
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(targets))
    targets = np.asarray(targets)
    counts = np.bincount(targets)
    stratify = targets if counts[counts > 0].min() >= 2 else None
    n_val = max(int(round(len(idx) * val_fraction)), len(set(targets.tolist())) if stratify is not None else 1)
    train_idx, val_idx = train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)


def fingerprint_files(root: Path, items: Sequence[Item]) -> str:
    """A hash of the gallery's relative paths and file sizes: cheap, changes when the data does."""
    h = hashlib.sha256()
    for it in items:
        h.update(it.path.encode())
        h.update(str((Path(root) / it.path).stat().st_size).encode())
    return h.hexdigest()[:16]
