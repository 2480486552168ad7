"""The saved study of a set of indexes: computed from their vectors and evaluations, written next to them with
checksums and what it was computed from, loaded and verified at start, recomputed when any index changed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from search.errors import BadIndexError
from search.index import EVAL, GalleryIndex
from search.models.encoders import REGISTRY
from search.photos.images import open_image
from search.storage import sha256_file, write_json
from search.study.compute import (
    colour_agreement,
    colour_histogram,
    findings,
    knn,
    landmark_differences,
    retrieval_differences,
    study,
)

FOLDER, DATA, MANIFEST = "study", "study.json", "manifest.json"
SCHEMA = 1


def study_dir(index_root: Path) -> Path:
    """Where the study of the indexes under `index_root` lives."""
    return Path(index_root) / FOLDER


def depends(indexes: dict[str, GalleryIndex]) -> dict[str, dict]:
    """What a study is computed from: each index's manifest checksum and its evaluation file's sha256."""
    out = {}
    for name, index in indexes.items():
        ev = index.path / EVAL
        out[name] = {"manifest": index.manifest["checksum"], "eval": sha256_file(ev) if ev.is_file() else None}
    return out


def trained_on_landmarks(indexes: dict[str, GalleryIndex]) -> dict[str, bool]:
    """Per encoder, whether its role trains it on the landmark photos (scratch, transfer) or not (frozen)."""
    return {n: n in REGISTRY and REGISTRY[n].trained for n in indexes}


def compute(indexes: dict[str, GalleryIndex], log: Callable[[str], None] = lambda s: None) -> dict:
    """The study of these indexes: agreement, maps, separation (by class or group), colour agreement and, from
    each index's evaluation, its per-landmark figures, confusions and retrieval of unseen landmarks."""
    started = time.perf_counter()
    labelled = all(len(i.manifest.get("classes") or []) > 1 for i in indexes.values())
    result = study({n: i.ranked_vectors for n, i in indexes.items()}, {n: i.coords for n, i in indexes.items()},
                   {n: [it["path"] for it in i.items] for n, i in indexes.items()},
                   {n: np.array([it["class_id"] for it in i.items]) for n, i in indexes.items()} if labelled else None)
    first = next(iter(indexes.values()))
    rows = {it["path"]: r for r, it in enumerate(first.items)}
    colour = np.stack([colour_histogram(open_image(first.thumbnail_path(rows[p]))) for p in result["photos"]])
    result["colour_per_photo"] = colour_agreement({n: np.array(v) for n, v in result["neighbours"].items()},
                                                  knn(colour, result["k"]))
    result["colour_agreement"] = {n: round(float(np.mean(v)), 4) for n, v in result["colour_per_photo"].items()}
    reports = {n: i.eval_report() or {} for n, i in indexes.items()}
    result["classes"] = {n: r["by_class"] for n, r in reports.items() if "by_class" in r}
    result["confusions"] = {n: r["confusions"] for n, r in reports.items() if "confusions" in r}
    result["unseen"] = {n: {"seen": r["precision@1"], "unseen": r["unseen"]["precision@1"], "trained": True}
                        for n, r in reports.items() if "unseen" in r and "precision@1" in r}
    result["trained"] = trained_on_landmarks(indexes)
    for name in (n for n, r in reports.items() if result["unseen"] and "precision@1" in r
                 and not result["trained"][n]):
        p1 = reports[name]["precision@1"]  # never trained on any landmark: every one is unseen to it
        result["unseen"][name] = {"seen": p1, "unseen": p1, "trained": False}
    _unseen_per_query(result["unseen"], reports)
    per_query = {n: r["per_query"] for n, r in reports.items() if "per_query" in r}
    result["differences"] = retrieval_differences(per_query)
    result["landmark_differences"] = {m: landmark_differences(per_query, m) for m in ("precision@1", "mAP@10")}
    result["findings"] = findings(result)
    result["seconds"] = round(time.perf_counter() - started, 2)
    log(f"study of {len(indexes)} indexes, {len(result['photos'])} photos: {result['seconds']} s")
    return result


def _unseen_per_query(unseen: dict[str, dict], reports: dict[str, dict]) -> None:
    """Each encoder's P@1 per test photo on landmarks it saw and on those left out of its training (the same photos,
    by path): what tells whether one generalises better than another."""
    for name, u in unseen.items():
        closed = reports[name].get("per_query")
        left_out = (reports[name].get("unseen") or {}).get("per_query") if u["trained"] else closed
        if not closed or not left_out:
            continue
        seen = dict(zip(closed["query"], closed["precision@1"]))
        queries = [q for q in left_out["query"] if q in seen]
        unseen_of = dict(zip(left_out["query"], left_out["precision@1"]))
        u["per_query"] = {"query": queries, "seen": [seen[q] for q in queries],
                          "unseen": [unseen_of[q] for q in queries]}


def save(index_root: Path, result: dict, deps: dict[str, dict]) -> Path:
    """Write the study and its manifest (checksum, dependencies), each atomically; the manifest last."""
    folder = study_dir(index_root)
    write_json(result, folder / DATA)
    write_json({"schema": SCHEMA, "depends": deps, "sha256": sha256_file(folder / DATA),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, folder / MANIFEST)
    return folder / DATA


def load(index_root: Path, indexes: dict[str, GalleryIndex]) -> dict | None:
    """The saved study when it is intact and of exactly these indexes; None when there is none or it is stale;
    a clear error when it is corrupt."""
    folder = study_dir(index_root)
    if not (folder / MANIFEST).is_file():
        return None
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("schema") != SCHEMA or manifest.get("depends") != depends(indexes):
            return None
        if not (folder / DATA).is_file() or sha256_file(folder / DATA) != manifest.get("sha256"):
            raise BadIndexError(f"{folder / DATA} is corrupt (checksum mismatch): run scripts/study.py.")
        return json.loads((folder / DATA).read_text())
    except (OSError, ValueError) as exc:
        raise BadIndexError(f"{folder} is corrupt ({exc}): run scripts/study.py.") from exc


def ensure(index_root: Path, indexes: dict[str, GalleryIndex], log: Callable[[str], None] = print) -> dict | None:
    """The study of these indexes: the saved one, or computed and saved when missing, stale or corrupt (None for
    fewer than two indexes: there is nothing to compare)."""
    if len(indexes) < 2:
        return None
    try:
        saved = load(index_root, indexes)
    except BadIndexError as exc:
        log(f"{exc} Recomputing it.")
        saved = None
    if saved is not None:
        saved["trained"] = trained_on_landmarks(indexes)  # the roles as configured now
        return {**saved, "findings": findings(saved)}  # stated by this code's wording, from the saved numbers
    result = compute(indexes, log)
    if os.access(Path(index_root), os.W_OK):
        save(index_root, result, depends(indexes))
    return result
