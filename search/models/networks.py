"""The two trained networks (the scratch CNN and the transfer head), the scratch CNN's preprocessing, and how their
architecture is written into a checkpoint: what both the encoders (`search.models.encoders`) and their training
(`search.models.training`) build on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import torch
from torch import nn
from torchvision.transforms import v2

from search import config

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def scratch_transform() -> Callable:
    """The scratch CNN's declared preprocessing (its training augmentation: `search.models.augment.scratch_augment`)."""
    size = config.SCRATCH_IMAGE_SIZE
    return v2.Compose([v2.Resize(int(size * 1.14), antialias=True), v2.CenterCrop(size), v2.ToImage(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class ScratchNet(nn.Module):
    """4 conv blocks (conv, batch norm, ReLU, max-pool) and a 3-layer fully connected classifier.

    Each block max-pools before its ReLU: the two commute (both are monotone), so the function and its gradients are
    those of conv, BN, ReLU, max-pool, with the ReLU on a quarter of the values. The first `cfg.pool_first` blocks
    also max-pool before their batch norm, which then normalises the pooled map: a different function (the
    statistics are the pooled values'), chosen where the map is largest, for a quarter of its cost (both measured by
    `scripts/benchmark.py --only train`, docs/performance.md). The last block keeps its full map before the pool, for
    the heatmaps (`conv_maps`)."""

    def __init__(self, num_classes: int, cfg: config.ScratchConfig = config.ScratchConfig()):
        super().__init__()
        if not 0 <= cfg.pool_first < len(cfg.channels):
            raise ValueError(f"pool_first must be below the {len(cfg.channels)} blocks, not {cfg.pool_first}")
        blocks, c_in = [], 3
        for k, c_out in enumerate(cfg.channels):
            conv, norm, pool = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.MaxPool2d(2)
            blocks += [conv, pool, norm] if k < cfg.pool_first else [conv, norm, pool]
            blocks.append(nn.ReLU(inplace=True))
            c_in = c_out
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(cfg.pooled_side))
        h1, h2 = cfg.hidden
        self.hidden = nn.Sequential(
            nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(c_in * cfg.pooled_side ** 2, h1),
            nn.ReLU(inplace=True), nn.Dropout(cfg.dropout), nn.Linear(h1, h2), nn.ReLU(inplace=True))
        self.logits = nn.Linear(h2, num_classes)
        self.embed_dim = h2

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Activation of the hidden layer before the logits."""
        return self.hidden(self.features(x))

    def conv_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last conv block's activated map, before its max-pool."""
        relu = self.features[-2]
        return relu(self.features[:-3](x))

    def embed_from_maps(self, maps: torch.Tensor) -> torch.Tensor:
        pool, _, average = self.features[-3:]  # the maps are activated already
        return self.hidden(average(pool(maps)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.embed(x))


class TransferHead(nn.Module):
    """New classifier head on frozen trunk features: hidden layer (the embedding), then logits."""

    def __init__(self, in_dim: int, num_classes: int, cfg: config.HeadConfig = config.HeadConfig()):
        super().__init__()
        self.hidden = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(in_dim, cfg.hidden),
                                    nn.ReLU(inplace=True))
        self.logits = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, num_classes))
        self.embed_dim = cfg.hidden

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        return self.hidden(feats)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.logits(self.embed(feats))


def arch_dict(cfg: config.ScratchConfig | config.HeadConfig) -> dict:
    """A config dataclass as plain types, safe for `torch.load(weights_only=True)`."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def scratch_config(arch: dict) -> config.ScratchConfig:
    """A scratch checkpoint's architecture from its `arch_dict`; one written before `pool_first` existed
    batch-normalised before every pool, and is built that way."""
    arch = {"pool_first": 0, **arch}
    return config.ScratchConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()})
