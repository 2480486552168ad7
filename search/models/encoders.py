"""The three encoders (scratch, pretrained, transfer): one registry, one way to load and run them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from search import config
from search.errors import WeightsUnavailableError
from search.models.checkpoint import load_checkpoint
from search.models.networks import (  # noqa: F401
    IMAGENET_MEAN,
    IMAGENET_STD,
    ScratchNet,
    TransferHead,
    arch_dict,
    scratch_config,
    scratch_transform,
)
from search.models.trunks import TRUNKS, Trunk, file_fingerprint, load_trunk


class Encoder:
    """Maps PIL images (or preprocessed batches) to L2-normalised float32 vectors.

    Trunk-based encoders are `head(trunk(x))`, so several of them can share one trunk pass
    (`embed_trunk_features`); the scratch CNN is a single `net`.
    """

    def __init__(self, name: str, label: str, dim: int, fingerprint: str, transform: Callable,
                 net: ScratchNet | None = None, trunk: Trunk | None = None,
                 head: Callable[[torch.Tensor], torch.Tensor] | None = None, classes: Sequence[str] = ()):
        if (net is None) == (trunk is None):
            raise ValueError("an encoder is either a net or a trunk with a head")
        self.name, self.label, self.dim = name, label, dim
        self.fingerprint, self.transform = fingerprint, transform
        self.trunk, self.head, self.classes = trunk, head or (lambda f: f), list(classes)
        self.recipe: dict | None = None  # set by EncoderStore.load
        self.device: torch.device | None = None  # where `to` last put it (None: where it was built)
        self._embed = net.embed if net is not None else (lambda x: self.head(self.trunk(x)))
        owner = getattr(head, "__self__", None)
        self.modules = [m for m in (net, trunk, owner) if isinstance(m, nn.Module)]
        if net is not None:
            self._conv_maps, self._from_maps = net.conv_maps, net.embed_from_maps
        else:
            self._conv_maps, self._from_maps = trunk.conv_maps, lambda m: self.head(trunk.pool_maps(m))

    def to(self, device: torch.device) -> Encoder:
        """Move the encoder's modules (a shared trunk moves once for all its encoders)."""
        for m in self.modules:
            m.to(device)
        self.device = device
        return self

    def conv_maps(self, batch: torch.Tensor) -> torch.Tensor:
        """Preprocessed batch -> the last convolutional feature map (differentiable; for explanations)."""
        x = batch.to(config.device())
        return self._conv_maps(x.contiguous(memory_format=torch.channels_last) if config.CHANNELS_LAST else x)

    def embed_from_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """Last conv feature map -> (N, dim) embeddings before normalisation (differentiable)."""
        return self._from_maps(maps)

    def maps_and_embedding(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Callable]:
        """For heatmaps (call with gradients on): the last spatial feature map in the graph, the (N, dim) embeddings
        before normalisation computed from it, and what makes that map or its gradient an (N, C, h, w) grid."""
        maps_and_features = getattr(self.trunk, "maps_and_features", None)
        if maps_and_features is not None:  # a library trunk: the map is read by a hook during the whole pass
            maps, feats = maps_and_features(batch.to(config.device()).requires_grad_(True))
            return maps, self.head(feats), self.trunk.to_grid
        maps = self.conv_maps(batch).detach().float().requires_grad_(True)
        return maps, self.embed_from_maps(maps), lambda t: t

    def embed_trunk_features(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, trunk dim) features of this encoder's trunk -> (N, dim) unit vectors."""
        with torch.inference_mode():
            return F.normalize(self.head(feats).float(), dim=1).cpu()

    @property
    def trunk_name(self) -> str | None:
        return self.trunk.name if self.trunk is not None else None

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """Preprocessed batch (N, 3, H, W) -> (N, dim) unit vectors."""
        with torch.inference_mode():
            return F.normalize(self._embed(batch.to(config.device())).float(), dim=1).cpu()

    def encode(self, images: Sequence[Image.Image], batch_size: int = config.ENCODE_BATCH_SIZE) -> np.ndarray:
        """RGB PIL images -> (N, dim) float32 unit vectors."""
        out = [self.embed(torch.stack([self.transform(im) for im in images[i:i + batch_size]])).numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def input_key(encoder: Encoder) -> int:
    """Encoders with the same key take the same preprocessed input: a shared trunk (and its transform)."""
    return id(encoder.trunk) if encoder.trunk is not None else id(encoder)


def group_by_input(encoders: Sequence[Encoder]) -> list[list[Encoder]]:
    """The encoders in groups that take the same input (in first-seen order), for embed_shared."""
    groups: dict[int, list[Encoder]] = {}
    for e in encoders:
        groups.setdefault(input_key(e), []).append(e)
    return list(groups.values())


def embed_shared(encoders: Sequence[Encoder], batch: torch.Tensor) -> list[torch.Tensor]:
    """One preprocessed batch under several encoders of the same input_key, running their trunk once."""
    return embed_shared_with_trunk(encoders, batch)[0]


def embed_shared_with_trunk(encoders: Sequence[Encoder], batch: torch.Tensor
                            ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """`embed_shared`, plus the trunk's own features from the same pass (None without a trunk)."""
    if len({input_key(e) for e in encoders}) != 1:
        raise ValueError("embed_shared needs encoders that take the same input (one trunk).")
    if encoders[0].trunk is None:
        return [encoders[0].embed(batch)], None
    with torch.inference_mode():
        feats = encoders[0].trunk(batch.to(config.device()))
    return [e.embed_trunk_features(feats) for e in encoders], feats


def combine(*parts: str) -> str:
    """Fingerprint of several fingerprints."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def build_scratch(ckpt_path: Path, trunk: Trunk | None) -> Encoder:
    """The scratch CNN from its checkpoint."""
    ckpt = load_checkpoint(ckpt_path, "scratch", REGISTRY["scratch"].checkpoint_keys)
    net = ScratchNet(len(ckpt["classes"]), scratch_config(ckpt["arch"]))
    net.load_state_dict(ckpt["state_dict"])
    net.to(config.device()).eval()
    return Encoder("scratch", "scratch CNN", net.embed_dim, file_fingerprint(ckpt_path),
                   scratch_transform(), net=net, classes=ckpt["classes"])


def build_pretrained(ckpt_path: Path | None, trunk: Trunk) -> Encoder:
    """The ImageNet trunk as it is."""
    return Encoder("pretrained", f"pretrained - {trunk.label}", trunk.dim, trunk.fingerprint,
                   trunk.transform, trunk=trunk)


def build_transfer(ckpt_path: Path, trunk: Trunk) -> Encoder:
    """The retrained head on the shared frozen trunk."""
    ckpt = load_checkpoint(ckpt_path, "transfer", REGISTRY["transfer"].checkpoint_keys)
    if ckpt["trunk"] != trunk.name or ckpt["trunk_fingerprint"] != trunk.fingerprint:
        raise WeightsUnavailableError(
            f"{ckpt_path} was trained on trunk {ckpt['trunk']} ({ckpt['trunk_fingerprint']}) but the trunk "
            f"in use is {trunk.name} ({trunk.fingerprint}): retrain with scripts/train.py --encoder "
            f"transfer --trunk {trunk.name}.")
    head = TransferHead(trunk.dim, len(ckpt["classes"]), config.HeadConfig(**ckpt["arch"]))
    head.load_state_dict(ckpt["state_dict"])
    head.to(config.device()).eval()
    return Encoder("transfer", f"transfer - {trunk.label} + landmark head", head.embed_dim,
                   combine(file_fingerprint(ckpt_path), trunk.fingerprint), trunk.transform,
                   trunk=trunk, head=head.embed, classes=ckpt["classes"])


@dataclass(frozen=True)
class EncoderSpec:
    """Everything about one encoder of the product: what it is, its backbone, how it is trained (and for how long
    by default), its checkpoint's file and format, and how to build it. Adding an encoder touches this table."""

    name: str
    title: str
    description: str
    backbone: str                        # "scratch-cnn" (its own net) or "imagenet-trunk" (a shared trunk)
    build: Callable[[Path | None, Trunk | None], Encoder]
    checkpoint: str | None = None        # file name under the checkpoint dir; None: nothing trained
    checkpoint_keys: tuple[str, ...] = ()  # what the checkpoint must hold (checked when loading)
    trainer: str | None = None           # the function of search.models.training that trains it
    epochs: int | None = None            # training default

    @property
    def uses_trunk(self) -> bool:
        return self.backbone == "imagenet-trunk"


REGISTRY: dict[str, EncoderSpec] = {spec.name: spec for spec in (
    EncoderSpec("scratch", "Scratch CNN",
                "A small CNN trained from scratch on the landmark photos: tends to match colour, light and mood.",
                "scratch-cnn", build_scratch, "scratch.pt", ("encoder", "state_dict", "classes", "arch"),
                "train_scratch", epochs=30),
    EncoderSpec("pretrained", "Pretrained ImageNet CNN",
                "An ImageNet CNN used as it is: matches general visual content (sky, water, towers, crowds).",
                "imagenet-trunk", build_pretrained),
    EncoderSpec("transfer", "Transfer learning",
                "The same frozen ImageNet trunk with a head retrained on the landmarks: matches the landmark itself.",
                "imagenet-trunk", build_transfer, "transfer_head.pt",
                ("encoder", "state_dict", "classes", "arch", "trunk", "trunk_fingerprint"),
                "train_transfer", epochs=30),
)}
TRAINABLE = tuple(n for n, s in REGISTRY.items() if s.trainer is not None)
ENCODER_NAMES = tuple(REGISTRY)


def spec(name: str) -> EncoderSpec:
    """The registry entry for `name`, or a clear error listing the valid names."""
    if name not in REGISTRY:
        raise WeightsUnavailableError(f"Unknown encoder {name!r}; choose one of {', '.join(REGISTRY)}.")
    return REGISTRY[name]


class EncoderStore:
    """Loads encoders on demand, sharing one trunk object between every encoder that needs it."""

    def __init__(self, checkpoint_dir: Path = config.CHECKPOINT_DIR, weights: Path | None = None):
        self.checkpoint_dir = Path(checkpoint_dir)
        self.weights = weights
        self._trunks: dict[str, Trunk] = {}

    def trunk(self, name: str | None = None, allow_fallback: bool = True) -> Trunk:
        """The shared trunk of that name (default: env or VGG16, with the offline fallback)."""
        key = name or "default"
        if key not in self._trunks:
            t = load_trunk(name, self.weights, allow_fallback=allow_fallback)
            self._trunks[key] = self._trunks.setdefault(t.name, t)
        return self._trunks[key]

    def checkpoint_path(self, name: str) -> Path | None:
        s = spec(name)
        return self.checkpoint_dir / s.checkpoint if s.checkpoint else None

    def load(self, name: str, trunk: str | None = None, allow_fallback: bool = True) -> Encoder:
        """Build encoder `name`; `trunk` names the trunk (an index's manifest does, when loading one)."""
        s = spec(name)
        t = self.trunk(trunk, allow_fallback=allow_fallback and trunk is None) if s.uses_trunk else None
        encoder = s.build(self.checkpoint_path(name), t)
        # Enough to build the very same encoder in another process (a Ray worker): its fingerprint checks it.
        encoder.recipe = {"name": name, "checkpoint_dir": str(self.checkpoint_dir.resolve()),
                          "weights": str(Path(self.weights).resolve()) if self.weights else None,
                          "trunk": encoder.trunk_name}
        return encoder


def trunk_label(name: str | None) -> str:
    """Display label of a trunk name."""
    return TRUNKS[name].label if name in TRUNKS else (name or "-")
