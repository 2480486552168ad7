"""What every benchmark part shares: its context (temp folder, weights, options) and the table of rows."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

ROWS: list[dict] = []


@dataclass
class Context:
    """One benchmark run: where parts write, the VGG16 weights to use, the shared random generator, the options."""

    tmp: Path
    weights: Path
    rng: np.random.Generator
    args: argparse.Namespace

    @property
    def compile(self) -> bool:
        return not self.args.no_compile


def row(what: str, ours: float, baseline: float, unit: str, note: str = "", higher_is_better: bool = False) -> None:
    """Record and print one result; ratio > 1 always means ours is better."""
    ratio = (ours / baseline) if higher_is_better else (baseline / ours if ours else float("nan"))
    ROWS.append({"what": what, "ours": round(ours, 3), "baseline": round(baseline, 3), "unit": unit,
                 "ratio": round(ratio, 2), "note": note})
    tqdm.write(f"{what:<64} {ours:>10.2f} {baseline:>10.2f} {unit:<7} {ratio:>6.2f}x  {note}")


def header() -> None:
    """The table's column names."""
    tqdm.write(f"{'what':<64} {'ours':>10} {'baseline':>10} {'unit':<7} {'ratio':>7}")
