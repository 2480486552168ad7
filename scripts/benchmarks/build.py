"""Index builds: encoding throughput, a private gallery with every encoder, Ray Data against the local engine."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from scripts.benchmarks import common as bench
from scripts.benchmarks.report import row
from search import config
from search.indexing.encode_stage import encode_local
from search.models.encoders import EncoderStore
from search.photos.images import open_image

IN_PROCESS = config.BuildConfig(workers=0)  # photos decoded in this process


def bench_build(tmp: Path, rng: np.random.Generator, n: int) -> None:
    """Row 4: index encoding throughput (DataLoader workers, batches) vs a one-image-at-a-time loop."""
    folder = tmp / "build-images"
    folder.mkdir()
    paths = []
    for i in range(n):
        p = folder / f"{i}.jpg"
        bench.synthetic_photo(rng, (400, 300)).save(p, quality=90)
        paths.append(p)
    enc = EncoderStore(tmp / "none").load("pretrained", trunk="efficientnet_lite0")

    def naive() -> None:
        for p in paths:
            enc.embed(enc.transform(open_image(p))[None])

    naive()  # warm-up
    best: dict[str, float] = {}
    for _ in range(3):  # interleaved rounds, best of each: this machine's speed drifts between runs
        for name, fn in (("naive", naive), ("ours", lambda: encode_local(enc, paths, None)),
                         ("ours+thumbs", lambda: encode_local(enc, paths, tmp / "thumbs"))):
            t = time.perf_counter()
            fn()
            best[name] = max(best.get(name, 0.0), n / (time.perf_counter() - t))
    row(f"index build, {n} images, EfficientNet-Lite0", best["ours"], best["naive"], "img/s",
        f"DataLoader ({config.decode_workers()} worker) + batches of {config.ENCODE_BATCH_SIZE} vs decode + encode "
        "one at a time", higher_is_better=True)
    row(f"index build, {n} images, EfficientNet-Lite0 + thumbnails", best["ours+thumbs"], best["naive"], "img/s",
        "also writes 256-px thumbnails, which the naive loop does not", higher_is_better=True)


def bench_gallery(tmp: Path, rng: np.random.Generator, checkpoint_dir: Path, folder: Path | None,
                  n: int = 192) -> None:
    """A private gallery's build (every encoder): indexes built together (a shared trunk runs once) vs one by one."""
    from search.errors import LandmarkError
    from search.indexing.runner import build_index, build_indexes
    from search.models.encoders import REGISTRY

    if folder is None:
        folder = tmp / "gallery-images"
        folder.mkdir()
        for i in range(n):
            bench.synthetic_photo(rng, (400, 300)).save(folder / f"{i}.jpg", quality=90)
    store = EncoderStore(checkpoint_dir)
    encs = []
    for name in REGISTRY:
        try:
            encs.append(store.load(name, trunk="efficientnet_lite0"))
        except LandmarkError as exc:
            tqdm.write(f"gallery build: {name} skipped ({exc})")
    if sum(e.trunk is not None for e in encs) < 2:
        tqdm.write("gallery build: needs the transfer head (--checkpoint-dir) for a shared trunk; row skipped")
        return
    best: dict[str, float] = {}
    for r in range(2):  # interleaved rounds, best of each
        for way in ("together", "one by one"):
            root, t = tmp / f"gallery-{way}-{r}", time.perf_counter()
            if way == "together":
                count = next(iter(build_indexes(encs, folder, "all", root, IN_PROCESS).values())).manifest["count"]
            else:
                count = [build_index(e, folder, "all", root, IN_PROCESS) for e in encs][0].manifest["count"]
            best[way] = max(best.get(way, 0.0), count / (time.perf_counter() - t))
    row(f"gallery build, {count} photos, {len(encs)} encoders (EfficientNet-Lite0)", best["together"],
        best["one by one"], "photo/s", "build_indexes (one read per trunk, shared trunk once) vs build_index per "
        "encoder; t-SNE included", higher_is_better=True)


def bench_engines(tmp: Path, rng: np.random.Generator, n: int = 192) -> None:
    """The same index build on Ray Data (started locally, already running) and on the local engine."""
    from search.indexing import ray_engine
    from search.indexing.runner import build_index

    root = tmp / "engine-data"
    for i in range(n):
        c = (i // 4) % 8
        d = root / ("train" if i % 4 else "test") / f"{c:02d}.Place_{c}"
        d.mkdir(parents=True, exist_ok=True)
        bench.synthetic_photo(rng, (400, 300)).save(d / f"{i}.jpg", quality=90)
    enc = EncoderStore(tmp / "none").load("pretrained", trunk="efficientnet_lite0")
    t = time.perf_counter()
    ray_engine.start()
    start_s = time.perf_counter() - t
    rates: dict[str, float] = {}
    for _ in range(2):  # interleaved rounds, best of each
        for engine in ("local", "ray"):
            t = time.perf_counter()
            idx = build_index(enc, root, "all", tmp / f"engine-{engine}",
                              config.BuildConfig(engine=engine, workers=1 if engine == "ray" else None))
            rates[engine] = max(rates.get(engine, 0.0), idx.manifest["count"] / (time.perf_counter() - t))
    row(f"index build, {n} images, --engine ray vs --engine local", rates["ray"], rates["local"], "img/s",
        f"this 2-core machine, 1 encoder actor; Ray itself took {start_s:.0f} s to start; the point is that the same "
        "command scales out", higher_is_better=True)


PARTS = {"build": lambda ctx: bench_build(ctx.tmp, ctx.rng, 192),
         "gallery": lambda ctx: bench_gallery(ctx.tmp, ctx.rng, ctx.args.checkpoint_dir, ctx.args.gallery_dir),
         "engines": lambda ctx: bench_engines(ctx.tmp, ctx.rng)}
