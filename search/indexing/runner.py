"""The runner of the offline flow: reader -> encoder -> writer, on the local engine (a DataLoader in this
process) or on Ray Data (`search.indexing.ray_engine`), timing each stage into the manifest."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from search import config
from search.errors import DatasetError, LandmarkError
from search.index import GalleryIndex, load_index, thumbs_dir
from search.indexing.encode_stage import Encoded, Vectors, encode_shared
from search.indexing.ray_engine import encode_ray
from search.indexing.writer import IndexArrays, remove_stale_temp_files, write_index
from search.models.encoders import Encoder, group_by_input
from search.photos.folders import display_name, fingerprint_files, gallery_items
from search.retrieval import expansion
from search.retrieval.projection import tsne_2d

ENGINES = config.INDEX_ENGINES
Progress = Callable[[float, str], None]  # (fraction of the build done, what is happening)


@dataclass(frozen=True)
class Listing:
    """The photos of one build: where they are, the classes, (path, item) pairs, and the split recorded."""

    data_root: Path
    classes: list[str]
    pairs: list
    split: str

    @property
    def paths(self) -> list[Path]:
        return [p for p, _ in self.pairs]


def _listing(data_root: Path, split: str, index_root: Path) -> tuple[Listing, Path]:
    """The photos to index and the thumbnails folder, made ready."""
    classes, pairs, recorded_split = gallery_items(data_root, split)
    if not pairs:
        raise DatasetError(f"No images found under {data_root} for split {split!r}.")
    thumbs = thumbs_dir(index_root)
    thumbs.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(thumbs)
    return Listing(Path(data_root), classes, pairs, recorded_split), thumbs


def _write(encoder: Encoder, enc: Encoded, listing: Listing, index_root: Path, seconds: float,
           cfg: config.BuildConfig) -> GalleryIndex:
    """The map stage and the writer: t-SNE, metadata, manifest, atomic swap; the index loaded back."""
    pairs = listing.pairs
    if len(enc.kept) == 0:
        raise DatasetError(f"None of the {len(pairs)} images under {listing.data_root} could be decoded.")
    items = [{**asdict(pairs[i][1]), "thumb": name} for i, name in zip(enc.kept, enc.thumbs)]
    t = time.perf_counter()
    qe = expansion.from_dict(encoder.expansion)
    augmented = qe.augment(enc.embeddings) if qe else None  # what a search with query expansion ranks
    coords = tsne_2d(enc.embeddings if augmented is None else augmented, cfg.tsne)
    stages = {**enc.stages, "map": time.perf_counter() - t}
    meta = {"split": listing.split, "dataset_root": str(listing.data_root), "skipped": len(pairs) - len(enc.kept),
            "dataset_fingerprint": fingerprint_files(listing.data_root, [p[1] for p in pairs]),
            "classes": [display_name(c) for c in listing.classes], "class_folders": listing.classes,
            "build_seconds": round(seconds + stages["map"], 1),
            "build": {"engine": cfg.engine, "stage_seconds": {k: round(v, 2) for k, v in stages.items()}}}
    if qe:
        meta["query_expansion"] = qe.to_dict()
    arrays = IndexArrays(enc.embeddings, coords, augmented)
    return load_index(write_index(index_root, encoder, arrays, items, meta, cfg.float16), encoder)


def build_indexes(encoders: Sequence[Encoder], data_root: Path, split: str, index_root: Path,
                  cfg: config.BuildConfig = config.BuildConfig(), progress: Progress | None = None,
                  vectors: Vectors = Vectors()) -> dict[str, GalleryIndex]:
    """Several encoders' indexes of one photo folder on the local engine, each photo read once per trunk and each
    trunk run once (pretrained and transfer share one pass; none when `vectors.features` holds the trunk's features
    of every photo); `vectors.embed` runs a batch (in this process, or through the GPU calls);
    `progress(fraction, what)` follows every photo."""
    cfg = dataclasses.replace(cfg, engine="local")
    index_root = Path(index_root)
    listing, thumbs = _listing(Path(data_root), split, index_root)
    paths = listing.paths
    groups = group_by_input(encoders)
    units = len(groups) * len(paths) + len(encoders) * max(1, len(paths) // 10)  # a map costs ~ a tenth of a pass
    done = 0
    report = progress or (lambda fraction, what: None)
    indexes: dict[str, GalleryIndex] = {}
    for group in groups:
        started, label = time.time(), " + ".join(e.name for e in group)
        encoded = encode_shared(group, paths, thumbs, cfg, desc=f"indexing {label}",
                                progress=lambda n, total, d=done, label=label: report(
                                    (d + n) / units, f"{label}: {n}/{total} photos"),
                                vectors=vectors)
        done += len(paths)
        for e in group:
            report(done / units, f"{e.name}: t-SNE map")
            indexes[e.name] = _write(e, encoded[e.name], listing, index_root, time.time() - started, cfg)
            done += max(1, len(paths) // 10)
    return {e.name: indexes[e.name] for e in encoders}


def build_index(encoder: Encoder, data_root: Path, split: str, index_root: Path,
                cfg: config.BuildConfig = config.BuildConfig()) -> GalleryIndex:
    """Encode a photo folder into `index_root/<encoder>/` (+ shared thumbnails), atomically, on either engine.

    The folder may have train/ and test/ (then `split` picks from them), class sub-folders, or just photos.
    """
    if cfg.engine not in ENGINES:
        raise LandmarkError(f"Unknown engine {cfg.engine!r}; choose one of {', '.join(ENGINES)}.")
    if cfg.engine == "local":
        return build_indexes([encoder], data_root, split, index_root, cfg)[encoder.name]
    index_root = Path(index_root)
    started = time.time()
    listing, thumbs = _listing(Path(data_root), split, index_root)
    enc = encode_ray(encoder, listing.paths, thumbs, index_root, cfg)
    return _write(encoder, enc, listing, index_root, time.time() - started, cfg)
