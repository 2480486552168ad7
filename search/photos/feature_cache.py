"""A trunk's pooled features of each photo, kept once computed: the transfer head's training computes them for
the train photos, and the pretrained and transfer index builds then read them instead of running the trunk again.

Like the decode cache, an entry is keyed by the photo (absolute path, size, modification time) and by what made the
features (the trunk's name and weights fingerprint), holds its own checksum and is written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from search.storage import photo_entry, save_torch, tensor_sha256


def feature_cache_for(checkpoint_dir: Path, trunk) -> FeatureCache:
    """The feature cache of a checkpoint folder's trunk (where the transfer head's training keeps them)."""
    return FeatureCache(Path(checkpoint_dir) / "cache" / "trunk-features", trunk.name, trunk.fingerprint)


class FeatureCache:
    """Pooled trunk features per photo, for one trunk, in a folder."""

    def __init__(self, folder: Path, trunk_name: str, trunk_fingerprint: str):
        self.folder, self.tag = Path(folder), f"{trunk_name}|{trunk_fingerprint}"

    def holds_trunk(self, trunk) -> bool:
        """Whether these are that trunk's features (its name and weights)."""
        return self.tag == f"{trunk.name}|{trunk.fingerprint}"

    def put(self, paths: Sequence[Path], features: torch.Tensor) -> None:
        """Keep each photo's features (rows of `features`, in `paths` order)."""
        for path, row in zip(paths, features):
            row = row.detach().float().cpu().clone()
            save_torch({"tag": self.tag, "sha256": tensor_sha256(row), "features": row},
                       photo_entry(self.folder, Path(path), self.tag))

    def get(self, paths: Sequence[Path]) -> torch.Tensor | None:
        """The features of every photo, stacked in `paths` order; None unless all are there and intact."""
        rows = []
        for path in paths:
            file = photo_entry(self.folder, Path(path), self.tag)
            try:
                entry = torch.load(file, weights_only=True)
            except Exception:  # missing or unreadable
                return None
            if entry.get("tag") != self.tag or tensor_sha256(entry["features"]) != entry.get("sha256"):
                return None
            rows.append(entry["features"])
        return torch.stack(rows) if rows else None
