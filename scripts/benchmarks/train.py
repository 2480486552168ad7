"""Scratch CNN training throughput: today's path (every photo decoded and augmented as a PIL image in every epoch)
against the decode-once cache and the loop settings, and the CNN's FLOP floor on this machine."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torchvision.transforms import v2
from tqdm.auto import tqdm

from scripts.benchmarks import common as bench
from scripts.benchmarks.report import row
from search import config
from search.models.augment import scratch_augment
from search.models.networks import IMAGENET_MEAN, IMAGENET_STD, ScratchNet
from search.models.training import cpu_has_bf16, run_epoch
from search.photos.decode_cache import CachedPhotos, DecodeCache
from search.photos.folders import ClassFolder, find_classes, split_dir
from search.photos.reader import PhotoReader, make_loader


def generated_dataset(root: Path, rng: np.random.Generator, classes: int = 8, per_class: int = 40) -> Path:
    """A train split of phone-sized generated JPEGs, where no development photos are given."""
    for c in range(classes):
        folder = root / "train" / f"{c:02d}.Place_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            bench.synthetic_photo(rng, (1024, 768)).save(folder / f"{i}.jpg", quality=90)
    return root


def todays_augment() -> v2.Compose:
    """The scratch CNN's augmentation as it ran before the decode cache: all of it per photo, on the photo."""
    a = config.ScratchAugment()
    return v2.Compose([v2.RandomResizedCrop(config.SCRATCH_IMAGE_SIZE, scale=a.crop_scale, antialias=True),
                       v2.RandomHorizontalFlip(), v2.ColorJitter(a.brightness, a.contrast, a.saturation, a.hue),
                       v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def conv_relu_pool(classes: int) -> ScratchNet:
    """Today's network: every block in its textbook order (conv, batch norm, ReLU, max-pool), as it was trained."""
    net = ScratchNet(classes, config.ScratchConfig(pool_first=0))
    blocks = list(net.features)
    for i in range(0, len(blocks) - 1, 4):
        blocks[i + 2], blocks[i + 3] = blocks[i + 3], blocks[i + 2]
    net.features = nn.Sequential(*blocks)
    return net


class Variant(NamedTuple):
    """One way to run a training epoch."""

    data: str  # "today": decoded and augmented per photo in workers; "cached": the decode cache and batch augment
    workers: int
    batch: int
    channels_last: bool
    bf16: bool
    fused: bool
    textbook: bool  # today's network: batch norm and ReLU before every max-pool
    keep_memory: bool  # glibc keeps freed blocks for reuse (search/models/malloc.py)
    pool_first: int = config.ScratchConfig().pool_first  # leading blocks that max-pool before their batch norm

    def name(self) -> str:
        flags = [f"{self.workers} workers", f"batch {self.batch}", "channels_last" * self.channels_last,
                 "bf16" * self.bf16, "fused AdamW" * self.fused,
                 "today's network (BN, ReLU, max-pool)" if self.textbook else
                 f"max-pool before BN in {self.pool_first} block(s)" if self.pool_first else "BN before every max-pool",
                 "freed memory kept" * self.keep_memory]
        return ", ".join(f for f in flags if f)


TODAY = Variant("today", 2, 32, False, False, False, True, False, 0)


@contextmanager
def _loop_settings(channels_last: bool, bf16: bool):
    """The training loop's layout and precision switches, set for one measurement."""
    before = config.TRAIN_CHANNELS_LAST, config.TRAIN_BF16_CPU
    config.TRAIN_CHANNELS_LAST, config.TRAIN_BF16_CPU = channels_last, bf16
    try:
        yield
    finally:
        config.TRAIN_CHANNELS_LAST, config.TRAIN_BF16_CPU = before


def _epoch_rate(v: Variant, classes: int, loader, batch_transform=None, warm_up=None) -> float:
    """Training images per second of one pass over `loader` (forward, backward, optimizer step)."""
    torch.manual_seed(0)
    arch = config.ScratchConfig(pool_first=v.pool_first)
    model = conv_relu_pool(classes) if v.textbook else ScratchNet(classes, arch)
    model.train().to(memory_format=torch.channels_last if v.channels_last else torch.contiguous_format)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=v.fused)
    with _loop_settings(v.channels_last, v.bf16):
        if warm_up is not None:
            run_epoch(model, warm_up, nn.CrossEntropyLoss(), opt, "warm-up")
        t = time.perf_counter()
        run_epoch(model, loader, nn.CrossEntropyLoss(), opt, "timing", batch_transform=batch_transform)
        seconds = time.perf_counter() - t
    images = len(loader.dataset) if hasattr(loader, "dataset") else sum(len(y) for _, y in loader)
    return images / seconds


def _network_alone(v: Variant, classes: int, steps: int = 24) -> float:
    """Training images per second of the network alone: one batch of random inputs again, no data to prepare."""
    torch.manual_seed(0)
    x = torch.randn(v.batch, 3, config.SCRATCH_IMAGE_SIZE, config.SCRATCH_IMAGE_SIZE)
    y = torch.randint(0, classes, (v.batch,))
    return _epoch_rate(v, classes, [(x, y)] * steps, warm_up=[(x, y)] * 3)


def variants() -> list[Variant]:
    """Today's epoch; the cached loop over workers x batch; one switch at a time undone from the default."""
    bf16 = cpu_has_bf16()
    ours = [Variant("cached", w, b, True, bf16, True, False, True) for w, b in itertools.product((0, 1), (16, 32, 64))]
    default = Variant("cached", config.TrainConfig().augment_workers, config.TrainConfig().batch_size, True, bf16,
                      True, False, True)
    undone = [default._replace(channels_last=False, bf16=False), default._replace(channels_last=False),
              default._replace(bf16=False), default._replace(fused=False), default._replace(pool_first=0),
              default._replace(textbook=True, pool_first=0), default._replace(keep_memory=False)]
    return [TODAY, *dict.fromkeys(ours + [u for u in undone if u != default])]


def _variant_rate(v: Variant, classes: int, samples: list, cache_dir: Path) -> float:
    """One variant's training images per second over the photos `samples` (decoded into `cache_dir` already)."""
    if v.data == "today":
        loader, batch_transform = make_loader(PhotoReader(samples, todays_augment()), v.batch, True, v.workers), None
    else:
        augment = scratch_augment()
        images = DecodeCache(cache_dir).load([p for p, _ in samples])
        photos = CachedPhotos(images, [s[1] for s in samples], augment.photo)
        loader, batch_transform = make_loader(photos, v.batch, shuffle=True, workers=v.workers), augment.batch
    return _epoch_rate(v, classes, loader, batch_transform)


def _child(conn, keep_memory: bool, fn, args) -> None:
    multiprocessing.set_start_method("fork", force=True)  # a spawned process would spawn its DataLoader workers too
    config.KEEP_FREED_MEMORY = keep_memory
    conn.send(fn(*args))
    conn.close()


def _in_fresh_process(fn, v: Variant, *args) -> float:
    """fn(v, *args) in a new process: the allocator setting of one variant is process-wide and cannot be undone, so
    no variant runs in a process another has run in."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(theirs, v.keep_memory, fn, (v, *args)))
    proc.start()
    theirs.close()
    try:
        return ours.recv()
    except EOFError as exc:
        proc.join()
        raise RuntimeError(f"the training variant {v.name()} failed in its process "
                           f"(exit code {proc.exitcode})") from exc
    finally:
        proc.join()


def bench_training(tmp: Path, rng: np.random.Generator, data_dir: Path | None, rounds: int = 3) -> None:
    """Rows: today's epoch, each cached variant, the network alone, the cache build, the FLOP floor."""
    data_dir = data_dir or generated_dataset(tmp / "train-photos", rng)
    classes = find_classes(data_dir)
    samples = ClassFolder(split_dir(data_dir, "train"), classes).samples
    torch.manual_seed(0)
    t = time.perf_counter()
    DecodeCache(tmp / "decoded").load([p for p, _ in samples], workers=config.TrainConfig().decode_workers)
    build_rate = len(samples) / (time.perf_counter() - t)
    t = time.perf_counter()
    DecodeCache(tmp / "decoded").load([p for p, _ in samples])
    reload_s = time.perf_counter() - t
    best: dict[Variant, float] = {}
    alone = 0.0
    for _ in range(rounds):  # interleaved rounds, best of each: this machine's speed drifts between minutes
        for v in tqdm(variants(), desc="training variants", leave=False):
            best[v] = max(best.get(v, 0.0), _in_fresh_process(_variant_rate, v, len(classes), samples, tmp / "decoded"))
        top = max((v for v in best if v.data == "cached"), key=best.get)
        alone = max(alone, _in_fresh_process(_network_alone, top, len(classes)))
    base = best[TODAY]
    row(f"scratch training, {len(samples)} photos: today's epoch (decode + PIL augment per photo, {TODAY.name()})",
        base, base, "img/s", "the baseline of the rows below", higher_is_better=True)
    for v, rate in best.items():
        if v != TODAY:
            row(f"scratch training from the decode cache, batch augment: {v.name()}", rate, base, "img/s",
                "vs today's epoch", higher_is_better=True)
    row(f"scratch training, the network alone ({top.name()}; one batch of random inputs again and again)",
        alone, base, "img/s", "no data to prepare: the ceiling of any data path", higher_is_better=True)
    x = torch.randn(1, 3, config.SCRATCH_IMAGE_SIZE, config.SCRATCH_IMAGE_SIZE)
    gflop = 3 * bench.model_gflops(ScratchNet(len(classes)).eval(), x)  # forward + backward ~ 3 forwards
    floor = bench.matmul_gflops() / gflop
    row("scratch training: fastest variant vs the CNN's FLOP floor", best[top], floor, "img/s",
        f"{top.name()}; floor = fp32 matmul GFLOP/s / {gflop:.2f} GFLOP per image (3 x forward)",
        higher_is_better=True)
    row("decode cache: first build (decode, resize, write)", build_rate, base, "img/s",
        f"once per photo; a later run reads it back in {reload_s:.1f} s", higher_is_better=True)


PARTS = {"train": lambda ctx: bench_training(ctx.tmp, ctx.rng, ctx.args.train_data)}
