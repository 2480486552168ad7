"""Preparing the demo gallery: data, the trained encoders, one index per configured encoder, examples, evaluation.
Every step is skipped when its output is already current; a step that fails is reported, the rest run."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from search import config
from search.errors import LandmarkError
from search.evaluation.closed_set import evaluate_all, save_evaluation
from search.evaluation.open_set import evaluate_open_set, save_open_set
from search.index import EVAL, GalleryIndex, examples_dir, index_path, is_current, list_examples, load_index
from search.indexing.encode_stage import Vectors
from search.indexing.runner import build_indexes
from search.models.encoders import REGISTRY, Encoder, EncoderStore, group_by_input
from search.models.training import train_encoder
from search.models.trunks import TrunkFallbackWarning
from search.photos.download import get_data
from search.photos.feature_cache import feature_cache_for
from search.photos.folders import display_name, find_classes, list_items
from search.photos.images import open_image, thumbnail
from search.storage import atomic_path
from search.study import store as study_store

Log = Callable[[str], None]


def write_examples(data_root: Path, index_root: Path, n: int = config.EXAMPLES_COUNT,
                   seed: int = config.SEED) -> list[Path]:
    """Copy n test-split photos from different classes (as 384-px JPEGs) for the app's examples."""
    classes = find_classes(data_root)
    pairs = list_items(data_root, ("test",), classes)
    rng = random.Random(seed)
    by_class: dict[int, list] = {}
    for path, item in pairs:
        by_class.setdefault(item.class_id, []).append(path)
    chosen = [rng.choice(v) for _, v in sorted(by_class.items())]
    rng.shuffle(chosen)
    out_dir = examples_dir(index_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chosen:
        if len(written) == n:
            break
        try:
            img = thumbnail(open_image(path), 384)
        except LandmarkError:
            continue
        dst = out_dir / f"{display_name(path.parent.name).replace(' ', '_')}.jpg"
        with atomic_path(dst) as tmp:
            img.save(tmp, format="JPEG", quality=90)
        written.append(dst)
    return written


@dataclass
class StepLog:
    """What happened to one encoder during preparation."""

    encoder: str
    label: str = ""
    gallery: int | None = None
    p1: float | None = None
    map10: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DemoSetup:
    """What a preparation works with (prepare_demo.py's options): where the photos come from and go, where the
    checkpoints and indexes go, the trunk and its weights, and how long each trained encoder trains."""

    data_dir: Path = config.DEFAULT_DATA_DIR
    index_root: Path = config.INDEX_DIR
    checkpoint_dir: Path = config.CHECKPOINT_DIR
    from_zip: Path | None = None          # a local copy of the dataset's zip
    from_dir: Path | None = None          # a local folder with train/ and test/
    url: str = config.DATASET_URL         # else, downloaded from here
    weights: Path | None = None           # a local VGG16 state dict
    trunk: str | None = None              # None: VGG16, with the offline fallback
    epochs: dict[str, int] = field(default_factory=dict)  # per trained encoder (default: its role's)
    train_cfg: config.TrainConfig = field(default_factory=config.TrainConfig)


def prepare(setup: DemoSetup, log: Log = print) -> tuple[list[StepLog], list[str]]:
    """Run every preparation step that is not already current; return per-encoder results and general notes.

    Without data nothing else can run, so a data failure is raised (the CLI prints it as one error line).
    """
    notes: list[str] = []
    data_dir, index_root, checkpoint_dir = setup.data_dir, setup.index_root, setup.checkpoint_dir
    train_cfg, trunk = setup.train_cfg, setup.trunk
    counts = get_data(data_dir, url=setup.url, zip_path=setup.from_zip, src_dir=setup.from_dir)
    log(f"data: {data_dir} ({counts['train']} train, {counts['test']} test, {counts['classes']} classes)"
        + (" already there" if counts.get("already_present") else ""))
    store = EncoderStore(checkpoint_dir, setup.weights)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TrunkFallbackWarning)
            t = store.trunk(trunk)
        if any(issubclass(w.category, TrunkFallbackWarning) for w in caught):
            notes.append(f"VGG16 weights could not be had: using the offline trunk {t.label}.")
        trunk = t.name
        log(f"trunk: {t.label}")
    except LandmarkError as exc:
        notes.append(f"trunk: {exc}")
        trunk = None
    results = {name: StepLog(name) for name in REGISTRY}
    encoders = train_missing(store, data_dir, trunk, setup.epochs, train_cfg, results, log)
    indexes = current_indexes(encoders, setup, results, notes, log)
    ready = evaluate_missing(encoders, indexes, data_dir, results, log)
    notes += open_set_step(ready, data_dir, store, trunk, log, train_cfg=train_cfg)
    notes += study_step(index_root, log)
    try:
        if not list_examples(index_root):
            write_examples(data_dir, index_root)
    except LandmarkError as exc:
        notes.append(f"examples: {exc}")
    return list(results.values()), notes


def _step(res: StepLog, log: Log, what: Callable[[], object]) -> object | None:
    """Run one encoder's step, timed into `res`; a failure is noted there and stops only that encoder."""
    started = time.time()
    try:
        return what()
    except LandmarkError as exc:
        res.notes.append(f"failed: {exc}")
    except Exception as exc:  # one broken step must not stop the others
        res.notes.append(f"failed: {type(exc).__name__}: {exc}")
        log(traceback.format_exc())
    finally:
        res.seconds = round(res.seconds + time.time() - started, 1)
    return None


def train_missing(store: EncoderStore, data_dir: Path, trunk: str | None, epochs: dict[str, int],
                  train_cfg: config.TrainConfig, results: dict[str, StepLog], log: Log) -> dict[str, Encoder]:
    """Every encoder loaded, each trainable one trained first when it has no usable checkpoint."""
    def load(name: str) -> Encoder:
        spec = REGISTRY[name]
        own = spec.trunk or trunk  # its own trunk, else the default one
        if spec.uses_trunk and own is None:
            raise LandmarkError("no trunk available")
        if spec.trained:
            try:
                store.load(name, trunk=own)
            except LandmarkError:
                log(f"{name}: training")
                kwargs = {"trunk": own} if spec.uses_trunk else {}
                fit = train_encoder(name, data_dir, store.checkpoint_path(name), epochs.get(name, spec.epochs),
                                    store, train_cfg, **kwargs)
                stopped = f" (stopped early after {fit.epochs_run} of {fit.epochs} epochs)" \
                    if fit.epochs_run < fit.epochs else ""
                results[name].notes.append(f"trained, val acc {fit.val_acc:.3f}{stopped}")
        encoder = store.load(name, trunk=own)
        results[name].label = encoder.label
        return encoder

    loaded = {name: _step(results[name], log, lambda n=name: load(n)) for name in REGISTRY}
    return {n: e for n, e in loaded.items() if e is not None}


def current_indexes(encoders: dict[str, Encoder], setup: DemoSetup, results: dict[str, StepLog], notes: list[str],
                    log: Log) -> dict[str, GalleryIndex]:
    """Each encoder's index of the train split: loaded when current, the stale ones built together (each photo
    read once per input, a trunk shared by pretrained and transfer run once)."""
    indexes, stale = {}, []
    for name, encoder in encoders.items():
        if is_current(setup.index_root, encoder, setup.data_dir, "train"):
            indexes[name] = _step(results[name], log,
                                  lambda e=encoder: load_index(index_path(setup.index_root, e.name), e))
            log(f"{name}: index is current")
        else:
            stale.append(encoder)
    if stale:
        started = time.time()
        for name, index in _build_stale(stale, setup, results, log).items():
            indexes[name] = index
            results[name].notes.append("index built")
        notes.append(f"indexes of {', '.join(e.name for e in stale)} built together: {time.time() - started:.0f} s")
    for name, index in indexes.items():
        if index is not None:
            results[name].gallery = index.manifest["count"]
    return {n: ix for n, ix in indexes.items() if ix is not None}


def _build_stale(stale: list[Encoder], setup: DemoSetup, results: dict[str, StepLog],
                 log: Log) -> dict[str, GalleryIndex]:
    """The stale encoders' indexes built together (a failure is noted for each of them, and none is built)."""
    for e in stale:
        log(f"{e.name}: building index of {setup.data_dir}" + (" (together with the others: one read per input)"
                                                                 if len(stale) > 1 else ""))
    built = {}
    try:
        groups = group_by_input(stale)  # per trunk: the features its head's training kept are read, not computed
        for group in sorted(groups, key=lambda g: g[0].trunk is not None):
            kept = feature_cache_for(setup.checkpoint_dir, group[0].trunk) if group[0].trunk is not None else None
            built.update(build_indexes(group, setup.data_dir, "train", setup.index_root,
                                       vectors=Vectors(features=kept)))
    except LandmarkError as exc:
        for e in stale:
            results[e.name].notes.append(f"failed: {exc}")
        return {}
    return built


def evaluate_missing(encoders: dict[str, Encoder], indexes: dict[str, GalleryIndex], data_dir: Path,
                     results: dict[str, StepLog], log: Log) -> dict[str, tuple[Encoder, GalleryIndex]]:
    """Every index evaluated and calibrated (the ones that are not yet, their test photos read together)."""
    todo = {n: (encoders[n], ix) for n, ix in indexes.items() if ix.eval_report() is None or ix.calibration is None}
    if todo:
        log(f"{' + '.join(todo)}: evaluating and calibrating match confidence")
        evaluations = _step(results[next(iter(todo))], log, lambda: evaluate_all(todo, data_dir)) or {}
        for name, result in evaluations.items():
            save_evaluation(result, indexes[name])
    ready = {}
    for name, index in indexes.items():
        report = index.eval_report()
        if report is not None:
            results[name].p1, results[name].map10 = report["precision@1"], report["mAP@10"]
            ready[name] = (encoders[name], index)
    return ready


def open_set_step(ready: dict[str, tuple[Encoder, GalleryIndex]], data_dir: Path, store: EncoderStore,
                  trunk: str | None, log: Log = print, cfg: config.OpenSetConfig = config.OPEN_SET,
                  train_cfg: config.TrainConfig = config.TrainConfig()) -> list[str]:
    """Fit and score the open-set match confidence of the ready encoders when any lacks one; its own time line."""
    if not ready or all(ix.confidence is not None and "open_set" in (ix.eval_report() or {})
                        for _, ix in ready.values()):
        return []
    started = time.time()
    try:
        results = evaluate_open_set(ready, data_dir, store, dataclasses.replace(cfg, trunk=trunk), train_cfg, log=log)
    except LandmarkError as exc:
        return [f"open-set evaluation failed: {exc}"]
    for name, result in results.items():
        index = ready[name][1]
        save_open_set(result, index, index.path / EVAL)
    return [f"open-set evaluation (match confidence with landmarks left out: {cfg.folds} folds, scratch "
            f"{cfg.scratch_folds} fold models of {cfg.scratch_epochs} epochs): {time.time() - started:.0f} s"]


def study_step(index_root: Path, log: Log = print) -> list[str]:
    """Compare the encoders over the whole gallery (the Study tab) when the saved study is missing or stale."""
    started = time.time()
    indexes = loadable_indexes(index_root)
    try:
        result = study_store.ensure(index_root, indexes, log)
    except LandmarkError as exc:
        return [f"study failed: {exc}"]
    if result is None:
        return []
    return [f"study of {len(indexes)} encoders over {len(result['photos'])} photos: {time.time() - started:.0f} s"]


def loadable_indexes(index_root: Path) -> dict[str, GalleryIndex]:
    """Every encoder's index under `index_root` that loads and verifies (as saved, whatever encoder made it)."""
    out = {}
    for name in REGISTRY:
        try:
            out[name] = load_index(index_path(index_root, name))
        except LandmarkError:
            continue
    return out


def summary_table(results: list[StepLog]) -> str:
    """A fixed-width table: encoder, label, gallery size, P@1, mAP@10, time, notes."""
    rows = [("encoder", "model", "gallery", "P@1", "mAP@10", "time", "notes")]
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    for r in results:
        rows.append((r.encoder, r.label or "-", fmt(r.gallery), fmt(r.p1), fmt(r.map10), f"{r.seconds:.0f}s",
                     "; ".join(r.notes) or "up to date"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def gallery_index_dir(photo_dir: Path, root: Path = config.INDEX_DIR) -> Path:
    """Where `app.py --gallery DIR` keeps DIR's indexes: one folder per photo folder, named after it."""
    resolved = Path(photo_dir).resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    return Path(root) / "galleries" / f"{resolved.name or 'photos'}-{digest}"


def prepare_gallery(photo_dir: Path, index_root: Path, checkpoint_dir: Path, weights: Path | None = None,
                    trunk: str | None = None, log: Log = print) -> list[StepLog]:
    """Index any photo folder with every encoder that can be loaded, reusing indexes that are current; the stale
    ones are built together (one read of the photos, one pass of the shared trunk)."""
    store = EncoderStore(checkpoint_dir, weights)
    results, stale = {}, []
    for name in REGISTRY:
        res = results[name] = StepLog(name)
        try:
            encoder = store.load(name, trunk=trunk)
        except LandmarkError as exc:
            res.notes.append(f"unavailable: {exc}")
            continue
        res.label = encoder.label
        if is_current(index_root, encoder, photo_dir, "all"):
            res.gallery = load_index(index_path(index_root, name), encoder).manifest["count"]
            log(f"{name}: index is current")
        else:
            stale.append(encoder)
    if stale:
        log(f"{' + '.join(e.name for e in stale)}: building indexes of {photo_dir}")
        started = time.time()
        for name, index in build_indexes(stale, photo_dir, "all", index_root).items():
            results[name].gallery = index.manifest["count"]
            results[name].notes.append("index built")
            results[name].seconds = round(time.time() - started, 1)
    return list(results.values())
