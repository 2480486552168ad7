"""Measured speed against baselines, in one run: every row is (what, ours, baseline, ratio).

Uses random-weight VGG16 where real weights are absent (speed does not depend on weight values), the
packaged EfficientNet-Lite0 weights, and generated images; default settings run in under 10 minutes on 2 cores.
Each area's measurements are a part in `scripts/benchmarks/`; a new measurement is a new entry of a part's PARTS."""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torchvision import models
from tqdm.auto import tqdm

from scripts.benchmarks import (
    app,
    browser,
    build,
    confidence,
    encode,
    encoders,
    exact,
    expansion,
    memory,
    quality,
    scale,
    selection,
    study,
    train,
)
from scripts.benchmarks.report import ROWS, Context, header
from search import config
from search.pipeline.cli import run
from search.storage import write_json

PARTS = {**encode.PARTS, **train.PARTS, **exact.PARTS, **app.PARTS, **build.PARTS, **memory.PARTS, **scale.PARTS,
         **study.PARTS, **selection.PARTS, **browser.PARTS, **expansion.PARTS, **confidence.PARTS,
         **quality.PARTS, **encoders.PARTS}


def get_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    p.add_argument("--weights", type=Path, default=None, help="real VGG16 weights (default: random init)")
    p.add_argument("--index-dir", type=Path, default=config.INDEX_DIR, help="prepared indexes for the quality rows")
    p.add_argument("--scale", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--ann", type=int, nargs="+", default=[1_000_000], help="gallery sizes of the ANN rows")
    p.add_argument("--ann-kinds", nargs="+", default=["clustered", "uniform"], choices=["clustered", "uniform"])
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (saves ~1 min)")
    p.add_argument("--checkpoint-dir", type=Path, default=config.CHECKPOINT_DIR, help="trained encoders (gallery row)")
    p.add_argument("--gallery-dir", type=Path, default=None, help="photo folder of the gallery row (default: 192 "
                                                                      "generated photos)")
    p.add_argument("--train-data", type=Path, default=None, help="dataset (train/ split) of the training rows "
                                                                 "(default: generated photos)")
    p.add_argument("--encoders-file", type=Path, default=None,
                   help="an encoders file with more encoders (the encoders row: a search under pretrained with "
                        "them configured, against the default file)")
    p.add_argument("--encoders-index-dir", type=Path, default=None, help="indexes prepared with --encoders-file")
    p.add_argument("--only", nargs="+", choices=list(PARTS))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = get_args(argv)
    started = time.time()
    tqdm.write(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
               f"torch {torch.__version__}")
    header()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        weights = a.weights
        if weights is None:
            torch.manual_seed(0)
            weights = tmp / "vgg16-random.pth"
            torch.save(models.vgg16().state_dict(), weights)
        ctx = Context(tmp, weights, np.random.default_rng(0), a)
        for name, part in PARTS.items():
            if name in (a.only or PARTS):
                part(ctx)
    tqdm.write(f"total {time.time() - started:.0f} s")
    if a.json:
        write_json({"rows": ROWS, "seconds": round(time.time() - started, 1)}, a.json)


if __name__ == "__main__":
    run(main)
