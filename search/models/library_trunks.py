"""Trunks from the libraries made for them: any torchvision classification model (`torchvision:<model>[:<weights>]`,
through `torchvision.models.get_model` and its weights enum), any timm model (`timm:<model>`, its pretrained weights
from the Hugging Face Hub, pooled as timm pools them), or a user's own TorchScript file (`file:<path>`). A local state
dict for a torchvision or timm architecture is given as the trunk's weights file, as VGG16's is.

Each brings its own preprocessing (the weights' transforms, timm's data config), its feature dimension (measured by
one forward pass) and a fingerprint of its parameters. Their heatmaps come from the similarity's gradient on the last
spatial map the model computes: a convolutional map, or the patch-token grid of a transformer."""

from __future__ import annotations

import hashlib
import math
import urllib.error
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision import models
from torchvision.transforms import v2

from search import config
from search.errors import NoHeatmapError, WeightsUnavailableError
from search.models.networks import IMAGENET_MEAN, IMAGENET_STD
from search.models.trunk_base import Trunk, TrunkSpec, file_fingerprint


def parameters_fingerprint(net: nn.Module) -> str:
    """Short sha256 of a model's parameters and buffers, in order: the same weights give the same fingerprint."""
    h = hashlib.sha256()
    for key, tensor in net.state_dict().items():
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _first(out) -> torch.Tensor | None:
    """A module's output tensor (the first of a tuple)."""
    out = out[0] if isinstance(out, (tuple, list)) and out else out
    return out if isinstance(out, torch.Tensor) else None


def _spatial(out: torch.Tensor | None) -> torch.Tensor | None:
    """A module's output as an (N, C, h, w) map when it is one: a square conv map, channels first or last (Swin), or
    the patch tokens (N, prefix + h*w, C) of a square grid; None otherwise. Applied alike to a gradient."""
    if out is None:
        return None
    if out.dim() == 4:  # the input is a square crop, so a spatial map is square too
        if out.shape[2] == out.shape[3] > 1:
            return out
        if out.shape[1] == out.shape[2] > 1:
            return out.permute(0, 3, 1, 2)
        return None
    if out.dim() == 3 and out.shape[1] > 1:
        side = math.isqrt(out.shape[1])
        prefix = out.shape[1] - side * side
        if side > 1 and prefix <= 16:  # a class token and a few registers at most
            return out[:, prefix:].transpose(1, 2).reshape(out.shape[0], out.shape[2], side, side)
    return None


class LibraryTrunk(Trunk):
    """A frozen model whose forward pass gives pooled pre-logit features; "why similar" reads the gradient on the
    last spatial map it computes (found by one forward pass when built)."""

    def __init__(self, name: str, label: str, net: nn.Module, transform: Callable, fingerprint: str | None = None):
        super().__init__(fingerprint or parameters_fingerprint(net), transform)
        self.name, self.label, self.net = name, label, net.eval()
        self.dim, self.explain_layer = _probe(net, _input_size(transform))
        self.freeze()

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)

    def maps_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The explained layer's output, in the graph (`to_grid` makes it a map), and the pooled features."""
        if self.explain_layer is None:
            raise NoHeatmapError(f"No heatmap for {self.label}: the model computes no spatial map the app can read "
                                 "(a TorchScript model runs no hooks).")
        kept: list[torch.Tensor] = []
        hook = self.explain_layer.register_forward_hook(lambda _m, _i, out: kept.append(_first(out)))
        try:
            feats = self.net(x).flatten(1)
        finally:
            hook.remove()
        return kept[-1], feats

    @staticmethod
    def to_grid(output: torch.Tensor) -> torch.Tensor:
        """The explained layer's output (or its gradient) as an (N, C, h, w) map."""
        return _spatial(output)


def _probe(net: nn.Module, size: int) -> tuple[int, nn.Module | None]:
    """One forward and backward pass of a random photo: the feature dimension, and the last module whose spatial
    output the features depend on (a ViT's final patch tokens do not reach its class token: the last block's
    normalised input does)."""
    outputs: list[tuple[nn.Module, torch.Tensor]] = []

    def keep(module: nn.Module, _inputs, out) -> None:
        out = _first(out)
        if _spatial(out) is not None and out.requires_grad:
            outputs.append((module, out))

    scripted = isinstance(net, torch.jit.ScriptModule)  # TorchScript runs no Python hooks: no map to explain
    hooks = [] if scripted else [m.register_forward_hook(keep) for m in net.modules() if m is not net]
    try:
        with torch.enable_grad():
            x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0), requires_grad=True)
            feats = net(x).flatten(1)
            grads = torch.autograd.grad(feats.square().sum(), [g for _, g in outputs], allow_unused=True) \
                if outputs else ()
    finally:
        for h in hooks:
            h.remove()
    used = [m for (m, _), g in zip(outputs, grads) if g is not None and bool(_spatial(g).abs().sum() > 0)]
    return int(feats.shape[1]), (used[-1] if used else None)


def _input_size(transform: Callable) -> int:
    """The side of the square the transform crops to (the weights' own, else 224)."""
    crop = getattr(transform, "crop_size", None)
    if isinstance(crop, (list, tuple)) and crop:
        return int(crop[0])
    for t in getattr(transform, "transforms", []):
        if type(t).__name__ == "CenterCrop":
            size = t.size
            return int(size[0] if isinstance(size, (list, tuple)) else size)
    return config.IMAGE_SIZE


def _local_state(path: Path, name: str) -> dict:
    if not Path(path).is_file():
        raise WeightsUnavailableError(f"{name}: weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise WeightsUnavailableError(f"{name}: {path} is not a state dict ({exc}).") from exc
    return state.get("state_dict", state) if isinstance(state, dict) else state


def _drop_classifier(net: nn.Module) -> nn.Module:
    """The model with its last Linear layer (the ImageNet classifier) replaced by an identity: pre-logit features."""
    last = None
    for qualified, module in net.named_modules():
        if isinstance(module, nn.Linear):
            last = qualified
    if last is None:
        return net
    parent_name, _, child = last.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, child, nn.Identity())
    return net


def _torchvision(name: str, weights_path: Path | None) -> LibraryTrunk:
    _, model, *rest = name.split(":")
    try:
        enum = models.get_model_weights(model)
        weights = enum[rest[0]] if rest else enum.DEFAULT
    except (ValueError, KeyError) as exc:
        asked = rest[0] if rest else "DEFAULT"
        raise WeightsUnavailableError(f"{name}: torchvision has no classification model {model!r} with weights "
                                      f"{asked!r} (see torchvision.models.list_models()).") from exc
    net = models.get_model(model, weights=None)
    if weights_path is not None:
        state, fingerprint = _local_state(weights_path, name), file_fingerprint(Path(weights_path))
    else:
        try:
            state, fingerprint = weights.get_state_dict(progress=True, check_hash=True), None
        except (urllib.error.URLError, OSError, RuntimeError) as exc:
            raise WeightsUnavailableError(
                f"{name}: the weights {weights} could not be downloaded from {weights.url} ({exc}). Connect once "
                "(they are kept in torch's hub cache), or give a local state dict as this trunk's weights file."
            ) from exc
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsUnavailableError(f"{name}: the weights do not fit {model} ({str(exc)[:200]}).") from exc
    return LibraryTrunk(name, f"{model} ({weights})", _drop_classifier(net), weights.transforms(),
                        fingerprint or file_fingerprint(Path(torch.hub.get_dir()) / "checkpoints" /
                                                        Path(weights.url).name))


def _timm(name: str, weights_path: Path | None) -> LibraryTrunk:
    try:
        import timm
        from timm.data import create_transform, resolve_data_config
    except ImportError as exc:
        raise WeightsUnavailableError(f"{name} needs `pip install timm`.") from exc
    model = name.split(":", 1)[1]
    try:
        # num_classes=0: timm's own pooling and pre-logits (forward_features, then forward_head(pre_logits=True))
        net = timm.create_model(model, pretrained=weights_path is None, num_classes=0)
    except RuntimeError as exc:  # an unknown model name
        raise WeightsUnavailableError(f"{name}: {exc} (see timm.list_models()).") from exc
    except OSError as exc:  # huggingface_hub's download and offline errors are OSErrors
        raise WeightsUnavailableError(
            f"{name}: the pretrained weights could not be downloaded from the Hugging Face Hub "
            f"({type(exc).__name__}). Connect once (they are kept in the Hub cache, HF_HUB_CACHE), or give a local "
            "state dict as this trunk's weights file.") from exc
    if weights_path is not None:
        missing, _ = net.load_state_dict(_local_state(weights_path, name), strict=False)
        if missing:
            raise WeightsUnavailableError(f"{name}: the weights file lacks {len(missing)} of the model's tensors "
                                          f"({', '.join(missing[:3])} ...).")
    transform = create_transform(**resolve_data_config({}, model=net))
    return LibraryTrunk(name, f"{model} (timm)", net, transform)


def _script(name: str, weights_path: Path | None) -> LibraryTrunk:
    path = Path(name.split(":", 1)[1]).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"{name}: no such file {path}.")
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # TorchScript raises many types for a file it cannot read
        raise WeightsUnavailableError(f"{name}: {path} is not a TorchScript model ({str(exc)[:200]}). A state "
                                      "dict goes as the weights file of its architecture's trunk "
                                      "(torchvision:<model> or timm:<model>).") from exc
    transform = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(config.IMAGE_SIZE), v2.ToImage(),
                            v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    return LibraryTrunk(name, f"{path.name} (your model)", net, transform, file_fingerprint(path))


BUILDERS = {"torchvision": _torchvision, "timm": _timm, "file": _script}


def library_trunk_spec(name: str) -> TrunkSpec:
    """The spec of `torchvision:<model>[:<weights>]`, `timm:<model>` or `file:<path>`."""
    kind, _, rest = name.partition(":")
    if kind not in BUILDERS or not rest:
        raise WeightsUnavailableError(f"Unknown trunk {name!r}: write torchvision:<model>[:<weights>], "
                                      "timm:<model> or file:<path>.")
    return TrunkSpec(name, rest, None, lambda weights: BUILDERS[kind](name, weights))
