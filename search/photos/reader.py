"""The one photo reader of the offline flow, shared by training, indexing and evaluation (local and Ray).

It decodes each photo with the library's validation, preprocesses it for an encoder and, for index builds,
also returns the photo's content address and its thumbnail as JPEG bytes; it writes nothing. An undecodable
photo comes back with its error instead of raising, and batches leave it out (the caller warns, naming it).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from search import config
from search.errors import BadImageError
from search.photos.images import open_image, thumbnail


def thumbnail_name(data: bytes) -> str:
    """Content address of a photo's thumbnail: the same photo always maps to the same file."""
    return hashlib.sha256(data).hexdigest()[:24] + ".jpg"


def thumbnail_jpeg(img) -> bytes:
    """A photo's 256-px thumbnail as JPEG bytes."""
    buf = io.BytesIO()
    thumbnail(img).save(buf, format="JPEG", quality=config.THUMBNAIL_QUALITY)
    return buf.getvalue()


def read_photo(path: Path, transform: Callable | None, with_thumbnail: bool = False) -> dict[str, Any]:
    """One photo as a record: image (preprocessed), thumb_name and thumb_jpeg (when asked), or error."""
    try:
        data = Path(path).read_bytes()
        img = open_image(data)
        rec = {"image": transform(img) if transform else img, "error": None, "thumb_name": None, "thumb_jpeg": None}
        if with_thumbnail:
            rec["thumb_name"], rec["thumb_jpeg"] = thumbnail_name(data), thumbnail_jpeg(img)
        return rec
    except (BadImageError, OSError, ValueError) as exc:
        return {"image": None, "error": f"{path}: {exc}", "thumb_name": None, "thumb_jpeg": None}


class PhotoReader(Dataset):
    """(path, class id) samples -> records {index, image, target, thumb_name, thumb_jpeg, error}."""

    def __init__(self, samples: Sequence[tuple[Path | str, int]], transform: Callable | None,
                 thumbnails: bool = False):
        self.samples, self.transform, self.thumbnails = list(samples), transform, thumbnails

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, target = self.samples[i]
        return {"index": i, "target": int(target), **read_photo(Path(path), self.transform, self.thumbnails)}


def collate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the decodable records of a batch; keep the errors of the others."""
    good = [r for r in records if r["image"] is not None]
    return {
        "index": [r["index"] for r in good],
        "image": torch.stack([r["image"] for r in good]) if good else None,
        "target": torch.tensor([r["target"] for r in good], dtype=torch.long),
        "thumb_name": [r["thumb_name"] for r in good],
        "thumb_jpeg": [r["thumb_jpeg"] for r in good],
        "errors": [r["error"] for r in records if r["error"] is not None],
    }


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = False, workers: int | None = None,
                seed: int = config.SEED) -> DataLoader:
    """A DataLoader over a PhotoReader (or a Subset of one) that decodes in worker processes."""
    workers = config.decode_workers() if workers is None else workers
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, collate_fn=collate,
                      persistent_workers=False, generator=torch.Generator().manual_seed(seed))
