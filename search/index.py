"""Per-encoder gallery indexes on disk: build (reader -> encoder -> writer), verify, load."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from . import config
from .calibration import Calibration
from .data import display_name, find_classes, fingerprint_files, list_items, warn_bad
from .encoders import Encoder
from .errors import BadImageError, IndexError_
from .images import open_image, thumbnail
from .projection import tsne_2d
from .storage import atomic_path, sha256_file, write_json

EMBEDDINGS, METADATA, COORDS, MANIFEST, EVAL = "embeddings.npy", "metadata.json", "tsne.npy", "manifest.json", "eval.json"
CHECKED_FILES = (EMBEDDINGS, METADATA, COORDS)


def split_names(split: str) -> tuple[str, ...]:
    """'all' -> both splits; otherwise the one split."""
    return config.SPLITS if split == "all" else (split,)


def thumbs_dir(index_root: Path) -> Path:
    """The thumbnails store shared by every encoder's index under `index_root`."""
    return Path(index_root) / config.THUMBNAIL_DIRNAME


class GalleryImages(Dataset):
    """Reads gallery files: decodes, preprocesses, and writes each one's thumbnail (once, atomically)."""

    def __init__(self, paths: Sequence[Path], transform: Callable, thumbs: Path | None):
        self.paths, self.transform, self.thumbs = list(paths), transform, thumbs

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            data = Path(self.paths[i]).read_bytes()
            img = open_image(data)
            name = hashlib.sha256(data).hexdigest()[:24] + ".jpg"
            if self.thumbs is not None and not (self.thumbs / name).exists():
                with atomic_path(self.thumbs / name) as tmp:
                    thumbnail(img).save(tmp, format="JPEG", quality=config.THUMBNAIL_QUALITY)
            return i, self.transform(img), name, None
        except (BadImageError, OSError, ValueError) as exc:
            return i, None, None, f"{self.paths[i]}: {exc}"


def _collate(batch):
    good = [b for b in batch if b[1] is not None]
    return {"index": [b[0] for b in good], "image": torch.stack([b[1] for b in good]) if good else None,
            "thumb": [b[2] for b in good], "errors": [b[3] for b in batch if b[3] is not None]}


def encode_paths(encoder: Encoder, paths: Sequence[Path], thumbs: Path | None = None,
                 batch_size: int = config.ENCODE_BATCH_SIZE, workers: int | None = None,
                 desc: str = "encoding") -> tuple[np.ndarray, list[int], list[str]]:
    """Embed image files with DataLoader workers decoding ahead of the forward pass.

    Returns (embeddings of the decodable files, their positions in `paths`, their thumbnail names);
    undecodable files are skipped with a warning naming them.
    """
    workers = config.num_workers() if workers is None else workers
    loader = torch.utils.data.DataLoader(GalleryImages(paths, encoder.transform, thumbs), batch_size=batch_size,
                                         num_workers=workers, collate_fn=_collate)
    vecs, kept, names = [], [], []
    for batch in tqdm(loader, desc=desc, unit="batch"):
        warn_bad(batch["errors"])
        if batch["image"] is None:
            continue
        vecs.append(encoder.embed(batch["image"]).numpy())
        kept += batch["index"]
        names += batch["thumb"]
    emb = np.concatenate(vecs) if vecs else np.zeros((0, encoder.dim), np.float32)
    return emb, kept, names


@dataclass
class GalleryIndex:
    """A loaded, verified index: vectors, per-image metadata, 2-D map, manifest."""

    path: Path
    manifest: dict
    embeddings: np.ndarray   # (N, D) float32, unit rows
    items: list[dict]        # path, class_id, class_name, split, thumb
    coords: np.ndarray       # (N, 2) float32
    calibration: Calibration | None = None   # distance -> P(same landmark), fitted by evaluate.py

    def __post_init__(self) -> None:
        self._rows = {it["path"]: i for i, it in enumerate(self.items)}

    def row_of(self, path: str) -> int:
        """The row of the gallery photo at `path` (as in the metadata), or a clear error."""
        if path not in self._rows:
            raise IndexError_(f"{path!r} is not a photo of the {self.encoder} gallery; use a path as the "
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
    _recover(Path(index_dir))
    if not path.is_file():
        raise IndexError_(f"No index at {index_dir}: run scripts/build_index.py --encoder {Path(index_dir).name}.")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IndexError_(f"{path} is corrupt ({exc}): rebuild the index.") from exc
    if not isinstance(manifest, dict) or manifest.get("checksum") != manifest_checksum(manifest):
        raise IndexError_(f"{path} is corrupt (its checksum does not match its content): rebuild the index.")
    if manifest.get("schema_version") != config.INDEX_SCHEMA_VERSION:
        raise IndexError_(f"{index_dir} has index schema {manifest.get('schema_version')}, this code reads "
                          f"{config.INDEX_SCHEMA_VERSION}: rebuild the index.")
    return manifest


def load_index(index_dir: Path, encoder: Encoder | None = None) -> GalleryIndex:
    """Load and verify an index; refuse corruption or a mismatch with the encoder in use."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    rebuild = f"rebuild with scripts/build_index.py --encoder {manifest.get('encoder')}"
    for name in CHECKED_FILES:
        f = index_dir / name
        if not f.is_file() or sha256_file(f) != manifest["files"].get(name):
            raise IndexError_(f"{f} is missing or corrupt (checksum mismatch): {rebuild}.")
    try:
        emb = np.load(index_dir / EMBEDDINGS, allow_pickle=False).astype(np.float32)
        coords = np.load(index_dir / COORDS, allow_pickle=False).astype(np.float32)
        items = json.loads((index_dir / METADATA).read_text())
    except (OSError, ValueError) as exc:
        raise IndexError_(f"{index_dir} cannot be read ({exc}): {rebuild}.") from exc
    n, dim = manifest["count"], manifest["dim"]
    if emb.shape != (n, dim) or coords.shape != (n, 2) or len(items) != n:
        raise IndexError_(f"{index_dir} has inconsistent shapes {emb.shape}, {coords.shape}, {len(items)} items "
                          f"for count {n} and dim {dim}: {rebuild}.")
    if encoder is not None:
        if manifest["encoder"] != encoder.name:
            raise IndexError_(f"{index_dir} is a {manifest['encoder']!r} index, not {encoder.name!r}.")
        if manifest.get("trunk") != encoder.trunk_name:
            raise IndexError_(f"{index_dir} was built with trunk {manifest.get('trunk')}, but the encoder uses "
                              f"{encoder.trunk_name}: {rebuild} --trunk {encoder.trunk_name}.")
        if dim != encoder.dim:
            raise IndexError_(f"{index_dir} holds {dim}-d vectors but {encoder.label} makes {encoder.dim}-d: {rebuild}.")
        if manifest["encoder_fingerprint"] != encoder.fingerprint:
            raise IndexError_(f"{index_dir} was built with weights {manifest['encoder_fingerprint']}, but "
                              f"{encoder.label} has weights {encoder.fingerprint}: {rebuild}.")
    index = GalleryIndex(index_dir, manifest, emb, items, coords, _load_calibration(index_dir, manifest, rebuild))
    missing = [it["thumb"] for it in items if not (index.thumbs / it["thumb"]).is_file()]
    if missing:
        raise IndexError_(f"{len(missing)} thumbnails missing from {index.thumbs}: {rebuild}.")
    return index


def _load_calibration(index_dir: Path, manifest: dict, rebuild: str) -> Calibration | None:
    """The index's confidence curve when evaluate.py has fitted one, verified against its manifest checksum."""
    entry = manifest.get("calibration")
    if not entry:
        return None
    f = index_dir / entry["file"]
    recal = f"re-run scripts/evaluate.py --encoder {manifest.get('encoder')}"
    if not f.is_file() or sha256_file(f) != entry["sha256"]:
        raise IndexError_(f"{f} is missing or corrupt (checksum mismatch): {recal}.")
    try:
        cal = Calibration.from_dict(json.loads(f.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexError_(f"{f} cannot be read ({exc}): {recal}.") from exc
    if cal.encoder_fingerprint != manifest["encoder_fingerprint"]:
        raise IndexError_(f"{f} was fitted for other weights: {recal}.")
    return cal


def attach_calibration(index: GalleryIndex, cal: Calibration) -> GalleryIndex:
    """Save `cal` next to the index and record its checksum in the manifest; crash-safe at every step.

    The curve goes to a content-addressed file first, then the manifest is replaced atomically to name it,
    so a reader sees either the old pair or the new one.
    """
    body = json.dumps(cal.to_dict(), indent=1).encode()
    name = f"calibration-{hashlib.sha256(body).hexdigest()[:12]}.json"
    with atomic_path(index.path / name) as tmp:
        tmp.write_bytes(body)
    manifest = {k: v for k, v in index.manifest.items() if k != "checksum"}
    old = (manifest.get("calibration") or {}).get("file")
    manifest["calibration"] = {"file": name, "sha256": sha256_file(index.path / name)}
    manifest["checksum"] = manifest_checksum(manifest)
    write_json(manifest, index.path / MANIFEST)
    if old and old != name:
        (index.path / old).unlink(missing_ok=True)
    index.manifest, index.calibration = manifest, cal
    return index


def _remove_stale_temp_files(folder: Path, older_than_s: float = config.STALE_TEMP_SECONDS) -> None:
    """Delete temp files a killed writer left behind (old enough that no live writer still owns them)."""
    cutoff = time.time() - older_than_s
    for tmp in folder.glob(".*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except FileNotFoundError:
            pass


def _recover(final: Path) -> None:
    """Finish a swap that was interrupted between its two renames."""
    old = final.with_name(f".{final.name}.old")
    if not final.exists() and old.is_dir():
        os.replace(old, final)


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Replace the index directory `final` with `tmp`: the old one stays loadable until the new one is complete."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        _recover(final)
        shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def build_index(encoder: Encoder, data_root: Path, split: str, index_root: Path, float16: bool = False,
                batch_size: int = config.ENCODE_BATCH_SIZE, workers: int | None = None,
                tsne_cfg: config.TsneConfig = config.TsneConfig()) -> GalleryIndex:
    """Encode a dataset split into `index_root/<encoder>/` (+ shared thumbnails), atomically."""
    data_root, index_root = Path(data_root), Path(index_root)
    started = time.time()
    classes = find_classes(data_root)
    pairs = list_items(data_root, split_names(split), classes)
    if not pairs:
        raise IndexError_(f"No images found under {data_root} for split {split!r}.")
    thumbs = thumbs_dir(index_root)
    thumbs.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(thumbs)
    emb, kept, names = encode_paths(encoder, [p for p, _ in pairs], thumbs, batch_size, workers,
                                    desc=f"indexing {encoder.name}")
    if len(kept) == 0:
        raise IndexError_(f"None of the {len(pairs)} images under {data_root} could be decoded.")
    items = [{**asdict(pairs[i][1]), "thumb": name} for i, name in zip(kept, names)]
    coords = tsne_2d(emb, tsne_cfg)
    meta = {"split": split, "dataset_root": str(data_root), "skipped": len(pairs) - len(kept),
            "dataset_fingerprint": fingerprint_files(data_root, [p[1] for p in pairs]),
            "classes": [display_name(c) for c in classes], "class_folders": classes,
            "build_seconds": round(time.time() - started, 1)}
    return load_index(write_index(index_root, encoder, emb, items, coords, meta, float16), encoder)


def write_index(index_root: Path, encoder: Encoder, embeddings: np.ndarray, items: list[dict],
                coords: np.ndarray, meta: dict, float16: bool = False) -> Path:
    """Write arrays + metadata + manifest into a temp dir and swap it in as `index_root/<encoder>/`."""
    index_root = Path(index_root)
    final = index_path(index_root, encoder.name)
    for stale in index_root.glob(f".{encoder.name}.new-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=index_root, prefix=f".{encoder.name}.new-"))
    try:
        np.save(tmp / EMBEDDINGS, embeddings.astype(np.float16 if float16 else np.float32))
        np.save(tmp / COORDS, coords.astype(np.float32))
        (tmp / METADATA).write_text(json.dumps(items))
        manifest = {
            "schema_version": config.INDEX_SCHEMA_VERSION,
            "encoder": encoder.name, "label": encoder.label, "trunk": encoder.trunk_name,
            "encoder_fingerprint": encoder.fingerprint, "dim": int(embeddings.shape[1]), "count": int(len(items)),
            "dtype": "float16" if float16 else "float32", "thumbnails": config.THUMBNAIL_DIRNAME,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **meta,
            "files": {name: sha256_file(tmp / name) for name in CHECKED_FILES},
        }
        manifest["checksum"] = manifest_checksum(manifest)
        write_json(manifest, tmp / MANIFEST)
        _swap_into_place(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def is_current(index_root: Path, encoder: Encoder, data_root: Path, split: str) -> bool:
    """Whether the index on disk was built by this very encoder from this very data."""
    try:
        manifest = read_manifest(index_path(index_root, encoder.name))
        classes = find_classes(data_root)
        items = [it for _, it in list_items(data_root, split_names(split), classes)]
    except Exception:
        return False
    return (manifest["encoder_fingerprint"] == encoder.fingerprint and manifest["split"] == split
            and manifest["dataset_fingerprint"] == fingerprint_files(data_root, items))
