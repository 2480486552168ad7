"""Measurement helpers for scripts/benchmark.py: timing, FLOP floor, synthetic photos and galleries, memory."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from search import config
from search.models.encoders import ScratchNet, TransferHead, arch_dict
from search.models.trunks import Trunk
from search.storage import save_torch


def median_ms(fn: Callable[[], object], repeat: int = 10, warmup: int = 2) -> float:
    """Median wall time of fn() in milliseconds, after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """Best measured fp32 matmul throughput of this machine, GFLOP/s (2 FLOPs per multiply-add)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def model_gflops(module: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass as counted by torch's FlopCounterMode, in GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        module(x)
    return counter.get_total_flops() / 1e9


def synthetic_photo(rng: np.random.Generator, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A photo-like picture: a smooth two-colour gradient with a few soft shapes on it."""
    w, h = size
    c1, c2 = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
    t = np.linspace(0, 1, h)[:, None, None]
    arr = (c1 * (1 - t) + c2 * t) * np.ones((h, w, 3))
    img = Image.fromarray(arr.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 8))):
        x, y, s = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(15, 90))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + s, y + s // 2 + 5], fill=colour)
    return img.filter(ImageFilter.GaussianBlur(1))


def clustered_unit_vectors(n: int, dim: int, clusters: int = 1000, spread: float = 0.6,
                           seed: int = 0) -> np.ndarray:
    """n unit vectors around `clusters` random centres: a stand-in for a real embedding gallery."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    out = np.empty((n, dim), np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        block = centres[rng.integers(0, clusters, m)] + spread * rng.standard_normal((m, dim), dtype=np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    """Resident memory of this process in MiB, after a garbage collection."""
    import psutil

    gc.collect()
    return psutil.Process(os.getpid()).memory_info().rss / 2 ** 20


def write_untrained_checkpoints(ckpt_dir: Path, trunk: Trunk, classes: list[str]) -> None:
    """Scratch and transfer checkpoints with random weights, in the real format (speed and memory do not depend
    on the weight values)."""
    scratch_cfg, head_cfg = config.ScratchConfig(), config.HeadConfig()
    save_torch({"encoder": "scratch", "state_dict": ScratchNet(len(classes), scratch_cfg).state_dict(),
                "classes": classes, "arch": arch_dict(scratch_cfg)}, Path(ckpt_dir) / "scratch.pt")
    save_torch({"encoder": "transfer", "state_dict": TransferHead(trunk.dim, len(classes), head_cfg).state_dict(),
                "classes": classes, "arch": arch_dict(head_cfg), "trunk": trunk.name,
                "trunk_fingerprint": trunk.fingerprint}, Path(ckpt_dir) / "transfer_head.pt")


def best_of(fn, rounds: int = 20) -> float:
    """The fastest of `rounds` calls, in ms (this machine's speed drifts: the best round is the cost)."""
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return 1000 * best
