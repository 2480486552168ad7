"""The trained encoders' checkpoint format, written by training and read by serving: a torch dict naming its encoder,
with its state dict and what that encoder's spec requires (classes, architecture, trunk)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from search.errors import WeightsUnavailableError
from search.storage import save_torch


def save_checkpoint(path: Path, encoder: str, state_dict: dict, **fields) -> None:
    """Write encoder `encoder`'s checkpoint atomically (a temp file, then a rename)."""
    save_torch({"encoder": encoder, "state_dict": state_dict, **fields}, path)


def load_checkpoint(path: Path, encoder: str, required: Sequence[str], name: str | None = None) -> dict:
    """A checkpoint of an `encoder` model (scratch or transfer) holding every key of `required`, or one clear line
    saying what to do (to train the encoder called `name`, by default `encoder`)."""
    name = name or encoder
    if not path.is_file():
        raise WeightsUnavailableError(
            f"No checkpoint at {path}: run scripts/train.py --encoder {name} (or scripts/prepare_demo.py).")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsUnavailableError(f"{path} is not a readable checkpoint ({exc}); retrain it.") from exc
    if not isinstance(ckpt, dict) or ckpt.get("encoder") != encoder:
        found = ckpt.get("encoder") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise WeightsUnavailableError(f"{path} holds a {found!r} model, not {encoder!r}.")
    missing = [k for k in required if k not in ckpt]
    if missing:
        raise WeightsUnavailableError(f"{path} is not a {encoder} checkpoint of this version "
                                      f"(no {', '.join(missing)}); "
                                      f"retrain it with scripts/train.py --encoder {name}.")
    return ckpt
