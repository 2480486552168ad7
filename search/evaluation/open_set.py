"""Open-set evaluation: queries whose landmark the gallery lacks, by leaving landmarks out.

The landmark classes are split into seeded folds. For each fold, the test photos are searched against the train
gallery without that fold's landmarks; `scratch` and `transfer` search with a model trained without them too (one
model per fold, kept under the checkpoint folder, so a re-run reuses them), `pretrained` with the ImageNet trunk as
it is. From those rankings:
- the match confidence is fitted (`search.retrieval.confidence`), with absent-landmark queries among its negatives;
  its figures
  are cross-validated over the folds (a fold is scored by a confidence fitted without it), today's distance-only
  curve is scored on the same protocol for comparison, and the confidence the app uses is fitted on every fold;
- `unseen`: retrieval of the left-out landmarks against the whole gallery by the models that never saw them, beside
  `pretrained` on the same queries: the study's "accurate versus general" trade-off as a number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from search import config
from search.errors import BadIndexError
from search.index import GalleryIndex, attach_confidence
from search.indexing.encode_stage import encode_local
from search.models.encoders import REGISTRY, Encoder, EncoderStore, build_scratch, build_transfer
from search.models.training import fit_head, train_scratch, transfer_features, trunk_features
from search.models.trunks import Trunk
from search.photos.decode_cache import cache_dir_for
from search.photos.folders import find_classes, list_items
from search.photos.reader import PhotoReader
from search.retrieval import expansion
from search.retrieval.calibration import fit_calibration, pair_distances
from search.retrieval.confidence import (
    BASE_FEATURES,
    LANDMARK_FEATURE,
    TRUNK_FEATURE,
    Confidence,
    calibration_error,
    class_folds,
    fit_confidence,
    fit_curve,
    hit_features,
    match_threshold,
    open_set_intervals,
    open_set_report,
    reliability,
)
from search.retrieval.expansion import QueryExpansion, ranked
from search.retrieval.landmark_gaussians import LandmarkGaussians, fit_landmark_gaussians, landmark_space
from search.retrieval.metrics import retrieval_report
from search.storage import write_json

Log = Callable[[str], None]
OPEN_SET_DIRNAME = "open-set"  # under the checkpoint folder: the per-fold models


@dataclass
class Photos:
    """The photos of one split that the trunk could decode: paths, class ids, metadata paths, raw trunk features."""

    paths: list[Path]
    labels: np.ndarray
    rel: list[str]
    raw: np.ndarray          # (n, trunk dim) before normalisation: the transfer head's input

    @cached_property
    def trunk_unit(self) -> np.ndarray:
        return self.raw / np.linalg.norm(self.raw, axis=1, keepdims=True).clip(1e-12)


@dataclass
class FoldRun:
    """One encoder on one fold: per-hit evidence and truth, and today's distance-only P of the top hit."""

    held_out: np.ndarray     # the fold's landmarks (class ids), left out of its gallery
    feats: np.ndarray        # (queries, k, F)
    same: np.ndarray         # (queries, k) the hit shows the query's landmark
    absent: np.ndarray       # (queries,) the query's landmark is not in this fold's gallery
    p_before: np.ndarray     # (queries,) isotonic curve on distance, fitted on this fold's closed-set pairs
    unseen: dict = field(default_factory=dict)


@dataclass
class OpenSetResult:
    """What the open-set evaluation of one encoder gives: its report, the app's confidence, the rows' trunk vectors
    and the landmark Gaussians it reads."""

    report: dict
    confidence: Confidence
    trunk_vectors: np.ndarray | None
    landmarks: LandmarkGaussians | None = None


def trunk_photos(trunk: Trunk, data_root: Path, split: str, classes: Sequence[str],
                 workers: int | None = None) -> Photos:
    """Raw trunk features of one split's decodable photos (one pass; undecodable ones are skipped with a warning)."""
    listing = list_items(data_root, (split,), classes)
    # each photo's position as its target, so the features come back with which photos they are
    feats, kept = trunk_features(trunk, PhotoReader([(p, i) for i, (p, _) in enumerate(listing)], trunk.transform),
                                 config.ENCODE_BATCH_SIZE, workers, desc=f"trunk features ({split})")
    kept = kept.tolist()
    return Photos([listing[i][0] for i in kept], np.array([listing[i][1].class_id for i in kept]),
                  [listing[i][1].path for i in kept], feats.float().numpy())


@dataclass(frozen=True)
class FoldSearch:
    """How a fold's queries are searched: the hits kept, whether the confidence reads the trunk's distances, the
    principal axes of the landmark Gaussians it reads (fitted on each fold's gallery), and the encoder's query
    expansion (its augmented gallery recomputed on each fold's gallery, or it would leak the landmarks held out)."""

    k: int
    trunk: bool = False
    expansion: QueryExpansion | None = None
    landmark_dims: int = config.OPEN_SET.landmark_dims


def _fold_run(train_emb: np.ndarray, test_emb: np.ndarray, train: Photos, test: Photos, held_out: np.ndarray,
              search: FoldSearch) -> FoldRun:
    """Rank every test photo against the train photos of the landmarks not held out; collect the evidence."""
    k, trunk = search.k, search.trunk
    in_gallery = ~np.isin(train.labels, held_out)
    g_rows = np.flatnonzero(in_gallery)
    idx, dist = ranked(test_emb, train_emb[g_rows], k, search.expansion)
    hit_labels = train.labels[g_rows][idx]
    trunk_d = None
    if trunk:
        tq, tg = test.trunk_unit, train.trunk_unit[g_rows]
        trunk_d = np.linalg.norm(tq[:, None, :] - tg[idx], axis=2)
    gaussians = fit_landmark_gaussians(landmark_space(train_emb[g_rows], train.trunk_unit[g_rows] if trunk else None),
                                       train.labels[g_rows], search.landmark_dims, trunk)
    landmark_d = gaussians.distances(landmark_space(test_emb, test.trunk_unit if trunk else None), hit_labels)
    absent = np.isin(test.labels, held_out)
    present = ~absent
    pair_d, pair_same = pair_distances(test_emb[present], train_emb[g_rows], test.labels[present], train.labels[g_rows])
    curve = fit_calibration(pair_d, pair_same)
    return FoldRun(held_out, hit_features(dist, hit_labels, trunk_d, landmark_distances=landmark_d),
                   hit_labels == test.labels[:, None], absent, curve(dist[:, 0]),
                   _unseen(train_emb, test_emb, train, test, absent, search.expansion))


def _unseen(train_emb: np.ndarray, test_emb: np.ndarray, train: Photos, test: Photos, absent: np.ndarray,
            qe: QueryExpansion | None = None) -> dict:
    """The left-out landmarks against the whole gallery: retrieval of landmarks this model never saw."""
    if not absent.any():
        return {}
    idx, _ = ranked(test_emb[absent], train_emb, 10, qe)
    right = (train.labels[idx[:, 0]] == test.labels[absent]).astype(int)
    return {**retrieval_report(test.labels[absent], train.labels[idx], train.labels, map_k=10),
            "per_query": {"query": [r for r, a in zip(test.rel, absent) if a], "precision@1": right.tolist()}}


def _fold_tag(held_out: np.ndarray, classes: Sequence[str], epochs: int, extra: str = "") -> str:
    """A name for a fold model that changes with what it is trained on and how long."""
    body = json.dumps({"held_out": [classes[i] for i in held_out], "classes": list(classes), "epochs": epochs,
                       "extra": extra})
    return hashlib.sha256(body.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class OpenSetJob:
    """What every encoder and fold of one open-set evaluation shares: the photos' root and landmark folders, the
    store that loads the models and keeps the fold models, the settings, and the log."""

    data_root: Path
    classes: list[str]
    store: EncoderStore
    cfg: config.OpenSetConfig
    train_cfg: config.TrainConfig
    log: Log


def feature_names(role: str) -> tuple[str, ...]:
    """The hit features a role's confidence reads: a transfer encoder's also reads its trunk's own distance; every
    one reads the distance to the hit's landmark."""
    return BASE_FEATURES + ((TRUNK_FEATURE,) if role == "transfer" else ()) + (LANDMARK_FEATURE,)


def _fold_embeddings(job: OpenSetJob, name: str, photos: tuple[Photos, Photos], held_out: np.ndarray, trunk: Trunk,
                     features) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) unit vectors of encoder `name` for one fold: trained without the held-out landmarks."""
    store, classes, cfg, train_cfg = job.store, job.classes, job.cfg, job.train_cfg
    train, test = photos
    keep = [i for i in range(len(classes)) if i not in set(held_out.tolist())]
    folder = store.checkpoint_dir / OPEN_SET_DIRNAME
    role = REGISTRY[name].role
    if role == "frozen":
        return train.trunk_unit, test.trunk_unit
    if role == "transfer":
        out = folder / f"transfer-{_fold_tag(held_out, classes, cfg.transfer_epochs, trunk.fingerprint)}.pt"
        if not out.is_file():
            fit_head(features.only(keep), out, cfg.transfer_epochs, train_cfg, log=lambda s: None)
        enc = build_transfer(REGISTRY[name], out, trunk)
        return (enc.embed_trunk_features(torch.from_numpy(train.raw)).numpy(),
                enc.embed_trunk_features(torch.from_numpy(test.raw)).numpy())
    out = folder / f"scratch-{_fold_tag(held_out, classes, cfg.scratch_epochs)}.pt"
    if not out.is_file():
        job.log(f"scratch: training the fold model without {len(held_out)} landmarks ({cfg.scratch_epochs} epochs)")
        decoded_once = dataclasses.replace(train_cfg, cache_dir=cache_dir_for(store.checkpoint_dir))
        train_scratch(job.data_root, out, cfg.scratch_epochs, store, decoded_once, log=lambda s: None,
                      only=[classes[i] for i in keep])
    enc: Encoder = build_scratch(REGISTRY[name], out, None)
    return (encode_local(enc, train.paths, None, desc="fold gallery").embeddings,
            encode_local(enc, test.paths, None, desc="fold queries").embeddings)


def evaluate_open_set(pairs: dict[str, tuple[Encoder, GalleryIndex | None]], data_root: Path, store: EncoderStore,
                      cfg: config.OpenSetConfig = config.OPEN_SET, train_cfg: config.TrainConfig = config.TrainConfig(),
                      log: Log = print) -> dict[str, OpenSetResult]:
    """The open-set evaluation of every given encoder with its index (see the module docstring); per encoder its
    result."""
    classes = find_classes(data_root)
    job = OpenSetJob(Path(data_root), classes, store, cfg, train_cfg, log)
    encoders = {n: e for n, (e, _) in pairs.items()}
    workers = cfg.workers
    first = next((e.trunk for e in encoders.values() if e.trunk is not None), None) or store.trunk(cfg.trunk)
    started = time.perf_counter()
    photos: dict[int, tuple[Photos, Photos]] = {}  # per trunk: its features of the train and test photos

    def photos_of(trunk: Trunk) -> tuple[Photos, Photos]:
        if id(trunk) not in photos:
            log(f"open set: trunk features of the train and test photos ({trunk.label})")
            photos[id(trunk)] = (trunk_photos(trunk, data_root, "train", classes, workers),
                                 trunk_photos(trunk, data_root, "test", classes, workers))
        return photos[id(trunk)]

    fold_sets = {n: class_folds(len(classes), min(n, len(classes)), cfg.seed) for n in {cfg.folds, cfg.scratch_folds}}
    results: dict[str, OpenSetResult] = {}
    for name, encoder in encoders.items():
        t0 = time.perf_counter()
        role = REGISTRY[name].role
        trunk = encoder.trunk or first  # a scratch CNN reads the photos (and their labels) any trunk read
        train, test = photos_of(trunk)
        features = None
        if role == "transfer":
            features = transfer_features(data_root, store.checkpoint_dir / "cache", store, train_cfg, trunk.name,
                                         log=lambda s: None)
        folds = fold_sets[cfg.scratch_folds if role == "scratch" else cfg.folds]
        search = FoldSearch(cfg.k, role == "transfer", expansion.from_dict(encoder.expansion), cfg.landmark_dims)
        runs = []
        for held_out in folds:
            train_emb, test_emb = _fold_embeddings(job, name, (train, test), held_out, trunk, features)
            runs.append(_fold_run(train_emb, test_emb, train, test, held_out, search))
        results[name] = _summarise(job, name, runs, pairs[name], (train, test), time.perf_counter() - t0)
        log(f"open set: {name} done in {time.perf_counter() - t0:.0f} s")
    # the (first) trunk as it is on the very queries the trained encoders never saw: what "general" buys
    train, test = photos_of(first)
    baseline = _mean_unseen([_unseen(train.trunk_unit, test.trunk_unit, train, test, np.isin(test.labels, h))
                             for h in fold_sets[cfg.folds]])
    for r in results.values():
        if "unseen" in r.report:
            r.report["unseen"]["pretrained"] = baseline
        r.report["seconds_all_encoders"] = round(time.perf_counter() - started, 1)
    return results


def _rows(runs: Sequence[FoldRun]) -> tuple[np.ndarray, np.ndarray]:
    """Every (query, hit) row of the runs: features and whether the hit shows the query's landmark."""
    return (np.concatenate([r.feats.reshape(-1, r.feats.shape[2]) for r in runs]),
            np.concatenate([r.same.ravel() for r in runs]))


def recalibrated_confidence(runs: Sequence[FoldRun], names: tuple[str, ...], k: int,
                            encoder_fingerprint: str = "") -> Confidence:
    """The logistic confidence fitted on every hit of the runs, recalibrated by isotonic curves (the top hit's, the
    lower hits') fitted on the runs' own out-of-fold scores: each run scored by a logistic fitted without it. One run
    has no out-of-fold scores: its logistic stays as it is."""
    base = fit_confidence(*_rows(runs), names, k, encoder_fingerprint)
    if len(runs) < 2:
        return base
    scores, right = [], []
    for g, held in enumerate(runs):
        rest = [r for h, r in enumerate(runs) if h != g]
        scores.append(fit_confidence(*_rows(rest), names, k)(held.feats))
        right.append(held.same)
    s, y = np.concatenate(scores), np.concatenate(right)
    return dataclasses.replace(base, top=fit_curve(s[:, 0], y[:, 0]), rest=fit_curve(s[:, 1:], y[:, 1:]))


def _cross_validated(runs: Sequence[FoldRun], names: tuple[str, ...], k: int
                     ) -> tuple[list[np.ndarray], list[float], np.ndarray]:
    """Per fold: the top hits' P from a confidence fitted (recalibration included) without that fold, and the match
    threshold chosen without it too (from the other folds' own cross-validated P of their absent-landmark queries);
    and every top hit's P from that fold's logistic alone (what the recalibration is measured against)."""
    p_out, thresholds, uncalibrated = [], [], []
    for f, run in enumerate(runs):
        others = [r for g, r in enumerate(runs) if g != f]
        confidence = recalibrated_confidence(others, names, k)
        p_out.append(confidence.ranked(run.feats)[:, 0])
        uncalibrated.append(confidence(run.feats[:, 0, :]))
        inner = []
        for g, held in enumerate(others):  # inner folds: each other fold predicted by a fit on the rest of them
            rest = [r for h, r in enumerate(others) if h != g]
            inner.append(recalibrated_confidence(rest, names, k).ranked(held.feats)[:, 0][held.absent])
        thresholds.append(match_threshold(np.concatenate(inner)))
    return p_out, thresholds, np.concatenate(uncalibrated)


def _summarise(job: OpenSetJob, name: str, runs: list[FoldRun], backend: tuple[Encoder, GalleryIndex | None],
               photos: tuple[Photos, Photos], seconds: float) -> OpenSetResult:
    """The encoder's open-set report from its fold runs, and the confidence the app uses (fitted on every fold)."""
    encoder, index = backend
    cfg, classes, names = job.cfg, job.classes, feature_names(REGISTRY[name].role)
    folds = [r.held_out for r in runs]
    p_folds, thresholds, uncalibrated = _cross_validated(runs, names, cfg.k)
    p_all, c_all, a_all = (np.concatenate(v) for v in (p_folds, [r.same[:, 0] for r in runs], [r.absent for r in runs]))
    # each fold's queries judged at its own held-out threshold; AUROC and GAP need none
    per_query = np.concatenate([np.full(len(p), t) for p, t in zip(p_folds, thresholds)])
    after = {**open_set_report(p_all, c_all, a_all, per_query), "threshold": [round(t, 4) for t in thresholds],
             "ci95": open_set_intervals(p_all, c_all, a_all, per_query)}
    threshold = match_threshold(p_all[a_all])  # the app's: from every fold's held-out P
    published = np.round(p_all, 4)  # the calibration figures are those of the P eval.json keeps
    confidence = dataclasses.replace(recalibrated_confidence(runs, names, cfg.k, encoder.fingerprint),
                                     threshold=threshold)
    report = {"open_set": after,
              "open_set_before": open_set_report(np.concatenate([r.p_before for r in runs]), c_all, a_all),
              "match_threshold": round(threshold, 4),
              "reliability": reliability(published, c_all),
              "calibration_error": calibration_error(published, c_all),
              "calibration_error_uncalibrated": calibration_error(uncalibrated, c_all),
              # every scored query's top hit: its out-of-fold P and whether it was right (rebin as you like)
              "out_of_fold": {"p": published.tolist(), "right": c_all.tolist()},
              "folds": len(folds), "held_out": [[classes[i] for i in h] for h in folds],
              "features": list(names), "seconds": round(seconds, 1)}
    if REGISTRY[name].role != "frozen":
        report["unseen"] = _mean_unseen([r.unseen for r in runs])
        report["fold_epochs"] = cfg.scratch_epochs if REGISTRY[name].role == "scratch" else cfg.transfer_epochs
    trunk_vectors = _row_trunk_vectors(index, name, *photos) if TRUNK_FEATURE in names and index else None
    landmarks = None
    if index is not None:  # fitted on the whole gallery the app searches, as each fold's were on its gallery
        landmarks = fit_landmark_gaussians(landmark_space(index.embeddings, trunk_vectors),
                                           np.array([it["class_id"] for it in index.items]), cfg.landmark_dims,
                                           trunk_vectors is not None)
    return OpenSetResult(report, confidence, trunk_vectors, landmarks)


def _row_trunk_vectors(index: GalleryIndex, name: str, *splits: Photos) -> np.ndarray:
    """The trunk's unit vector of every row of the index, in row order (its photos are among the splits read)."""
    vectors = {rel: v for photos in splits for rel, v in zip(photos.rel, photos.trunk_unit)}
    missing = [it["path"] for it in index.items if it["path"] not in vectors]
    if missing:
        raise BadIndexError(f"{len(missing)} photos of the {name} index (e.g. {missing[0]}) are not among the photos "
                          "evaluated: rebuild the index from this dataset.")
    return np.stack([vectors[it["path"]] for it in index.items])


def _mean_unseen(runs: Sequence[dict]) -> dict:
    """P@1 and mAP@10 over every left-out query of every fold (query-weighted)."""
    n = sum(r.get("queries", 0) for r in runs)
    if not n:
        return {}
    each = [r["per_query"] for r in runs if r]
    return {key: round(sum(r[key] * r["queries"] for r in runs if r) / n, 4)
            for key in ("precision@1", "mAP@10")} | {"queries": n, "per_query": {
                key: [v for e in each for v in e[key]] for key in ("query", "precision@1")}}


def save_open_set(result: OpenSetResult, index: GalleryIndex, eval_path: Path) -> None:
    """Merge the open-set report into the index's eval.json and attach the confidence (both atomically)."""
    try:
        report = json.loads(Path(eval_path).read_text())
    except (OSError, ValueError):
        report = {"encoder_fingerprint": index.manifest["encoder_fingerprint"]}
    report.update(result.report)
    write_json(report, eval_path)
    attach_confidence(index, result.confidence, result.trunk_vectors, result.landmarks)
