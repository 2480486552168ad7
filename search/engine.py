"""Everything a search needs, loaded once: encoders (one shared trunk), their indexes, and why any is missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from . import config
from .encoders import REGISTRY, Encoder, EncoderStore, embed_shared, group_by_input, spec
from .errors import IndexError_, LandmarkError
from .explain import Explanation, overlay, similarity_maps
from .gpu import gpu_task
from .images import is_readable_jpeg, open_image
from .index import GalleryIndex, index_path, load_index, read_manifest
from .rank import Searcher


@dataclass(frozen=True)
class Hit:
    """One ranked result."""

    rank: int
    row: int
    path: str
    class_name: str
    distance: float
    thumbnail: Path
    p_same: float | None = None   # calibrated P(same landmark); None when the index is not calibrated
    thumbnail_ok: bool = True     # False when the thumbnail file is missing or corrupt


@dataclass
class Backend:
    """One usable encoder with its verified index and searcher."""

    encoder: Encoder
    index: GalleryIndex
    searcher: Searcher


def open_backend(store: EncoderStore, index_root: Path, name: str, encoder: Encoder | None = None) -> Backend:
    """Load encoder `name` with the trunk its index was built with (or use the loaded `encoder`), and the index,
    verified against it."""
    spec(name)
    path = index_path(index_root, name)
    manifest = read_manifest(path)
    encoder = encoder or store.load(name, trunk=manifest.get("trunk"))
    index = load_index(path, encoder)
    return Backend(encoder, index, Searcher(index.embeddings))


class SearchEngine:
    """All available backends under an index root; unavailable encoders keep their reason.

    `encoders` (already loaded, e.g. shared with another engine) are used instead of loading new ones.
    """

    def __init__(self, index_root: Path = config.INDEX_DIR, checkpoint_dir: Path = config.CHECKPOINT_DIR,
                 weights: Path | None = None, names: tuple[str, ...] = tuple(REGISTRY),
                 encoders: dict[str, Encoder] | None = None):
        self.index_root = Path(index_root)
        self.store = EncoderStore(checkpoint_dir, weights)
        self.backends: dict[str, Backend] = {}
        self.unavailable: dict[str, str] = {}
        self._device = config.device()
        for name in names:
            try:
                self.backends[name] = open_backend(self.store, self.index_root, name, (encoders or {}).get(name))
            except LandmarkError as exc:
                self.unavailable[name] = str(exc)

    def backend(self, name: str) -> Backend:
        """The backend of `name`, or a clear error saying why it cannot be used."""
        if name in self.backends:
            return self.backends[name]
        if name in self.unavailable:
            raise LandmarkError(f"The {name} encoder is unavailable: {self.unavailable[name]}")
        raise LandmarkError(f"Unknown encoder {name!r}; choose one of {', '.join(REGISTRY)}.")

    def on_device(self) -> torch.device:
        """Move every loaded model to `config.device()` when that changed (on ZeroGPU: inside a GPU call)."""
        device = config.device()
        if device != self._device:
            for b in self.backends.values():
                b.encoder.to(device)
            self._device = device
        return device

    @gpu_task
    def embed(self, name: str, image: Image.Image) -> np.ndarray:
        """One normalised RGB image -> its (D,) vector under encoder `name`."""
        encoder = self.backend(name).encoder
        self.on_device()
        return encoder.encode([image])[0]

    @gpu_task
    def embed_many(self, names: Sequence[str], image: Image.Image) -> dict[str, np.ndarray]:
        """One image under several encoders, running each shared trunk only once."""
        self.on_device()
        out: dict[str, np.ndarray] = {}
        for encs in group_by_input([self.backend(n).encoder for n in names]):
            for enc, vec in zip(encs, embed_shared(encs, encs[0].transform(image)[None])):
                out[enc.name] = vec[0].numpy()
        return {n: out[n] for n in names}

    def search_vector(self, name: str, vector: np.ndarray, k: int) -> list[Hit]:
        """Ranked hits of an already-embedded query."""
        b = self.backend(name)
        if int(k) < 1:
            raise LandmarkError(f"top-k must be at least 1 (got {k}).")
        k = min(int(k), config.TOP_K_MAX, len(b.index.items))
        idx, dist = b.searcher.search(vector[None, :], k)
        cal = b.index.calibration
        p = cal(dist[0]) if cal is not None else [None] * len(dist[0])
        hits = []
        for r, (i, d, pr) in enumerate(zip(idx[0], dist[0], p)):
            item, thumb = b.index.items[i], b.index.thumbnail_path(int(i))
            hits.append(Hit(r + 1, int(i), item["path"], item["class_name"], float(d), thumb,
                            None if pr is None else float(pr), is_readable_jpeg(thumb)))
        return hits

    def search(self, name: str, image: Image.Image, k: int) -> list[Hit]:
        """Ranked hits for a normalised RGB image."""
        return self.search_vector(name, self.embed(name, image), k)

    def similar_to(self, name: str, path: str, k: int) -> list[Hit]:
        """Ranked hits for a gallery photo, from the vector stored in the index (no re-encoding)."""
        index = self.backend(name).index
        return self.search_vector(name, index.embeddings[index.row_of(path)], k)

    def gallery_photo(self, name: str, path: str) -> dict:
        """Metadata of a gallery photo (path, class, row, thumbnail) under encoder `name`."""
        index = self.backend(name).index
        row = index.row_of(path)
        return {**index.items[row], "row": row, "thumbnail": index.thumbnail_path(row)}

    @gpu_task
    def _similarity_maps(self, enc: Encoder, query: Image.Image, hit: Image.Image) -> Explanation:
        self.on_device()
        return similarity_maps(enc, query, hit)

    def explain(self, name: str, query: Image.Image, path: str) -> tuple[Image.Image, Image.Image, Explanation]:
        """Heatmaps of what drives the similarity of `query` and the gallery photo at `path`, over both photos.

        The gallery side works from its thumbnail: a deployed app has the index, not the dataset.
        """
        enc = self.backend(name).encoder
        thumb = self.gallery_photo(name, path)["thumbnail"]
        try:
            hit = open_image(thumb)
        except (LandmarkError, OSError) as exc:
            raise IndexError_(f"The thumbnail of {path} is missing or corrupt ({exc}): rebuild the index with "
                              f"scripts/build_index.py --encoder {name}.") from exc
        exp = self._similarity_maps(enc, query, hit)
        return overlay(query, exp.query_map, enc.transform), overlay(hit, exp.hit_map, enc.transform), exp
