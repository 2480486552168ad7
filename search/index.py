"""Per-encoder gallery indexes on disk: the format, loading with verification, recovery of an interrupted
swap, freshness. Building one is `search.indexing.runner` (reader -> encoder -> writer); writing one is
`search.indexing.writer`."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from search import config
from search.errors import BadIndexError
from search.models.encoders import Encoder
from search.photos.folders import fingerprint_files, gallery_items
from search.retrieval import expansion
from search.retrieval.calibration import Calibration
from search.retrieval.confidence import Confidence
from search.retrieval.expansion import QueryExpansion
from search.retrieval.landmark_gaussians import LandmarkGaussians
from search.storage import atomic_path, sha256_file, write_json

EMBEDDINGS, METADATA, COORDS = "embeddings.npy", "metadata.json", "tsne.npy"
AUGMENTED = "augmented.npy"  # the gallery as query expansion ranks it (an encoder with query_expansion only)
MANIFEST, EVAL = "manifest.json", "eval.json"
CHECKED_FILES = (EMBEDDINGS, METADATA, COORDS)
CONFIDENCE_FILES = ("file", "trunk_file", "landmarks_file")  # the confidence entry's files (each with its sha256)


def thumbs_dir(index_root: Path) -> Path:
    """The thumbnails store shared by every encoder's index under `index_root`."""
    return Path(index_root) / config.THUMBNAIL_DIRNAME


@dataclass
class GalleryIndex:
    """A loaded, verified index: vectors, per-image metadata, 2-D map, manifest."""

    path: Path
    manifest: dict
    embeddings: np.ndarray   # (N, D) float32, unit rows
    items: list[dict]        # path, class_id, class_name, split, thumb
    coords: np.ndarray       # (N, 2) float32
    calibration: Calibration | None = None   # distance -> P(same landmark), fitted by evaluate.py (closed set)
    confidence: Confidence | None = None     # hit features -> P(same landmark), fitted with landmarks left out
    trunk_vectors: np.ndarray | None = None  # (N, T) unit trunk vectors per row, when the confidence uses them
    expansion: QueryExpansion | None = None  # the query expansion its searches use (None: plain search)
    augmented: np.ndarray | None = None      # (N, D) the gallery as that expansion ranks it
    landmarks: LandmarkGaussians | None = None  # the gallery's landmarks as Gaussians, when the confidence reads them

    @property
    def ranked_vectors(self) -> np.ndarray:
        """The vectors a search ranks: the augmented gallery with query expansion, else the embeddings."""
        return self.embeddings if self.augmented is None else self.augmented

    def __post_init__(self) -> None:
        self._rows = {it["path"]: i for i, it in enumerate(self.items)}

    def holds(self, path: str) -> bool:
        """Whether the gallery photo at `path` (as in the metadata) is in this index."""
        return path in self._rows

    def row_of(self, path: str) -> int:
        """The row of the gallery photo at `path` (as in the metadata), or a clear error."""
        if path not in self._rows:
            raise BadIndexError(f"{path!r} is not a photo of the {self.encoder} gallery; use a path as the "
                              f"index metadata gives it (e.g. {self.items[0]['path']!r}).")
        return self._rows[path]

    @property
    def encoder(self) -> str:
        return self.manifest["encoder"]

    @property
    def thumbs(self) -> Path:
        return self.path.parent / self.manifest["thumbnails"]

    def thumbnail_path(self, i: int) -> Path:
        """Absolute path of gallery item i's thumbnail (always inside the thumbnails store)."""
        return self.thumbs / self.items[i]["thumb"]

    def eval_report(self) -> dict | None:
        """evaluate.py's saved metrics for this index, when present and for this very index."""
        path = self.path / EVAL
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return report if report.get("encoder_fingerprint") == self.manifest["encoder_fingerprint"] else None


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's own content (without this field), so any change to it is detected."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def index_path(index_root: Path, encoder: str) -> Path:
    return Path(index_root) / encoder


def read_manifest(index_dir: Path) -> dict:
    """The manifest of an index, or a clear error when there is none or it is unreadable."""
    path = Path(index_dir) / MANIFEST
    recover(Path(index_dir))
    if not path.is_file():
        raise BadIndexError(f"No index at {index_dir}: run scripts/build_index.py --encoder {Path(index_dir).name}.")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadIndexError(f"{path} is corrupt ({exc}): rebuild the index.") from exc
    if not isinstance(manifest, dict) or manifest.get("checksum") != manifest_checksum(manifest):
        raise BadIndexError(f"{path} is corrupt (its checksum does not match its content): rebuild the index.")
    if manifest.get("schema_version") != config.INDEX_SCHEMA_VERSION:
        raise BadIndexError(f"{index_dir} has index schema {manifest.get('schema_version')}, this code reads "
                          f"{config.INDEX_SCHEMA_VERSION}: rebuild the index.")
    return manifest


def load_index(index_dir: Path, encoder: Encoder | None = None) -> GalleryIndex:
    """Load and verify an index; refuse corruption or a mismatch with the encoder in use."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    rebuild = f"rebuild with scripts/build_index.py --encoder {manifest.get('encoder')}"
    for name in (*CHECKED_FILES, *((AUGMENTED,) if manifest.get("query_expansion") else ())):
        f = index_dir / name
        if not f.is_file() or sha256_file(f) != manifest["files"].get(name):
            raise BadIndexError(f"{f} is missing or corrupt (checksum mismatch): {rebuild}.")
    try:
        emb = np.load(index_dir / EMBEDDINGS, allow_pickle=False).astype(np.float32)
        coords = np.load(index_dir / COORDS, allow_pickle=False).astype(np.float32)
        items = json.loads((index_dir / METADATA).read_text())
    except (OSError, ValueError) as exc:
        raise BadIndexError(f"{index_dir} cannot be read ({exc}): {rebuild}.") from exc
    n, dim = manifest["count"], manifest["dim"]
    if emb.shape != (n, dim) or coords.shape != (n, 2) or len(items) != n:
        raise BadIndexError(f"{index_dir} has inconsistent shapes {emb.shape}, {coords.shape}, {len(items)} items "
                          f"for count {n} and dim {dim}: {rebuild}.")
    if encoder is not None:
        _check_encoder(index_dir, manifest, encoder, rebuild)
    conf, trunk, landmarks = _load_confidence(index_dir, manifest, items)
    qe, augmented = _load_expansion(index_dir, manifest, rebuild)
    index = GalleryIndex(index_dir, manifest, emb, items, coords, _load_calibration(index_dir, manifest, rebuild),
                         conf, trunk, qe, augmented, landmarks)
    missing = [it["thumb"] for it in items if not (index.thumbs / it["thumb"]).is_file()]
    if missing:
        raise BadIndexError(f"{len(missing)} thumbnails missing from {index.thumbs}: {rebuild}.")
    return index


def _load_expansion(index_dir: Path, manifest: dict, rebuild: str) -> tuple[QueryExpansion | None, np.ndarray | None]:
    """The query expansion an index was built with and its augmented gallery (none for an index without)."""
    if not manifest.get("query_expansion"):
        return None, None
    try:
        qe = expansion.from_dict(manifest["query_expansion"])
        augmented = np.load(index_dir / AUGMENTED, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise BadIndexError(f"The query expansion of {index_dir} cannot be read ({exc}): {rebuild}.") from exc
    if augmented.shape != (manifest["count"], manifest["dim"]):
        raise BadIndexError(f"{index_dir / AUGMENTED} has shape {augmented.shape}, not the index's: {rebuild}.")
    return qe, augmented


def _check_encoder(index_dir: Path, manifest: dict, encoder: Encoder, rebuild: str) -> None:
    """Refuse an index that another encoder, trunk or weights made."""
    if manifest["encoder"] != encoder.name:
        raise BadIndexError(f"{index_dir} is a {manifest['encoder']!r} index, not {encoder.name!r}.")
    if manifest.get("trunk") != encoder.trunk_name:
        raise BadIndexError(f"{index_dir} was built with trunk {manifest.get('trunk')}, but the encoder uses "
                          f"{encoder.trunk_name}: {rebuild} --trunk {encoder.trunk_name}.")
    if manifest["dim"] != encoder.dim:
        raise BadIndexError(f"{index_dir} holds {manifest['dim']}-d vectors but {encoder.label} makes "
                          f"{encoder.dim}-d: {rebuild}.")
    if manifest["encoder_fingerprint"] != encoder.fingerprint:
        raise BadIndexError(f"{index_dir} was built with weights {manifest['encoder_fingerprint']}, but "
                          f"{encoder.label} has weights {encoder.fingerprint}: {rebuild}.")


def _load_calibration(index_dir: Path, manifest: dict, rebuild: str) -> Calibration | None:
    """The index's confidence curve when evaluate.py has fitted one, verified against its manifest checksum."""
    entry = manifest.get("calibration")
    if not entry:
        return None
    f = index_dir / entry["file"]
    recal = f"re-run scripts/evaluate.py --encoder {manifest.get('encoder')}"
    if not f.is_file() or sha256_file(f) != entry["sha256"]:
        raise BadIndexError(f"{f} is missing or corrupt (checksum mismatch): {recal}.")
    try:
        cal = Calibration.from_dict(json.loads(f.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadIndexError(f"{f} cannot be read ({exc}): {recal}.") from exc
    if cal.encoder_fingerprint != manifest["encoder_fingerprint"]:
        raise BadIndexError(f"{f} was fitted for other weights: {recal}.")
    return cal


def _load_confidence(index_dir: Path, manifest: dict, items: list[dict]
                     ) -> tuple[Confidence | None, np.ndarray | None, LandmarkGaussians | None]:
    """The index's open-set confidence (and the trunk vectors and landmark Gaussians it reads) when evaluate.py has
    fitted one, verified against the manifest's checksums and this index's weights, size and landmarks."""
    entry = manifest.get("confidence")
    if not entry:
        return None, None, None
    redo = f"re-run scripts/evaluate.py --encoder {manifest.get('encoder')}"
    for key in CONFIDENCE_FILES:
        if entry.get(key):
            f = index_dir / entry[key]
            if not f.is_file() or sha256_file(f) != entry[key.replace("file", "sha256")]:
                raise BadIndexError(f"{f} is missing or corrupt (checksum mismatch): {redo}.")
    try:
        conf = Confidence.from_dict(json.loads((index_dir / entry["file"]).read_text()))
        trunk = (np.load(index_dir / entry["trunk_file"], allow_pickle=False).astype(np.float32)
                 if entry.get("trunk_file") else None)
        landmarks = None
        if entry.get("landmarks_file"):
            with np.load(index_dir / entry["landmarks_file"], allow_pickle=False) as arrays:
                landmarks = LandmarkGaussians.from_arrays(arrays)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadIndexError(f"The match confidence of {index_dir} cannot be read ({exc}): {redo}.") from exc
    if conf.encoder_fingerprint != manifest["encoder_fingerprint"]:
        raise BadIndexError(f"The match confidence of {index_dir} was fitted for other weights: {redo}.")
    if conf.uses_trunk and (trunk is None or trunk.ndim != 2 or trunk.shape[0] != manifest["count"]):
        raise BadIndexError(f"The match confidence of {index_dir} lacks the trunk vectors of its rows: {redo}.")
    if conf.uses_landmarks and (landmarks is None
                                or not {it["class_id"] for it in items} <= set(landmarks.classes.tolist())):
        raise BadIndexError(f"The match confidence of {index_dir} lacks the Gaussians of its landmarks: {redo}.")
    return conf, trunk, landmarks


def _save_addressed(folder: Path, prefix: str, suffix: str, content: bytes,
                    save: Callable[[BinaryIO], object] | None = None) -> str:
    """Write a file into `folder` atomically, named by a hash of `content` (so a changed fit never overwrites the
    file an old manifest names): `save` writes it, else `content` is its bytes. Its name."""
    name = f"{prefix}-{hashlib.sha256(content).hexdigest()[:12]}{suffix}"
    with atomic_path(folder / name) as tmp, open(tmp, "wb") as fh:
        if save is None:
            fh.write(content)
        else:
            save(fh)
    return name


def attach_confidence(index: GalleryIndex, conf: Confidence, trunk_vectors: np.ndarray | None = None,
                      landmarks: LandmarkGaussians | None = None) -> GalleryIndex:
    """Save an open-set confidence (and the per-row trunk vectors and the landmark Gaussians it reads) next to the
    index and name them, with their checksums, in the manifest; files first, then the manifest atomically, so a
    reader sees old or new."""
    entry = {"file": _save_addressed(index.path, "confidence", ".json", json.dumps(conf.to_dict(), indent=1).encode())}
    if trunk_vectors is not None:
        vectors = np.ascontiguousarray(trunk_vectors, dtype=np.float16)  # unit vectors: half the disk, same ranking
        entry["trunk_file"] = _save_addressed(index.path, "confidence-trunk", ".npy", vectors.tobytes(),
                                              lambda fh: np.save(fh, vectors, allow_pickle=False))
    if landmarks is not None:
        arrays = landmarks.to_arrays()
        content = b"".join(np.ascontiguousarray(v).tobytes() for v in arrays.values())
        entry["landmarks_file"] = _save_addressed(index.path, "confidence-landmarks", ".npz", content,
                                                  lambda fh: np.savez(fh, **arrays))
    for key in CONFIDENCE_FILES:
        if key in entry:
            entry[key.replace("file", "sha256")] = sha256_file(index.path / entry[key])
    manifest = {k: v for k, v in index.manifest.items() if k != "checksum"}
    old = manifest.get("confidence") or {}
    manifest["confidence"] = entry
    manifest["checksum"] = manifest_checksum(manifest)
    write_json(manifest, index.path / MANIFEST)
    for key in CONFIDENCE_FILES:
        if old.get(key) and old[key] != entry.get(key):
            (index.path / old[key]).unlink(missing_ok=True)
    index.manifest, index.confidence, index.landmarks = manifest, conf, landmarks
    index.trunk_vectors = None if trunk_vectors is None else np.asarray(trunk_vectors, np.float32)
    return index


def attach_calibration(index: GalleryIndex, cal: Calibration) -> GalleryIndex:
    """Save `cal` next to the index and record its checksum in the manifest; crash-safe at every step.

    The curve goes to a content-addressed file first, then the manifest is replaced atomically to name it,
    so a reader sees either the old pair or the new one.
    """
    name = _save_addressed(index.path, "calibration", ".json", json.dumps(cal.to_dict(), indent=1).encode())
    manifest = {k: v for k, v in index.manifest.items() if k != "checksum"}
    old = (manifest.get("calibration") or {}).get("file")
    manifest["calibration"] = {"file": name, "sha256": sha256_file(index.path / name)}
    manifest["checksum"] = manifest_checksum(manifest)
    write_json(manifest, index.path / MANIFEST)
    if old and old != name:
        (index.path / old).unlink(missing_ok=True)
    index.manifest, index.calibration = manifest, cal
    return index


def recover(final: Path) -> None:
    """Finish a swap that was interrupted between its two renames."""
    old = final.with_name(f".{final.name}.old")
    if not final.exists() and old.is_dir():
        os.replace(old, final)


def is_current(index_root: Path, encoder: Encoder, data_root: Path, split: str) -> bool:
    """Whether the index on disk was built by this very encoder from this very data."""
    try:
        manifest = read_manifest(index_path(index_root, encoder.name))
        _, pairs, recorded_split = gallery_items(data_root, split)
        items = [it for _, it in pairs]
    except Exception:
        return False
    return (manifest["encoder_fingerprint"] == encoder.fingerprint and manifest["split"] == recorded_split
            and manifest["dataset_fingerprint"] == fingerprint_files(data_root, items))


def examples_dir(index_root: Path) -> Path:
    """The folder of the example photos prepared next to the indexes."""
    return Path(index_root) / config.EXAMPLES_DIRNAME


def list_examples(index_root: Path) -> list[Path]:
    """The example photos prepared next to the indexes, if any."""
    d = examples_dir(index_root)
    return sorted(d.glob("*.jpg")) if d.is_dir() else []


def example_landmark(path: Path) -> str:
    """An example photo's landmark, from the name write_examples gives it ('Eiffel_Tower.jpg')."""
    return Path(path).stem.replace("_", " ")
