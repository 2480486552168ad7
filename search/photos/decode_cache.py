"""Each training photo decoded once: EXIF-rotated, resized so that no random crop of it needs upscaling to the
training size (`config.DecodeConfig`) and kept as a uint8 tensor in a cache that every epoch and every later run
reuses (augmentation then runs on the small tensors).

An entry is keyed by the photo (its absolute path, size and modification time: a second run opens no photo) and
the preprocessing, holds the sha256 of its pixels (a corrupt entry is refused and rebuilt) and is written
atomically (a killed build leaves no half-written entry)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from tqdm.auto import tqdm

from search import config
from search.errors import BadImageError
from search.photos.folders import warn_bad
from search.photos.images import open_image
from search.storage import photo_entry, save_torch, tensor_sha256

DECODES = {"count": 0}  # photos decoded by this process (tests count them)


@dataclass(frozen=True)
class Prep:
    """What an entry's pixels depend on besides the photo: its shorter side and the longest aspect kept."""

    short_side: int = config.DECODE.short_side
    max_aspect: float = config.DECODE.max_aspect
    version: int = 1  # bump when the decoding itself changes

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def small_photo(img, prep: Prep = Prep()) -> torch.Tensor:
    """A decoded photo as the cache keeps it: (3, H, W) uint8, shorter side `short_side` (antialiased), the longer
    side centre-cropped to at most `max_aspect` times it."""
    img = F.resize(img, prep.short_side, antialias=True)
    w, h = img.size
    long_max = int(prep.short_side * prep.max_aspect)
    if max(w, h) > long_max:
        img = F.center_crop(img, [min(h, long_max), min(w, long_max)])
    return F.pil_to_tensor(img)


class _Decode(Dataset):
    """Decode the photos missing from the cache, in DataLoader workers."""

    def __init__(self, paths: Sequence[Path], prep: Prep):
        self.paths, self.prep = list(paths), prep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            return {"i": i, "image": small_photo(open_image(self.paths[i]), self.prep), "error": None}
        except (BadImageError, OSError, ValueError) as exc:
            return {"i": i, "image": None, "error": f"{self.paths[i]}: {exc}"}


def _as_list(records: list) -> list:
    return records


class DecodeCache:
    """The decoded photos of one preprocessing, in a folder."""

    def __init__(self, folder: Path, prep: Prep = Prep()):
        self.folder, self.prep = Path(folder), prep

    def _read(self, file: Path) -> dict | None:
        """An entry ({"image"} or, for an undecodable photo, {"error"}), or None when it is missing or corrupt (a
        corrupt one is removed, to be rebuilt)."""
        if not file.is_file():
            return None
        try:
            entry = torch.load(file, weights_only=True)
            if entry["prep"] == self.prep.key() and tensor_sha256(entry["image"]) == entry["sha256"]:
                return entry
        except Exception:  # unreadable: refused like a checksum mismatch
            pass
        file.unlink(missing_ok=True)
        return None

    def _write(self, file: Path, image: torch.Tensor | None, error: str | None) -> None:
        pixels = image if image is not None else torch.empty(0, dtype=torch.uint8)
        save_torch({"prep": self.prep.key(), "sha256": tensor_sha256(pixels), "image": pixels, "error": error}, file)

    def load(self, paths: Sequence[Path], workers: int | None = None,
             desc: str = "decoding photos once") -> list[torch.Tensor | None]:
        """Every photo's cached pixels, decoding (and caching) the ones not there yet; None for an undecodable
        photo, which is warned about by name as any reader does."""
        files = [photo_entry(self.folder, p, self.prep.key()) for p in paths]
        found = [self._read(f) for f in files]
        warn_bad([e["error"] for e in found if e is not None and e.get("error")])
        out: list[torch.Tensor | None] = [e["image"] if e is not None and not e.get("error") else None for e in found]
        missing = [i for i, e in enumerate(found) if e is None]
        if not missing:
            return out
        workers = config.decode_workers() if workers is None else workers
        loader = DataLoader(_Decode([paths[i] for i in missing], self.prep), batch_size=16, num_workers=workers,
                            collate_fn=_as_list, generator=torch.Generator())  # leaves the global RNG be
        with tqdm(total=len(missing), desc=desc, unit="img") as bar:
            for records in loader:
                warn_bad([r["error"] for r in records if r["error"]])
                for r in records:
                    DECODES["count"] += 1
                    i = missing[r["i"]]
                    out[i] = r["image"]
                    self._write(files[i], r["image"], r["error"])  # an undecodable photo is remembered too
                bar.update(len(records))
        return out


class CachedPhotos(Dataset):
    """Decoded photos (uint8 tensors) with their targets as PhotoReader records, transformed on access."""

    def __init__(self, images: Sequence[torch.Tensor | None], targets: Sequence[int], transform: Callable,
                 names: Sequence[str] | None = None):
        self.images, self.targets, self.transform = list(images), list(targets), transform
        self.names = list(names) if names is not None else [str(i) for i in range(len(self.images))]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        img = self.images[i]
        if img is None:
            return {"index": i, "target": int(self.targets[i]), "image": None, "thumb_name": None,
                    "thumb_jpeg": None, "error": f"{self.names[i]}: could not be decoded"}
        return {"index": i, "target": int(self.targets[i]), "image": self.transform(img), "thumb_name": None,
                "thumb_jpeg": None, "error": None}


def decoded_transform(prep: Prep = Prep()) -> v2.Lambda:
    """What the cache does to a photo, as a transform on a decoded image (the uncached path to the same pixels)."""
    return v2.Lambda(lambda img: small_photo(img, prep))


def cache_dir_for(checkpoint_dir: Path) -> Path:
    """Where the decoded photos of a checkpoint folder's trainings live."""
    return Path(checkpoint_dir) / "cache" / "decoded"


def entries(folder: Path) -> list[Path]:
    """The cache's entry files (no temp file: those are not entries)."""
    return sorted(p for p in Path(folder).glob("*/*.pt") if not p.name.startswith("."))

