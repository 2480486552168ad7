"""What every trunk is, shared by the built-in trunks (search/models/trunks.py) and the library ones
(search/models/library_trunks.py): the frozen module, how one is described, and the fingerprint of a weights file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from search import config
from search.storage import sha256_file


@lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime: float) -> str:
    return sha256_file(Path(path))


def file_fingerprint(path: Path) -> str:
    """Short sha256 of a weights or checkpoint file (cached per path, size and mtime)."""
    st = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime)[:16]


class Trunk(nn.Module):
    """A frozen ImageNet CNN that maps a preprocessed batch to one feature vector per image."""

    name: str
    label: str
    dim: int

    def __init__(self, fingerprint: str, transform: Callable):
        super().__init__()
        self.fingerprint = fingerprint
        self.transform = transform

    def freeze(self) -> Trunk:
        """Eval mode, no gradients, and the CPU inference settings from config."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        if config.CHANNELS_LAST:
            self.to(memory_format=torch.channels_last)
        self._forward = torch.compile(self.pooled_features) if config.COMPILE_TRUNK else self.pooled_features
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if config.CHANNELS_LAST:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._forward(x)

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's pooled features of a preprocessed batch, eagerly (as set up, without the compiled path)."""
        return self.pool_maps(self.conv_maps(x))

    def conv_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional feature map (N, C, h, w), where "why similar" heatmaps are read."""
        raise NotImplementedError

    def pool_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """The rest of the trunk: feature map -> (N, dim) features."""
        raise NotImplementedError


@dataclass(frozen=True)
class TrunkSpec:
    """How to build one trunk and what to call it (`dim` None: known once built)."""

    name: str
    label: str
    dim: int | None
    build: Callable[[Path | None], Trunk]
