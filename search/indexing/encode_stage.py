"""The encode stage of the offline flow on the local engine, and what any engine's encode stage produces: the
reader's photos through the encoders (one trunk pass for the encoders that share it), thumbnails written as they
come. The runner (`search.indexing.runner`) and the Ray engine (`search.indexing.ray_engine`) both use it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from search import config
from search.indexing.writer import write_thumbnails
from search.models.encoders import Encoder, embed_shared
from search.photos.feature_cache import FeatureCache
from search.photos.folders import warn_bad
from search.photos.reader import PhotoReader, make_loader, thumbnail_name

if TYPE_CHECKING:
    import torch


Embed = Callable[[Sequence[Encoder], "torch.Tensor"], list[np.ndarray]]  # (encoders of one input, batch) -> vectors


def embed_here(encoders: Sequence[Encoder], batch: torch.Tensor) -> list[np.ndarray]:
    """One batch under encoders of one input, in this process (the default of the encode stage)."""
    return [v.numpy() for v in embed_shared(encoders, batch)]


@dataclass
class Encoded:
    """What the encode stage produced: vectors of the decodable photos, their positions, thumbnail names."""

    embeddings: np.ndarray
    kept: list[int]
    thumbs: list[str]
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage (worker-seconds on Ray)


@dataclass(frozen=True)
class Vectors:
    """Where a local build gets its vectors: trunk features already computed for the photos (a FeatureCache; the
    trunk then does not run), and the function that runs a batch (in this process, or through the GPU calls)."""

    features: FeatureCache | None = None
    embed: Embed = embed_here


def encode_shared(encoders: Sequence[Encoder], paths: Sequence[Path], thumbs: Path | None = None,
                  cfg: config.BuildConfig = config.BuildConfig(), desc: str = "encoding",
                  progress: Callable[[int, int], None] | None = None, vectors: Vectors = Vectors()
                  ) -> dict[str, Encoded]:
    """The local engine for encoders that take the same input (one trunk): each photo is read once, the trunk runs
    once per batch (through `vectors.embed`); DataLoader workers decode ahead of the forward pass; thumbnails are
    written as they come."""
    known = _from_features(encoders, paths, thumbs, vectors.features)
    if known is not None:
        return known
    embed = vectors.embed
    reader = PhotoReader([(p, 0) for p in paths], encoders[0].transform, thumbnails=thumbs is not None)
    stages = {"read": 0.0, "encode": 0.0, "thumbnails": 0.0}
    vecs: list[list[np.ndarray]] = [[] for _ in encoders]
    kept, names = [], []
    batches = iter(make_loader(reader, cfg.batch_size, workers=cfg.workers))
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
                progress(bar.n, len(reader))
            if batch["image"] is None:
                continue
            for out, v in zip(vecs, embed(encoders, batch["image"])):
                out.append(v)
            t2 = time.perf_counter()
            if thumbs is not None:
                write_thumbnails(batch["thumb_name"], batch["thumb_jpeg"], thumbs)
            stages["encode"] += t2 - t1
            stages["thumbnails"] += time.perf_counter() - t2
            kept += batch["index"]
            names += batch["thumb_name"]
    return {e.name: Encoded(np.concatenate(v) if v else np.zeros((0, e.dim), np.float32), kept, names, dict(stages))
            for e, v in zip(encoders, vecs)}


def _from_features(encoders: Sequence[Encoder], paths: Sequence[Path], thumbs: Path | None,
                   features: FeatureCache | None) -> dict[str, Encoded] | None:
    """The encoding of photos whose trunk features are kept and whose thumbnails exist: no photo is decoded and
    the trunk does not run (None when any is missing: then everything is read as usual)."""
    if features is None or encoders[0].trunk is None or not paths or not features.holds_trunk(encoders[0].trunk):
        return None
    started = time.perf_counter()
    names = [thumbnail_name(Path(p).read_bytes()) for p in paths] if thumbs is not None else [None] * len(paths)
    if thumbs is not None and not all((Path(thumbs) / n).is_file() for n in names):
        return None
    feats = features.get(paths)
    if feats is None:
        return None
    stages = {"read": 0.0, "encode": time.perf_counter() - started, "thumbnails": 0.0}
    return {e.name: Encoded(e.embed_trunk_features(feats).numpy(), list(range(len(paths))), names, dict(stages))
            for e in encoders}


def encode_local(encoder: Encoder, paths: Sequence[Path], thumbs: Path | None = None,
                 cfg: config.BuildConfig = config.BuildConfig(), desc: str = "encoding") -> Encoded:
    """The local engine for one encoder."""
    return encode_shared([encoder], paths, thumbs, cfg, desc)[encoder.name]
