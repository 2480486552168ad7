"""The runner of the offline flow: reader -> encoder -> writer, on the local engine (a DataLoader in this
process) or on Ray Data (`search.indexing.ray_engine`), timing each stage into the manifest."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from search import config
from search.errors import DatasetError, LandmarkError
from search.index import GalleryIndex, load_index, thumbs_dir
from search.indexing.encode_stage import Embed, Encoded, embed_here, encode_shared
from search.indexing.ray_engine import encode_ray
from search.indexing.writer import remove_stale_temp_files, write_index
from search.models.encoders import Encoder, group_by_input
from search.photos.feature_cache import FeatureCache
from search.photos.folders import display_name, fingerprint_files, gallery_items
from search.retrieval.projection import tsne_2d

ENGINES = ("local", "ray")
Progress = Callable[[float, str], None]  # (fraction of the build done, what is happening)


def _listing(data_root: Path, split: str, index_root: Path) -> tuple[list[str], list, str, Path]:
    """The photos to index (classes, (path, item) pairs, recorded split) and the thumbnails folder, made ready."""
    classes, pairs, recorded_split = gallery_items(data_root, split)
    if not pairs:
        raise DatasetError(f"No images found under {data_root} for split {split!r}.")
    thumbs = thumbs_dir(index_root)
    thumbs.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(thumbs)
    return classes, pairs, recorded_split, thumbs


def _write(encoder: Encoder, enc: Encoded, classes: list[str], pairs: list, recorded_split: str, data_root: Path,
           index_root: Path, engine: str, seconds: float, float16: bool, tsne_cfg: config.TsneConfig) -> GalleryIndex:
    """The map stage and the writer: t-SNE, metadata, manifest, atomic swap; the index loaded back."""
    if len(enc.kept) == 0:
        raise DatasetError(f"None of the {len(pairs)} images under {data_root} could be decoded.")
    items = [{**asdict(pairs[i][1]), "thumb": name} for i, name in zip(enc.kept, enc.thumbs)]
    t = time.perf_counter()
    coords = tsne_2d(enc.embeddings, tsne_cfg)
    stages = {**enc.stages, "map": time.perf_counter() - t}
    meta = {"split": recorded_split, "dataset_root": str(data_root), "skipped": len(pairs) - len(enc.kept),
            "dataset_fingerprint": fingerprint_files(data_root, [p[1] for p in pairs]),
            "classes": [display_name(c) for c in classes], "class_folders": classes,
            "build_seconds": round(seconds + stages["map"], 1),
            "build": {"engine": engine, "stage_seconds": {k: round(v, 2) for k, v in stages.items()}}}
    return load_index(write_index(index_root, encoder, enc.embeddings, items, coords, meta, float16), encoder)


def build_indexes(encoders: Sequence[Encoder], data_root: Path, split: str, index_root: Path, float16: bool = False,
                  batch_size: int = config.ENCODE_BATCH_SIZE, workers: int | None = None,
                  tsne_cfg: config.TsneConfig = config.TsneConfig(),
                  progress: Progress | None = None, features: FeatureCache | None = None,
                  embed: Embed = embed_here) -> dict[str, GalleryIndex]:
    """Several encoders' indexes of one photo folder on the local engine, each photo read once per trunk and each
    trunk run once (pretrained and transfer share one pass; none when `features` holds the trunk's features of
    every photo); `embed` runs a batch (in this process, or through the GPU calls); `progress(fraction, what)`
    follows every photo."""
    data_root, index_root = Path(data_root), Path(index_root)
    classes, pairs, recorded_split, thumbs = _listing(data_root, split, index_root)
    paths = [p for p, _ in pairs]
    groups = group_by_input(encoders)
    units = len(groups) * len(paths) + len(encoders) * max(1, len(paths) // 10)  # a map costs ~ a tenth of a pass
    done = 0
    report = progress or (lambda fraction, what: None)
    indexes: dict[str, GalleryIndex] = {}
    for group in groups:
        started, label = time.time(), " + ".join(e.name for e in group)
        encoded = encode_shared(group, paths, thumbs, batch_size, workers, desc=f"indexing {label}",
                                progress=lambda n, total, d=done, label=label: report(
                                    (d + n) / units, f"{label}: {n}/{total} photos"),
                                features=features, embed=embed)
        done += len(paths)
        for e in group:
            report(done / units, f"{e.name}: t-SNE map")
            indexes[e.name] = _write(e, encoded[e.name], classes, pairs, recorded_split, data_root, index_root,
                                     "local", time.time() - started, float16, tsne_cfg)
            done += max(1, len(paths) // 10)
    return {e.name: indexes[e.name] for e in encoders}


def build_index(encoder: Encoder, data_root: Path, split: str, index_root: Path, float16: bool = False,
                batch_size: int = config.ENCODE_BATCH_SIZE, workers: int | None = None,
                tsne_cfg: config.TsneConfig = config.TsneConfig(), engine: str = "local",
                ray_address: str | None = None, num_gpus_per_worker: float = 0.0) -> GalleryIndex:
    """Encode a photo folder into `index_root/<encoder>/` (+ shared thumbnails), atomically, on either engine.

    The folder may have train/ and test/ (then `split` picks from them), class sub-folders, or just photos.
    """
    if engine not in ENGINES:
        raise LandmarkError(f"Unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    if engine == "local":
        return build_indexes([encoder], data_root, split, index_root, float16, batch_size, workers, tsne_cfg)[
            encoder.name]
    data_root, index_root = Path(data_root), Path(index_root)
    started = time.time()
    classes, pairs, recorded_split, thumbs = _listing(data_root, split, index_root)
    enc = encode_ray(encoder, [p for p, _ in pairs], thumbs, index_root, batch_size, ray_address,
                     num_gpus_per_worker, workers)
    return _write(encoder, enc, classes, pairs, recorded_split, data_root, index_root, engine, time.time() - started,
                  float16, tsne_cfg)
