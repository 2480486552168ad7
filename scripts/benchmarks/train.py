"""Scratch CNN training throughput: today's path (every photo decoded and augmented as a PIL image in every epoch)
against the decode-once cache and the loop settings, and the CNN's FLOP floor on this machine."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmarks.report import row
from search import bench, config
from search.data import ClassFolder, find_classes, split_dir
from search.decoded import CachedPhotos, DecodeCache
from search.networks import ScratchNet, scratch_transform
from search.reader import PhotoReader, make_loader
from search.training import cpu_has_bf16, run_epoch


def generated_dataset(root: Path, rng: np.random.Generator, classes: int = 8, per_class: int = 40) -> Path:
    """A train split of phone-sized generated JPEGs, where no development photos are given."""
    for c in range(classes):
        folder = root / "train" / f"{c:02d}.Place_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            bench.synthetic_photo(rng, (1024, 768)).save(folder / f"{i}.jpg", quality=90)
    return root


def _epoch_rate(model: nn.Module, loader, channels_last: bool, bf16: bool) -> float:
    """Training images per second of one epoch (forward, backward, optimizer step)."""
    model.train()
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = config.TRAIN_CHANNELS_LAST, config.TRAIN_BF16_CPU
    config.TRAIN_CHANNELS_LAST, config.TRAIN_BF16_CPU = channels_last, bf16
    try:
        t = time.perf_counter()
        run_epoch(model, loader, nn.CrossEntropyLoss(), opt, "timing")
        seconds = time.perf_counter() - t
    finally:
        config.TRAIN_CHANNELS_LAST, config.TRAIN_BF16_CPU = before
    return len(loader.dataset) / seconds


def bench_training(tmp: Path, rng: np.random.Generator, data_dir: Path | None, rounds: int = 2) -> None:
    """Rows: today's epoch, each cached variant (workers x batch x layout), the cache build, the FLOP floor."""
    data_dir = data_dir or generated_dataset(tmp / "train-photos", rng)
    classes = find_classes(data_dir)
    samples = ClassFolder(split_dir(data_dir, "train"), classes).samples
    torch.manual_seed(0)
    t = time.perf_counter()
    images = DecodeCache(tmp / "decoded").load([p for p, _ in samples], workers=config.TrainConfig().num_workers)
    build_rate = len(samples) / (time.perf_counter() - t)
    t = time.perf_counter()
    DecodeCache(tmp / "decoded").load([p for p, _ in samples])
    reload_s = time.perf_counter() - t
    targets = [s[1] for s in samples]
    today = PhotoReader(samples, scratch_transform(train=True))
    cached = CachedPhotos(images, targets, scratch_transform(train=True))
    variants = {("today", 2, 32, False, False): today}
    bf16 = (False, True) if cpu_has_bf16() else (False,)
    for workers, batch, cl, half in itertools.product((0, 1, 2), (32, 64), (False, True), bf16):
        variants[("cached", workers, batch, cl, half)] = cached
    best: dict[tuple, float] = {}
    for _ in range(rounds):  # interleaved rounds, best of each: this machine's speed drifts between minutes
        for key, dataset in tqdm(variants.items(), desc="training variants", leave=False):
            torch.manual_seed(0)
            model = ScratchNet(len(classes))
            loader = make_loader(dataset, key[2], shuffle=True, workers=key[1])
            best[key] = max(best.get(key, 0.0), _epoch_rate(model, loader, key[3], key[4]))
    base = best[("today", 2, 32, False, False)]
    row(f"scratch training, {len(samples)} photos: today's epoch (decode + PIL augment, 2 workers, batch 32)",
        base, base, "img/s", "the baseline of the rows below", higher_is_better=True)
    for key, rate in best.items():
        if key[0] == "cached":
            row(f"scratch training from the decode cache: {_name(key)}", rate, base, "img/s", "vs today's epoch",
                higher_is_better=True)
    top = max((k for k in best if k[0] == "cached"), key=best.get)
    x = torch.randn(1, 3, config.SCRATCH_IMAGE_SIZE, config.SCRATCH_IMAGE_SIZE)
    gflop = 3 * bench.model_gflops(ScratchNet(len(classes)).eval(), x)  # forward + backward ~ 3 forwards
    floor = bench.matmul_gflops() / gflop
    row("scratch training: fastest variant vs the CNN's FLOP floor", best[top], floor, "img/s",
        f"{_name(top)}; floor = fp32 matmul GFLOP/s / "
        f"{gflop:.2f} GFLOP per image (3 x forward)", higher_is_better=True)
    row("decode cache: first build (decode, resize, write)", build_rate, base, "img/s",
        f"once per photo; a later run reads it back in {reload_s:.1f} s", higher_is_better=True)


def _name(key: tuple) -> str:
    return f"{key[1]} workers, batch {key[2]}{', channels_last' if key[3] else ''}{', bf16' if key[4] else ''}"


PARTS = {"train": lambda ctx: bench_training(ctx.tmp, ctx.rng, ctx.args.train_data)}
