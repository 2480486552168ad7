"""Retrieval quality of an encoder: test-split photos as queries against the train-split gallery."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search import config
from search.errors import BadIndexError, DatasetError
from search.index import EVAL, GalleryIndex, attach_calibration
from search.indexing.encode_stage import Encoded, encode_local, encode_shared
from search.models.encoders import REGISTRY, Encoder, group_by_input
from search.photos.folders import detect_layout, find_classes, list_items
from search.retrieval.calibration import Calibration, fit_calibration, pair_distances
from search.retrieval.expansion import ranked
from search.retrieval.intervals import interval
from search.retrieval.metrics import confusions, near_identical, per_class, per_query, retrieval_report
from search.storage import write_json


@dataclass
class Evaluation:
    """An encoder's retrieval report and the match-confidence curve fitted on the same query x gallery pairs."""

    report: dict
    calibration: Calibration | None


def evaluate(encoder: Encoder, index: GalleryIndex, data_root: Path, k: int = 10,
             workers: int | None = None, encoded: Encoded | None = None, encode_seconds: float = 0.0) -> Evaluation:
    """Precision@1/5/10 and mAP@10 of `encoder` on the test split against the index's train items, and
    the distance -> P(same landmark) curve fitted on every (test photo, train photo) pair. `encoded` are the test
    photos already encoded by this encoder, in `encode_seconds` (see `evaluate_all`)."""
    folders = index.manifest["class_folders"]
    if detect_layout(data_root) != "splits":
        raise DatasetError(f"{data_root} has no train/ and test/ split, so there is nothing to measure: metrics need "
                          "test photos of known landmarks searched against train photos.")
    classes = find_classes(data_root)
    if classes != folders:
        raise DatasetError(f"{data_root} has classes {len(classes)} that differ from the index's {len(folders)}: "
                          "rebuild the index from this dataset.")
    gallery_rows = np.array([i for i, it in enumerate(index.items) if it["split"] == "train"])
    if len(gallery_rows) == 0:
        raise BadIndexError(f"{index.path} has no train-split items to evaluate against: build it with --split train "
                          "or all.")
    queries = list_items(data_root, ("test",), classes)
    if encoded is None:  # the queries' thumbnails join the shared folder, for the Study tab's confusion examples
        t = time.perf_counter()
        encoded = encode_local(encoder, [p for p, _ in queries], index.thumbs, config.BuildConfig(workers=workers),
                               desc="encoding queries")
        encode_seconds = time.perf_counter() - t
    started = time.perf_counter()
    q_emb, kept = encoded.embeddings, encoded.kept
    q_labels = np.array([queries[i][1].class_id for i in kept])
    g_labels = np.array([index.items[i]["class_id"] for i in gallery_rows])
    gallery = index.embeddings[gallery_rows]
    whole = len(gallery_rows) == len(index.items)  # else the augmented gallery is recomputed on the train photos
    idx, _ = ranked(q_emb, gallery, k, index.expansion, index.augmented if whole else None)
    each = per_query(q_labels, g_labels[idx], g_labels, map_k=k)
    report = {"encoder": encoder.name, "label": encoder.label,
              **retrieval_report(q_labels, g_labels[idx], g_labels, map_k=k),
              "ci95": {key: interval(v) for key, v in each.items()},
              # each query's own figures, by its path: what a paired comparison of two encoders resamples
              "per_query": {"query": [queries[i][1].path for i in kept],
                            "landmark": [queries[i][1].class_name for i in kept],
                            **{key: np.round(v, 4).tolist() for key, v in each.items()}},
              "gallery": int(len(gallery_rows)),
              "ms_per_query": round(1000 * (encode_seconds + time.perf_counter() - started) / max(len(kept), 1), 1),
              "encode_seconds": round(encode_seconds, 2),
              "encoder_fingerprint": encoder.fingerprint,
              **by_landmark(index, Ranking(q_labels, g_labels[idx], g_labels, gallery_rows[idx[:, 0]]),
                            [queries[i][0] for i in kept], encoded.thumbs, data_root)}
    if encoder.name in REGISTRY and not REGISTRY[encoder.name].trained:
        # near-identical as an ImageNet network sees photos; a trained encoder maps a whole landmark close together
        near = near_identical(q_emb, gallery, config.NEAR_IDENTICAL_COSINE)
        report["near_identical"] = without_near_identical(report, [q for q, n in zip(report["per_query"]["query"],
                                                                                     near) if n], encoder.name)
    calibration = None
    dist, same = pair_distances(q_emb, gallery, q_labels, g_labels)
    if same.any() and not same.all():
        calibration = fit_calibration(dist, same, encoder.fingerprint)
        probe = (0.4, 0.8, 1.2)  # the same distances for every encoder, to show they mean different things
        report["calibration"] = {"pairs": calibration.pairs, "positives": calibration.positives,
                                 "p_same_at": {f"{d:.3f}": round(float(calibration(d)), 3) for d in probe}}
    return Evaluation(report, calibration)


def without_near_identical(report: dict, near: list[str], by: str,
                           cosine: float = config.NEAR_IDENTICAL_COSINE) -> dict:
    """The test photos that have a near-identical gallery photo (a copy or a burst shot of it, at `cosine` or more
    under the untrained encoder `by`), and this report's figures without them: how much near-copies explain."""
    each = report["per_query"]
    keep = ~np.isin(np.asarray(each["query"]), near)
    figures = {key: v for key, v in each.items() if key not in ("query", "landmark")}
    return {"cosine": cosine, "by": by, "queries": list(near),
            "without": {**{key: round(float(np.asarray(v)[keep].mean()), 4) if keep.any() else None
                           for key, v in figures.items()}, "queries": int(keep.sum())}}


def share_near_identical(reports: dict[str, dict]) -> None:
    """Give every report without its own list of near-identical test photos the list an untrained encoder made."""
    donor = next((n for n, r in reports.items() if "near_identical" in r), None)
    if donor is None:
        return
    for report in reports.values():
        if "near_identical" not in report and "per_query" in report:
            given = reports[donor]["near_identical"]
            report["near_identical"] = without_near_identical(report, given["queries"], given.get("by", donor))


def evaluate_all(pairs: dict[str, tuple[Encoder, GalleryIndex]], data_root: Path,
                 workers: int | None = None) -> dict[str, Evaluation]:
    """`evaluate` for several encoders, the test photos read once per input and a shared trunk run once."""
    classes = find_classes(data_root)
    paths = [p for p, _ in list_items(data_root, ("test",), classes)] if detect_layout(data_root) == "splits" else []
    out = {}
    for group in group_by_input([e for e, _ in pairs.values()]):
        thumbs = pairs[group[0].name][1].thumbs
        started = time.perf_counter()
        encoded = encode_shared(group, paths, thumbs, config.BuildConfig(workers=workers),
                                desc=f"encoding queries ({' + '.join(e.name for e in group)})") if paths else {}
        shared_s = time.perf_counter() - started
        for e in group:
            out[e.name] = evaluate(e, pairs[e.name][1], data_root, workers=workers, encoded=encoded.get(e.name),
                                   encode_seconds=shared_s)
    share_near_identical({n: ev.report for n, ev in out.items()})
    return out


@dataclass(frozen=True)
class Ranking:
    """Test queries ranked against the gallery: their labels, the labels of their top-k hits (queries, k), the
    gallery's labels, and the gallery row of each query's top hit."""

    q_labels: np.ndarray
    ranked: np.ndarray
    g_labels: np.ndarray
    top_rows: np.ndarray


def by_landmark(index: GalleryIndex, ranking: Ranking, query_paths: list[Path], query_thumbs: list[str],
                data_root: Path) -> dict:
    """The per-landmark figures and the most frequent confusions (each with its first query and what it found)."""
    names = index.manifest["classes"]
    q_labels, ranked, top_rows = ranking.q_labels, ranking.ranked, ranking.top_rows
    classes = {names[c]: r for c, r in per_class(q_labels, ranked, ranking.g_labels, ranked.shape[1]).items()}
    mistakes = []
    for c in confusions(q_labels, ranked[:, 0], config.STUDY.confusions):
        i = c.pop("example")
        mistakes.append({**c, "true": names[c["true"]], "retrieved": names[c["retrieved"]],
                         "query": Path(query_paths[i]).relative_to(data_root).as_posix(),
                         "query_thumb": query_thumbs[i],
                         "hit": index.items[int(top_rows[i])]["path"]})
    return {"by_class": classes, "confusions": mistakes}


def save_evaluation(result: Evaluation, index: GalleryIndex) -> Path:
    """Write the report next to the index for the app to show, and attach the calibration (both atomically)."""
    path = index.path / EVAL
    write_json(result.report, path)
    if result.calibration is not None:
        attach_calibration(index, result.calibration)
    return path
