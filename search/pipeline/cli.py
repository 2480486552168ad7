"""Shared command-line plumbing: common arguments and one-line errors instead of tracebacks."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from search import config
from search.errors import LandmarkError, WeightsUnavailableError
from search.models.encoder_file import ENV as ENCODERS_ENV
from search.models.encoders import REGISTRY, use_encoders
from search.models.trunks import TRUNKS, trunk_spec


def add_data_dir(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--data-dir", type=Path, required=required, default=None if required else config.DEFAULT_DATA_DIR,
                   help="dataset root holding train/ and test/ (default: $LANDMARK_DATA_DIR or data/landmark_images)")


def _trunk_name(name: str) -> str:
    """argparse type of --trunk: a name trunk_spec knows (argparse prints the reason of a refusal)."""
    try:
        trunk_spec(name)
    except WeightsUnavailableError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return name


def add_model_args(p: argparse.ArgumentParser, trunk: bool = True) -> None:
    add_encoders_file(p)
    p.add_argument("--checkpoint-dir", type=Path, default=config.CHECKPOINT_DIR,
                   help="where trained checkpoints live (default: checkpoints/)")
    p.add_argument("--weights", type=Path, default=None,
                   help=f"local VGG16 ImageNet state dict (or ${config.VGG16_WEIGHTS_ENV})")
    if trunk:
        p.add_argument("--trunk", type=_trunk_name, default=None, metavar="TRUNK",
                       help=f"ImageNet trunk: {', '.join(TRUNKS)}, torchvision:<model>[:<weights>], timm:<model> "
                            f"or file:<TorchScript path> (default: ${config.TRUNK_ENV} or vgg16, falling back to "
                            "the offline efficientnet_lite0 when VGG16 weights cannot be had)")


def add_encoders_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoders", type=Path, default=None, metavar="FILE",
                   help=f"the encoders to compare, a TOML file (default: ${ENCODERS_ENV}, else encoders.toml)")


def use_encoders_of(argv: list[str] | None) -> Path:
    """Make the encoders file the command line names (--encoders FILE, else the default) the registry, before the
    rest is parsed: the encoders' names are choices of other arguments."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # --encoder is not --encoders
    add_encoders_file(pre)
    return use_encoders(pre.parse_known_args(argv)[0].encoders)


def add_encoder(p: argparse.ArgumentParser, choices=None) -> None:
    p.add_argument("--encoder", required=True, choices=list(REGISTRY if choices is None else choices))


def add_index_dir(p: argparse.ArgumentParser, flag: str = "--index-dir") -> None:
    p.add_argument(flag, dest="index_dir", type=Path, default=config.INDEX_DIR,
                   help="folder holding one index per encoder (default: indexes/)")


def run(main: Callable[[], int | None]) -> None:
    """Run a CLI entry point; user-facing errors become one line on stderr and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        sys.exit(main() or 0)
    except LandmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
