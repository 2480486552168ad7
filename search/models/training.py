"""Training recipes for the two trained encoders: scratch CNN and transfer head. Seeded, resumable."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchvision.transforms import v2
from tqdm.auto import tqdm

from search import config
from search.errors import LandmarkError
from search.models.augment import scratch_augment
from search.models.checkpoint import save_checkpoint
from search.models.encoders import register_trainer, spec
from search.models.malloc import keep_freed_memory
from search.models.networks import ScratchNet, TransferHead, arch_dict, scratch_transform
from search.models.trunks import Trunk
from search.photos.decode_cache import CachedPhotos, DecodeCache, Prep, cache_dir_for, decoded_transform
from search.photos.feature_cache import FeatureCache, feature_cache_for
from search.photos.folders import ClassFolder, find_classes, split_dir, stratified_split, warn_bad
from search.photos.reader import PhotoReader, make_loader
from search.storage import save_torch

Log = Callable[[str], None]


class TrunkSource(Protocol):
    """Where training gets the frozen trunk from (`search.models.encoders.EncoderStore` is one)."""

    def trunk(self, name: str | None = None) -> Trunk: ...


@dataclass
class FitResult:
    """What a training run produced."""

    encoder: str
    checkpoint: str
    val_acc: float
    best_epoch: int
    epochs: int
    history: list[dict] = field(default_factory=list)
    epochs_run: int = 0  # fewer than `epochs` when it stopped early

    def json(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if k != "history"})


def _batches(loader: DataLoader) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) from either a tolerant image loader or a plain tensor loader."""
    for batch in loader:
        if isinstance(batch, dict):
            warn_bad(batch["errors"])
            if batch["image"] is None:
                continue
            yield batch["image"], batch["target"]
        else:
            yield batch[0], batch[1]


def autocast(device: torch.device) -> torch.autocast:
    """Mixed precision for training where it is measured to pay and keeps the results: float16 on CUDA, bfloat16 on
    a CPU with native bfloat16 (config.TRAIN_BF16_CPU); otherwise a no-op."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.TRAIN_BF16_CPU and cpu_has_bf16())


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 natively (AVX512-BF16 or AMX), where autocast is fast, not emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def run_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
               optimizer: torch.optim.Optimizer | None, desc: str,
               scaler: torch.amp.GradScaler | None = None,
               batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[float, float]:
    """One pass; trains when an optimizer is given, in mixed precision where `autocast` turns it on, with
    `batch_transform` applied to each batch on the model's device. Returns (mean loss, accuracy)."""
    keep_freed_memory()
    model.train(optimizer is not None)
    dev = next(model.parameters()).device
    layout = torch.channels_last if config.TRAIN_CHANNELS_LAST else torch.contiguous_format
    total, correct, loss_sum = 0, 0, 0.0
    with torch.set_grad_enabled(optimizer is not None):
        for x, y in tqdm(_batches(loader), total=len(loader), desc=desc, leave=False):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if batch_transform is not None:
                x = batch_transform(x)
            if x.dim() == 4:
                x = x.contiguous(memory_format=layout)
            with autocast(dev):
                logits = model(x)
                loss = loss_fn(logits, y)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
    return loss_sum / max(total, 1), correct / max(total, 1)


@dataclass(frozen=True)
class Batches:
    """What a fit reads: a training loader per epoch (made for that epoch, so it is seeded by it), the validation
    loader, and the augmentation applied to each training batch (None: none)."""

    train: Callable[[int], DataLoader]
    val: DataLoader
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass(frozen=True)
class Target:
    """Where a fit keeps its best checkpoint, for which encoder kind, and what else the checkpoint records (its
    "classes" at least)."""

    out: Path
    encoder: str
    extra: dict


def fit(model: nn.Module, batches: Batches, epochs: int, target: Target, cfg: config.TrainConfig,
        log: Log = tqdm.write) -> FitResult:
    """Seeded training loop with per-epoch validation, best-by-validation checkpoint and resume state (unless
    `cfg.fresh`); stops early once validation accuracy has not improved for `cfg.patience` epochs."""
    out, encoder, checkpoint_extra = Path(target.out), target.encoder, target.extra
    state_path = out.with_name(out.name + ".state")
    model.to(config.device())
    if config.TRAIN_CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    scaler = torch.amp.GradScaler("cuda") if config.device().type == "cuda" else None
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay, fused=config.TRAIN_FUSED_ADAMW)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    start, best_acc, best_epoch, history, stopped = 0, -1.0, 0, [], False
    if state_path.is_file() and out.is_file() and not cfg.fresh:
        state = torch.load(state_path, map_location=config.device(), weights_only=True)
        if state["classes"] == checkpoint_extra["classes"] and state["epochs"] == epochs:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start, best_acc, best_epoch = state["epoch"], state["best_acc"], state["best_epoch"]
            history, stopped = json.loads(state["history"]), bool(state.get("stopped", False))
            log(f"resuming {encoder} from epoch {start}/{epochs} (best val acc {best_acc:.3f})")
    for epoch in range(start, epochs if not stopped else start):
        torch.manual_seed(cfg.seed + epoch)  # each epoch's shuffling, augmentation and dropout
        train_loss, train_acc = run_epoch(model, batches.train(epoch), loss_fn, optimizer,
                                           f"{encoder} epoch {epoch + 1}/{epochs}", scaler, batches.augment)
        val_loss, val_acc = run_epoch(model, batches.val, loss_fn, None, "validate")
        scheduler.step()
        history.append({"epoch": epoch + 1, "train_loss": round(train_loss, 4), "train_acc": round(train_acc, 4),
                        "val_loss": round(val_loss, 4), "val_acc": round(val_acc, 4)})
        log(f"epoch {epoch + 1:3d}/{epochs}  train loss {train_loss:.4f} acc {train_acc:.3f}  "
            f"val loss {val_loss:.4f} acc {val_acc:.3f}")
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch + 1
            save_checkpoint(out, encoder, model.state_dict(), val_acc=val_acc, epoch=epoch + 1, **checkpoint_extra)
        stopped = cfg.patience is not None and epoch + 1 - best_epoch >= cfg.patience and epoch + 1 < epochs
        save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "epochs": epochs,
                    "best_acc": best_acc, "best_epoch": best_epoch, "history": json.dumps(history),
                    "classes": checkpoint_extra["classes"], "stopped": stopped}, state_path)
        if stopped:
            log(f"stopping early: validation accuracy has not improved for {cfg.patience} epochs "
                f"(best {best_acc:.3f} at epoch {best_epoch})")
            break
    return FitResult(encoder, str(out), round(best_acc, 4), best_epoch, epochs, history, len(history))


def prepared(dataset: Dataset, batch_size: int, workers: int) -> DataLoader:
    """A loader over a deterministically transformed dataset's decodable images, transformed once and kept as
    tensors: validation then runs on the same inputs every epoch without preparing them again (measured: 0.2 s of a
    2.8 s epoch on the development photos)."""
    xs, ys = [], []
    for x, y in _batches(make_loader(dataset, batch_size, workers=workers)):
        xs.append(x)
        ys.append(y)
    if not xs:
        return DataLoader(TensorDataset(torch.empty(0), torch.empty(0, dtype=torch.long)), batch_size=batch_size)
    return DataLoader(TensorDataset(torch.cat(xs), torch.cat(ys)), batch_size=batch_size)


def _train_val_sets(data_dir: Path, cfg: config.TrainConfig, train_tf, eval_tf, only: Sequence[str] | None = None,
                    cache: DecodeCache | None = None):
    """The train split's classes and its (train, validation) subsets; `only` keeps those classes alone (ids 0..n-1
    in their sorted order), for models that must not see the landmarks an open-set evaluation leaves out. With a
    decode cache, the photos are decoded once (there) and the transforms run on its small uint8 tensors."""
    classes = find_classes(data_dir)
    if len(classes) < 2:
        raise LandmarkError(f"{data_dir}/train needs at least 2 class folders, found {len(classes)}.")
    listing = ClassFolder(split_dir(data_dir, "train"), classes)
    samples = listing.samples
    if only is not None:
        keep = [c for c in classes if c in set(only)]
        samples = [(p, keep.index(classes[t])) for p, t in samples if classes[t] in keep]
        classes = keep
        listing.targets = [t for _, t in samples]
    if cache is not None:
        images = cache.load([p for p, _ in samples], workers=cfg.decode_workers)
        targets, names = [t for _, t in samples], [str(p) for p, _ in samples]
        train_all, eval_all = CachedPhotos(images, targets, train_tf, names), CachedPhotos(images, targets, eval_tf,
                                                                                            names)
    else:
        train_all, eval_all = PhotoReader(samples, train_tf), PhotoReader(samples, eval_tf)
    tr_idx, va_idx = stratified_split(listing.targets, cfg.val_fraction, cfg.seed)
    return classes, Subset(train_all, tr_idx.tolist()), Subset(eval_all, va_idx.tolist())


@register_trainer("scratch")
def train_scratch(data_dir: Path, out: Path, epochs: int, store: TrunkSource | None = None,
                  cfg: config.TrainConfig = config.TrainConfig(), log: Log = tqdm.write,
                  only: Sequence[str] | None = None) -> FitResult:
    """Train the scratch CNN with augmentation (on the classes `only` names, if given); keep the best-by-validation
    checkpoint. With `cfg.decode_once` each photo is decoded once into the cache in `cfg.cache_dir` (by default next
    to `out`); without, it is decoded in every epoch to the same pixels."""
    torch.manual_seed(cfg.seed)
    prep = Prep()
    cache = DecodeCache(cfg.cache_dir or cache_dir_for(Path(out).parent), prep) if cfg.decode_once else None
    augment = scratch_augment()
    train_tf, eval_tf = augment.photo, scratch_transform()
    if cache is None:  # the same pixels the cache would hold, decoded again every time
        train_tf = v2.Compose([decoded_transform(prep), train_tf])
        eval_tf = v2.Compose([decoded_transform(prep), eval_tf])
    classes, train_set, val_set = _train_val_sets(Path(data_dir), cfg, train_tf, eval_tf, only, cache)
    arch = config.ScratchConfig()
    model = ScratchNet(len(classes), arch)
    workers = cfg.augment_workers if cache is not None else cfg.decode_workers
    val_loader = prepared(val_set, cfg.eval_batch_size, workers)
    batches = Batches(lambda epoch: make_loader(train_set, cfg.batch_size, shuffle=True, workers=workers,
                                                seed=cfg.seed + epoch), val_loader, augment.batch)
    return fit(model, batches, epochs, Target(out, "scratch", {"classes": classes, "arch": arch_dict(arch)}), cfg, log)


def trunk_features(trunk: Trunk, dataset, batch_size: int, workers: int, flip: bool = False,
                   desc: str = "trunk features", keep: FeatureCache | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen-trunk features of every decodable image (optionally of its mirror image too); `keep` keeps each
    photo's own (unmirrored) features for the index builds that read the same photos through the same trunk."""
    feats, targets = [], []
    reader = dataset.dataset if isinstance(dataset, Subset) else dataset
    with torch.inference_mode():
        for batch in tqdm(make_loader(dataset, batch_size, workers=workers), desc=desc):
            warn_bad(batch["errors"])
            if batch["image"] is None:
                continue
            x = batch["image"].to(config.device())
            feats.append(trunk(x).cpu())
            if keep is not None:
                keep.put([reader.samples[i][0] for i in batch["index"]], feats[-1])
            targets.append(batch["target"])
            if flip:
                feats.append(trunk(torch.flip(x, dims=[3])).cpu())
                targets.append(batch["target"])
    return torch.cat(feats).clone(), torch.cat(targets).clone()


@dataclass
class TrunkFeatures:
    """Frozen-trunk features of the train split for the transfer head: train (with mirrored copies) and validation."""

    trunk: Trunk
    classes: list[str]
    xtr: torch.Tensor
    ytr: torch.Tensor
    xva: torch.Tensor
    yva: torch.Tensor

    def only(self, keep: Sequence[int]) -> TrunkFeatures:
        """The rows of the classes `keep` (ids into `classes`), relabelled 0..len(keep)-1 in that order."""
        keep = list(keep)
        remap = torch.full((len(self.classes),), -1, dtype=torch.long)
        remap[torch.tensor(keep, dtype=torch.long)] = torch.arange(len(keep))
        tr, va = remap[self.ytr] >= 0, remap[self.yva] >= 0
        return TrunkFeatures(self.trunk, [self.classes[i] for i in keep], self.xtr[tr], remap[self.ytr[tr]],
                             self.xva[va], remap[self.yva[va]])


def transfer_features(data_dir: Path, cache_dir: Path, store: TrunkSource,
                      cfg: config.TrainConfig = config.TrainConfig(), trunk: str | None = None,
                      log: Log = tqdm.write) -> TrunkFeatures:
    """The trunk's features of the train split, computed once and cached (keyed by trunk, classes and photos)."""
    t = store.trunk(trunk)
    log(f"trunk: {t.label} ({t.fingerprint})")
    classes, train_set, val_set = _train_val_sets(Path(data_dir), cfg, t.transform, t.transform)
    cache = Path(cache_dir) / f"trunk-features-{t.name}-{t.fingerprint}.pt"
    key = {"classes": classes, "train": train_set.indices, "val": val_set.indices,
           "samples": [s[0] for s in train_set.dataset.samples]}
    cached = torch.load(cache, weights_only=True) if cache.is_file() else None
    if cached is not None and cached["key"] == json.dumps(key):
        log(f"using cached trunk features {cache}")
        return TrunkFeatures(t, classes, cached["xtr"], cached["ytr"], cached["xva"], cached["yva"])
    keep = feature_cache_for(Path(cache_dir).parent, t)
    xtr, ytr = trunk_features(t, train_set, config.ENCODE_BATCH_SIZE, cfg.decode_workers, flip=True,
                              desc="trunk features (train)", keep=keep)
    xva, yva = trunk_features(t, val_set, config.ENCODE_BATCH_SIZE, cfg.decode_workers, desc="trunk features (val)",
                              keep=keep)
    save_torch({"key": json.dumps(key), "xtr": xtr, "ytr": ytr, "xva": xva, "yva": yva}, cache)
    return TrunkFeatures(t, classes, xtr, ytr, xva, yva)


def fit_head(feats: TrunkFeatures, out: Path, epochs: int, cfg: config.TrainConfig = config.TrainConfig(),
             log: Log = tqdm.write) -> FitResult:
    """Train a new transfer head on cached trunk features; keep the best-by-validation checkpoint."""
    arch = config.HeadConfig()
    torch.manual_seed(cfg.seed)  # the head's initial weights must not depend on whether the trunk was just built
    head = TransferHead(feats.trunk.dim, len(feats.classes), arch)
    train_ds, val_ds = TensorDataset(feats.xtr, feats.ytr), TensorDataset(feats.xva, feats.yva)
    val_loader = DataLoader(val_ds, batch_size=256)
    t = feats.trunk
    batches = Batches(lambda epoch: DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True,
                                               generator=torch.Generator().manual_seed(cfg.seed + epoch)), val_loader)
    recorded = {"classes": feats.classes, "arch": arch_dict(arch), "trunk": t.name, "trunk_fingerprint": t.fingerprint}
    return fit(head, batches, epochs, Target(Path(out), "transfer", recorded), cfg, log)


@register_trainer("transfer")
def train_transfer(data_dir: Path, out: Path, epochs: int, store: TrunkSource,
                   cfg: config.TrainConfig = config.TrainConfig(), trunk: str | None = None,
                   log: Log = tqdm.write) -> FitResult:
    """Train a new head on the frozen trunk, computing the trunk's features once and caching them."""
    torch.manual_seed(cfg.seed)
    feats = transfer_features(data_dir, Path(out).parent / "cache", store, cfg, trunk, log)
    return fit_head(feats, out, epochs, cfg, log)


def train_encoder(name: str, *args, **kwargs) -> FitResult:
    """Train encoder `name` with its role's trainer (registered above)."""
    trainer = spec(name).kind.trainer
    if trainer is None:
        raise LandmarkError(f"The {name} encoder is not trained: it is used as it is.")
    return trainer(*args, **kwargs)

