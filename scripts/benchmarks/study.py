"""The Study tab's whole-gallery comparison at the size the issue names: 5,000 photos under three encoders."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from scripts.benchmarks import common as bench
from scripts.benchmarks.report import row
from search import config
from search.index import GalleryIndex
from search.study import store as study_store


def synthetic_indexes(tmp: Path, n: int, rng: np.random.Generator) -> dict[str, GalleryIndex]:
    """Three in-memory indexes of the same n photos (clustered vectors of each encoder's size, a t-SNE-like map,
    50 landmarks) sharing a folder of real thumbnail files."""
    thumbs = tmp / "study-thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(64):
        names.append(f"t{i:02d}.jpg")
        bench.synthetic_photo(rng, (256, 192)).save(thumbs / names[-1])
    labels = rng.integers(0, 50, n)
    items = [{"path": f"train/{c:02d}.L/{i}.jpg", "class_id": int(c), "class_name": f"Landmark {c}",
              "split": "train", "thumb": names[i % len(names)]} for i, c in enumerate(labels)]
    out = {}
    for seed, (name, dim) in enumerate((("scratch", 256), ("pretrained", 4096), ("transfer", 256))):
        vectors = bench.clustered_unit_vectors(n, dim, clusters=50, seed=seed)
        coords = (vectors[:, :2] * 40 + rng.normal(size=(n, 2))).astype(np.float32)
        manifest = {"classes": [f"Landmark {c}" for c in range(50)], "thumbnails": thumbs.name, "encoder": name,
                    "checksum": f"synthetic-{name}"}
        out[name] = GalleryIndex(tmp / name, manifest, vectors, items, coords)
    return out


def bench_study(tmp: Path, rng: np.random.Generator, n: int = 5000) -> None:
    """The study of three indexes of n photos (its stages timed), against the issue's one-minute budget."""
    indexes = synthetic_indexes(tmp, n, rng)
    t = time.perf_counter()
    result = study_store.compute(indexes)
    seconds = time.perf_counter() - t
    m = result["maps"]["pretrained"]
    row(f"study, {n:,} photos x 3 encoders (256-d, 4096-d, 256-d)", seconds, 60.0, "s",
        f"exact k-NN in torch, trustworthiness on {m['trust_points']:,} of {m['points']:,} photos "
        f"(subsample past {config.STUDY.trust_max_points:,}); baseline = the one-minute budget")


PARTS = {"study": lambda ctx: bench_study(ctx.tmp, ctx.rng)}
