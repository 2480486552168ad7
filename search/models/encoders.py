"""The encoders the app compares (the encoders file's, by default scratch, pretrained and transfer): one registry,
one way to load and run them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from search import config
from search.errors import WeightsUnavailableError
from search.models.checkpoint import load_checkpoint
from search.models.encoder_file import EncoderFileError, chosen_file, read_encoder_file
from search.models.networks import (  # noqa: F401
    IMAGENET_MEAN,
    IMAGENET_STD,
    ScratchNet,
    TransferHead,
    arch_dict,
    scratch_config,
    scratch_transform,
)
from search.models.trunks import Trunk, file_fingerprint, load_trunk


@dataclass(frozen=True)
class Network:
    """What computes an encoder's embedding: its own network (a scratch CNN), or a shared trunk with, for a
    transfer encoder, its head."""

    net: ScratchNet | None = None
    trunk: Trunk | None = None
    head: TransferHead | None = None


class Encoder:
    """Maps PIL images (or preprocessed batches) to L2-normalised float32 vectors.

    Trunk-based encoders are `head(trunk(x))`, so several of them can share one trunk pass
    (`embed_trunk_features`); the scratch CNN is a single `net`.
    """

    def __init__(self, name: str, label: str, fingerprint: str, transform: Callable, network: Network,
                 classes: Sequence[str] = ()):
        net, trunk, head = network.net, network.trunk, network.head
        if (net is None) == (trunk is None):
            raise ValueError("an encoder is either a net or a trunk with a head")
        self.name, self.label = name, label
        self.dim = net.embed_dim if net is not None else head.embed_dim if head is not None else trunk.dim
        self.fingerprint, self.transform = fingerprint, transform
        self.trunk, self.head, self.classes = trunk, head.embed if head is not None else (lambda f: f), list(classes)
        self.recipe: dict | None = None  # set by EncoderStore.load
        self.expansion: dict | None = None  # {"kind": "aqe", "k"?, "alpha"?}: set by EncoderSpec.build
        self.device: torch.device | None = None  # where `to` last put it (None: where it was built)
        self._embed = net.embed if net is not None else (lambda x: self.head(self.trunk(x)))
        self.modules = [m for m in (net, trunk, head) if isinstance(m, nn.Module)]
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


def build_scratch(s: EncoderSpec, ckpt_path: Path, trunk: Trunk | None) -> Encoder:
    """A scratch CNN from its checkpoint."""
    ckpt = load_checkpoint(ckpt_path, "scratch", s.checkpoint_keys, name=s.name)
    net = ScratchNet(len(ckpt["classes"]), scratch_config(ckpt["arch"]))
    net.load_state_dict(ckpt["state_dict"])
    net.to(config.device()).eval()
    return Encoder(s.name, s.label or f"{s.name} CNN", file_fingerprint(ckpt_path), scratch_transform(),
                   Network(net=net), ckpt["classes"])


def build_frozen(s: EncoderSpec, ckpt_path: Path | None, trunk: Trunk) -> Encoder:
    """An ImageNet trunk as it is."""
    return Encoder(s.name, s.label or f"{s.name} - {trunk.label}", trunk.fingerprint, trunk.transform,
                   Network(trunk=trunk))


def build_transfer(s: EncoderSpec, ckpt_path: Path, trunk: Trunk) -> Encoder:
    """A retrained head on a shared frozen trunk."""
    ckpt = load_checkpoint(ckpt_path, "transfer", s.checkpoint_keys, name=s.name)
    if ckpt["trunk"] != trunk.name or ckpt["trunk_fingerprint"] != trunk.fingerprint:
        raise WeightsUnavailableError(
            f"{ckpt_path} was trained on trunk {ckpt['trunk']} ({ckpt['trunk_fingerprint']}) but the trunk "
            f"in use is {trunk.name} ({trunk.fingerprint}): retrain with scripts/train.py --encoder "
            f"{s.name} --trunk {trunk.name}.")
    head = TransferHead(trunk.dim, len(ckpt["classes"]), config.HeadConfig(**ckpt["arch"]))
    head.load_state_dict(ckpt["state_dict"])
    head.to(config.device()).eval()
    return Encoder(s.name, s.label or f"{s.name} - {trunk.label} + landmark head",
                   combine(file_fingerprint(ckpt_path), trunk.fingerprint), trunk.transform,
                   Network(trunk=trunk, head=head), ckpt["classes"])


@dataclass(frozen=True)
class Role:
    """What an encoder of one role is: its default title and description, how it is built and trained, and what
    its checkpoint holds. The encoders file gives each encoder a role."""

    title: str
    description: str
    build: Callable[[EncoderSpec, Path | None, Trunk | None], Encoder]
    checkpoint: str | None = None          # the checkpoint's file name, from the encoder's name
    checkpoint_keys: tuple[str, ...] = ()  # what the checkpoint must hold (checked when loading)
    trained: bool = False                  # trained on the landmark photos (its checkpoint is what training wrote)
    epochs: int | None = None              # training default
    uses_trunk: bool = True                # on a shared ImageNet trunk, or its own network
    # The function that trains it: search.models.training registers it (register_trainer), so that serving, which
    # never imports training, still knows every role.
    trainer: Callable[..., Any] | None = None


ROLES: dict[str, Role] = {
    "scratch": Role("Scratch CNN",
                    "A small CNN trained from scratch on the landmark photos: tends to match colour, light and mood.",
                    build_scratch, "{name}.pt", ("encoder", "state_dict", "classes", "arch"), True, 30,
                    uses_trunk=False),
    "frozen": Role("Pretrained ImageNet CNN",
                   "An ImageNet CNN used as it is: matches general visual content (sky, water, towers, crowds).",
                   build_frozen),
    "transfer": Role("Transfer learning",
                     "The same frozen ImageNet trunk with a head retrained on the landmarks: matches the landmark "
                     "itself.", build_transfer, "{name}_head.pt",
                     ("encoder", "state_dict", "classes", "arch", "trunk", "trunk_fingerprint"), True, 30),
}


def register_trainer(role: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the function that trains encoders of `role` (a registry, as timm's models register)."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        ROLES[role] = dataclasses.replace(ROLES[role], trainer=fn)
        return fn

    return register


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder of the encoders file: its name, role and trunk, and what its role makes of them."""

    name: str
    role: str
    trunk: str | None = None        # None: the default trunk
    weights: Path | None = None     # a local state dict for the trunk
    label: str | None = None        # None: made from the name, role and trunk when built
    about: str | None = None        # None: the role's description
    train_epochs: int | None = None  # None: the role's default
    expansion: tuple[tuple[str, object], ...] | None = None  # the encoders file's query expansion (None: none)

    @property
    def kind(self) -> Role:
        return ROLES[self.role]

    @property
    def title(self) -> str:
        return self.label or self.kind.title

    @property
    def description(self) -> str:
        return self.about or self.kind.description

    @property
    def epochs(self) -> int | None:
        return self.train_epochs or self.kind.epochs

    @property
    def uses_trunk(self) -> bool:
        return self.kind.uses_trunk

    @property
    def checkpoint(self) -> str | None:
        return self.kind.checkpoint.format(name=self.name) if self.kind.checkpoint else None

    @property
    def checkpoint_keys(self) -> tuple[str, ...]:
        return self.kind.checkpoint_keys

    @property
    def trained(self) -> bool:
        return self.kind.trained

    def build(self, ckpt_path: Path | None, trunk: Trunk | None) -> Encoder:
        encoder = self.kind.build(self, ckpt_path, trunk)
        if self.expansion:  # the same network, searched with query expansion: an index of its own
            encoder.expansion = dict(self.expansion)
            encoder.fingerprint = combine(encoder.fingerprint, json.dumps(encoder.expansion, sort_keys=True))
            if not self.label:
                encoder.label += " + query expansion"
        return encoder


class Registry(Mapping[str, EncoderSpec]):
    """The encoders file in use, in display order: filled by an entry point's use_encoders(); a program that reads
    it without having chosen a file gets the default one ($LANDMARK_ENCODERS, else encoders.toml), read then."""

    def __init__(self):
        self._specs: dict[str, EncoderSpec] | None = None
        self.path: Path | None = None

    def use(self, path: Path, specs: dict[str, EncoderSpec]) -> None:
        self._specs, self.path = specs, path

    @property
    def specs(self) -> dict[str, EncoderSpec]:
        if self._specs is None:
            use_encoders()
        return self._specs

    def __getitem__(self, name: str) -> EncoderSpec:
        return self.specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)


REGISTRY = Registry()


def use_encoders(path: Path | str | None = None) -> Path:
    """Make the encoders of a file (default: $LANDMARK_ENCODERS, else encoders.toml) the registry of this process;
    returns the file's path (encoder recipes carry it to the processes that rebuild an encoder, Ray workers)."""
    chosen = chosen_file(path).resolve()
    entries = read_encoder_file(chosen)
    trunks: dict[str | None, Path | None] = {}
    for e in entries:
        if e.role != "scratch" and trunks.setdefault(e.trunk, e.weights) != e.weights:
            raise EncoderFileError(f"{chosen}: two encoders use trunk {e.trunk or 'the default'} with different "
                                   "weights; give one of them as file:<TorchScript path> instead.")
    REGISTRY.use(chosen, {e.name: EncoderSpec(e.name, e.role, e.trunk, e.weights, e.label, e.description, e.epochs,
                                                      e.expansion)
                          for e in entries})
    return chosen


def trainable() -> tuple[str, ...]:
    """The configured encoders that are trained (scratch and transfer roles)."""
    return tuple(n for n, s in REGISTRY.items() if s.trained)


def trunk_weights(trunk: str | None) -> Path | None:
    """The local weights the encoders file gives for a trunk (None: none given)."""
    return next((s.weights for s in REGISTRY.values() if s.uses_trunk and s.trunk == trunk and s.weights), None)


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
        """The shared trunk of that name (default: env or VGG16, with the offline fallback): a trunk the encoders file
        names with the weights it gives (or downloads them), any other (the default one) with this store's."""
        key = name or "default"
        if key not in self._trunks:
            named = any(s.uses_trunk and s.trunk == name for s in REGISTRY.values()) and name is not None
            weights = trunk_weights(name) if named else self.weights  # the file's for its trunks, else --weights
            t = load_trunk(name, weights, allow_fallback=allow_fallback)
            self._trunks[key] = self._trunks.setdefault(t.name, t)
        return self._trunks[key]

    def checkpoint_path(self, name: str) -> Path | None:
        s = spec(name)
        return self.checkpoint_dir / s.checkpoint if s.checkpoint else None

    def load(self, name: str, trunk: str | None = None, allow_fallback: bool = True) -> Encoder:
        """Build encoder `name`; `trunk` names the trunk (an index's manifest does, when loading one)."""
        s = spec(name)
        trunk = s.trunk or trunk  # its own trunk; else the one named (an index manifest's, the default)
        t = self.trunk(trunk, allow_fallback=allow_fallback and trunk is None) if s.uses_trunk else None
        encoder = s.build(self.checkpoint_path(name), t)
        # Enough to build the very same encoder in another process (a Ray worker): its fingerprint checks it.
        encoder.recipe = {"name": name, "checkpoint_dir": str(self.checkpoint_dir.resolve()),
                          "weights": str(Path(self.weights).resolve()) if self.weights else None,
                          "trunk": encoder.trunk_name, "encoders": str(REGISTRY.path)}
        return encoder

