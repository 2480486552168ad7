"""The runner of the offline flow: reader -> encoder -> writer, on the local engine (a DataLoader in this
process) or on Ray Data (`search.ray_engine`), timing each stage into the manifest."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from . import config
from .data import display_name, fingerprint_files, gallery_items, warn_bad
from .encoders import Encoder
from .errors import IndexError_
from .index import GalleryIndex, load_index, thumbs_dir
from .projection import tsne_2d
from .reader import PhotoReader, make_loader
from .writer import remove_stale_temp_files, write_index, write_thumbnails

ENGINES = ("local", "ray")
Progress = Callable[[str, int, int], None]  # (stage, done, total): "encode" per batch, "map" before the t-SNE


@dataclass
class Encoded:
    """What the encode stage produced: vectors of the decodable photos, their positions, thumbnail names."""

    embeddings: np.ndarray
    kept: list[int]
    thumbs: list[str]
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage (worker-seconds on Ray)


def encode_local(encoder: Encoder, paths: Sequence[Path], thumbs: Path | None = None,
                 batch_size: int = config.ENCODE_BATCH_SIZE, workers: int | None = None,
                 desc: str = "encoding", progress: Progress | None = None) -> Encoded:
    """The local engine: DataLoader workers decode ahead of the forward pass; thumbnails written as they come."""
    reader = PhotoReader([(p, 0) for p in paths], encoder.transform, thumbnails=thumbs is not None)
    stages = {"read": 0.0, "encode": 0.0, "thumbnails": 0.0}
    vecs, kept, names = [], [], []
    batches = iter(make_loader(reader, batch_size, workers=workers))
    with tqdm(total=len(reader), desc=desc, unit="img") as bar:
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            t1 = time.perf_counter()
            stages["read"] += t1 - t0
            if batch is None:
                break
            warn_bad(batch["errors"])
            bar.update(len(batch["index"]) + len(batch["errors"]))
            if progress is not None:
                progress("encode", bar.n, len(reader))
            if batch["image"] is None:
                continue
            vecs.append(encoder.embed(batch["image"]).numpy())
            t2 = time.perf_counter()
            if thumbs is not None:
                write_thumbnails(batch["thumb_name"], batch["thumb_jpeg"], thumbs)
            stages["encode"] += t2 - t1
            stages["thumbnails"] += time.perf_counter() - t2
            kept += batch["index"]
            names += batch["thumb_name"]
    emb = np.concatenate(vecs) if vecs else np.zeros((0, encoder.dim), np.float32)
    return Encoded(emb, kept, names, stages)


def build_index(encoder: Encoder, data_root: Path, split: str, index_root: Path, float16: bool = False,
                batch_size: int = config.ENCODE_BATCH_SIZE, workers: int | None = None,
                tsne_cfg: config.TsneConfig = config.TsneConfig(), engine: str = "local",
                ray_address: str | None = None, num_gpus_per_worker: float = 0.0,
                progress: Progress | None = None) -> GalleryIndex:
    """Encode a photo folder into `index_root/<encoder>/` (+ shared thumbnails), atomically, on either engine.

    The folder may have train/ and test/ (then `split` picks from them), class sub-folders, or just photos.
    """
    if engine not in ENGINES:
        raise IndexError_(f"Unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    data_root, index_root = Path(data_root), Path(index_root)
    started = time.time()
    classes, pairs, recorded_split = gallery_items(data_root, split)
    if not pairs:
        raise IndexError_(f"No images found under {data_root} for split {split!r}.")
    thumbs = thumbs_dir(index_root)
    thumbs.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(thumbs)
    paths = [p for p, _ in pairs]
    if engine == "ray":
        from .ray_engine import encode_ray

        enc = encode_ray(encoder, paths, thumbs, index_root, batch_size, ray_address, num_gpus_per_worker, workers)
    else:
        enc = encode_local(encoder, paths, thumbs, batch_size, workers, desc=f"indexing {encoder.name}",
                           progress=progress)
    if len(enc.kept) == 0:
        raise IndexError_(f"None of the {len(pairs)} images under {data_root} could be decoded.")
    items = [{**asdict(pairs[i][1]), "thumb": name} for i, name in zip(enc.kept, enc.thumbs)]
    if progress is not None:
        progress("map", len(enc.kept), len(pairs))
    t = time.perf_counter()
    coords = tsne_2d(enc.embeddings, tsne_cfg)
    stages = {**enc.stages, "map": time.perf_counter() - t}
    meta = {"split": recorded_split, "dataset_root": str(data_root), "skipped": len(pairs) - len(enc.kept),
            "dataset_fingerprint": fingerprint_files(data_root, [p[1] for p in pairs]),
            "classes": [display_name(c) for c in classes], "class_folders": classes,
            "build_seconds": round(time.time() - started, 1),
            "build": {"engine": engine, "stage_seconds": {k: round(v, 2) for k, v in stages.items()}}}
    return load_index(write_index(index_root, encoder, enc.embeddings, items, coords, meta, float16), encoder)
