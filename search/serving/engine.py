"""Everything a search needs, loaded once: encoders (one shared trunk), their indexes, and why any is missing."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from search import config
from search.errors import BadIndexError, LandmarkError
from search.index import GalleryIndex, index_path, load_index, read_manifest
from search.models.encoders import REGISTRY, Encoder, EncoderStore, spec
from search.photos.images import is_readable_jpeg, open_image
from search.retrieval.alignment import align_maps
from search.retrieval.confidence import hit_features
from search.retrieval.landmark_gaussians import landmark_space
from search.retrieval.rank import Searcher
from search.serving import gpu_calls
from search.serving.explain import Explanation, overlay


@dataclass(frozen=True)
class Hit:
    """One ranked result."""

    rank: int
    row: int
    path: str
    class_name: str
    distance: float
    thumbnail: Path
    p_same: float | None = None   # calibrated P(same landmark), to config.P_SAME_DECIMALS; None: not calibrated
    thumbnail_ok: bool = True     # False when the thumbnail file is missing or corrupt
    threshold: float = config.CONFIDENT_P_SAME  # the P at or above which this encoder calls a top hit a match
    near_identical: int = 0       # photos near-identical to this one folded into it (a private gallery's bursts)


@dataclass
class Backend:
    """One usable encoder with its verified index and searcher."""

    encoder: Encoder
    index: GalleryIndex
    searcher: Searcher
    model: str = ""  # the encoder's key for the GPU calls (gpu_calls.keep)

    def __post_init__(self):
        self.model = gpu_calls.keep(self.encoder)


def open_backend(store: EncoderStore, index_root: Path, name: str, encoder: Encoder | None = None) -> Backend:
    """Load encoder `name` with the trunk its index was built with (or use the loaded `encoder`), and the index,
    verified against it."""
    spec(name)
    path = index_path(index_root, name)
    manifest = read_manifest(path)
    encoder = encoder or store.load(name, trunk=manifest.get("trunk"))
    index = load_index(path, encoder)
    return Backend(encoder, index, Searcher(index.ranked_vectors, expansion=index.expansion))


class SearchEngine:
    """All available backends under an index root; unavailable encoders keep their reason.

    `encoders` (already loaded, e.g. shared with another engine) are used instead of loading new ones.
    """

    def __init__(self, index_root: Path = config.INDEX_DIR, checkpoint_dir: Path = config.CHECKPOINT_DIR,
                 weights: Path | None = None, names: Sequence[str] | None = None,
                 encoders: dict[str, Encoder] | None = None):
        self.index_root = Path(index_root)
        self.store = EncoderStore(checkpoint_dir, weights)
        self.backends: dict[str, Backend] = {}
        self.unavailable: dict[str, str] = {}
        for name in REGISTRY if names is None else names:  # None: every configured encoder
            try:
                self.backends[name] = open_backend(self.store, self.index_root, name, (encoders or {}).get(name))
            except LandmarkError as exc:
                self.unavailable[name] = str(exc)
        self._align_maps()

    def _align_maps(self) -> None:
        """Every loaded map turned, mirrored, scaled and shifted into one shared frame, once, as the indexes load
        (search/retrieval/alignment.py): a photo then sits in about the same place under every encoder unless that
        encoder moved it, and a query lands in that frame too. Whoever built the indexes, and whenever."""
        aligned = align_maps({n: b.index.coords for n, b in self.backends.items()},
                             {n: [it["path"] for it in b.index.items] for n, b in self.backends.items()})
        for name, b in self.backends.items():
            b.index = dataclasses.replace(b.index, coords=aligned[name])

    def backend(self, name: str) -> Backend:
        """The backend of `name`, or a clear error saying why it cannot be used."""
        if name in self.backends:
            return self.backends[name]
        if name in self.unavailable:
            raise LandmarkError(f"The {name} encoder is unavailable: {self.unavailable[name]}")
        raise LandmarkError(f"Unknown encoder {name!r}; choose one of {', '.join(REGISTRY)}.")

    def embed(self, name: str, image: Image.Image) -> np.ndarray:
        """One normalised RGB image -> its (D,) vector under encoder `name`."""
        return self.embed_many([name], image)[name]

    def embed_many(self, names: Sequence[str], image: Image.Image) -> dict[str, np.ndarray]:
        """One image under several encoders, running each shared trunk only once."""
        return self.embed_with_trunk(names, image)[0]

    def embed_with_trunk(self, names: Sequence[str], image: Image.Image
                         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One image under several encoders (each shared trunk run once, in one GPU call), and, for the trunk-based
        ones, the unit vector of the trunk's own features (the evidence an open-set confidence reads)."""
        keys = {n: self.backend(n).model for n in names}
        vectors, trunks = gpu_calls.embed_image(list(dict.fromkeys(keys.values())), image)
        return {n: vectors[k] for n, k in keys.items()}, {n: trunks[k] for n, k in keys.items() if k in trunks}

    def search_vector(self, name: str, vector: np.ndarray, k: int, trunk_vector: np.ndarray | None = None,
                      row: int | None = None) -> list[Hit]:
        """Ranked hits of an already-embedded query (`trunk_vector`: its trunk's unit vector; `row`: the gallery row
        it is, for a search from a gallery photo), each with its match confidence when the index has one."""
        b = self.backend(name)
        if int(k) < 1:
            raise LandmarkError(f"top-k must be at least 1 (got {k}).")
        k = min(int(k), config.TOP_K_MAX, len(b.index.items))
        conf = b.index.confidence
        depth = min(max(k, conf.k), len(b.index.items)) if conf is not None else k
        idx, dist = b.searcher.search(vector[None, :], depth)
        idx, dist = idx[:, :depth], dist[:, :depth]
        if conf is not None:
            p = self._confidence(b, vector, idx, dist, trunk_vector, row)[:k]
        elif b.index.calibration is not None:
            p = b.index.calibration(dist[0][:k])
        else:
            p = [None] * k
        threshold = conf.threshold if conf is not None else config.CONFIDENT_P_SAME
        hits = []
        for r, (i, d, pr) in enumerate(zip(idx[0][:k], dist[0][:k], p)):
            item, thumb = b.index.items[i], b.index.thumbnail_path(int(i))
            hits.append(Hit(r + 1, int(i), item["path"], item["class_name"], float(d), thumb,
                            None if pr is None else round(float(pr), config.P_SAME_DECIMALS),
                            is_readable_jpeg(thumb), threshold))
        return hits

    @staticmethod
    def _confidence(b: Backend, vector: np.ndarray, idx: np.ndarray, dist: np.ndarray,
                    trunk_vector: np.ndarray | None, row: int | None) -> np.ndarray:
        """P(same landmark) of each ranked hit of the query `vector` from the index's open-set confidence."""
        conf, index = b.index.confidence, b.index
        labels = np.array([[index.items[i]["class_id"] for i in idx[0]]])
        needs_trunk = conf.uses_trunk or (conf.uses_landmarks and index.landmarks.reads_trunk)
        if needs_trunk and trunk_vector is None and row is not None:
            trunk_vector = index.trunk_vectors[row]
        if needs_trunk and trunk_vector is None:
            raise LandmarkError(f"The {b.encoder.name} match confidence needs the query's trunk vector.")
        trunk_d = landmark_d = None
        if conf.uses_trunk:
            trunk_d = np.linalg.norm(index.trunk_vectors[idx[0]] - np.asarray(trunk_vector, np.float32), axis=1)[None]
        if conf.uses_landmarks:
            trunk = trunk_vector[None] if index.landmarks.reads_trunk else None
            landmark_d = index.landmarks.distances(landmark_space(vector[None], trunk), labels)
        return conf.ranked(hit_features(dist, labels, trunk_d, window=conf.k, landmark_distances=landmark_d))[0]

    def search(self, name: str, image: Image.Image, k: int) -> list[Hit]:
        """Ranked hits for a normalised RGB image."""
        vectors, trunks = self.embed_with_trunk([name], image)
        return self.search_vector(name, vectors[name], k, trunks.get(name))

    def similar_to(self, name: str, path: str, k: int) -> list[Hit]:
        """Ranked hits for a gallery photo, from the vector stored in the index (no re-encoding)."""
        index = self.backend(name).index
        row = index.row_of(path)
        return self.search_vector(name, index.embeddings[row], k, row=row)

    def gallery_photo(self, name: str, path: str) -> dict:
        """Metadata of a gallery photo (path, class, row, thumbnail) under encoder `name`."""
        index = self.backend(name).index
        row = index.row_of(path)
        return {**index.items[row], "row": row, "thumbnail": index.thumbnail_path(row)}

    def explain(self, name: str, query: Image.Image, path: str) -> tuple[Image.Image, Image.Image, Explanation]:
        """Heatmaps of what drives the similarity of `query` and the gallery photo at `path`, over both photos.

        The gallery side works from its thumbnail: a deployed app has the index, not the dataset.
        """
        backend = self.backend(name)
        thumb = self.gallery_photo(name, path)["thumbnail"]
        try:
            hit = open_image(thumb)
        except (LandmarkError, OSError) as exc:
            raise BadIndexError(f"The thumbnail of {path} is missing or corrupt ({exc}): rebuild the index with "
                              f"scripts/build_index.py --encoder {name}.") from exc
        exp = gpu_calls.similarity_maps(backend.model, query, hit)
        transform = backend.encoder.transform
        return overlay(query, exp.query_map, transform), overlay(hit, exp.hit_map, transform), exp
