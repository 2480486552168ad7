"""Retrieval metrics over ranked class labels (precision@k, mAP@k), and how well an embedding keeps a selection of
photos together."""

from __future__ import annotations

import numpy as np


def relevance(query_labels: np.ndarray, ranked_gallery_labels: np.ndarray) -> np.ndarray:
    """(Q, K) boolean matrix: is the hit at each rank of the query's class?"""
    return np.asarray(ranked_gallery_labels) == np.asarray(query_labels)[:, None]


def precision_at_k(rel: np.ndarray, k: int) -> float:
    """Mean over queries of (relevant hits among the first k) / k: a query with fewer than k results is not
    rewarded for its short list, and one whose class has no gallery photo scores 0."""
    rel = np.atleast_2d(np.asarray(rel, dtype=bool))
    if rel.shape[0] == 0 or k <= 0:
        return 0.0
    return float((rel[:, :k].sum(axis=1) / k).mean())


def average_precision_at_k(rel: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """AP@k per query: sum of precision at each relevant rank <= k, divided by min(k, #relevant)."""
    r = rel[:, :k].astype(np.float64)
    prec = np.cumsum(r, axis=1) / np.arange(1, r.shape[1] + 1)
    denom = np.minimum(k, np.asarray(n_relevant))
    return np.where(denom > 0, (prec * r).sum(axis=1) / np.maximum(denom, 1), 0.0)


def per_query(query_labels: np.ndarray, ranked_gallery_labels: np.ndarray, gallery_labels: np.ndarray,
              ks: tuple[int, ...] = (1, 5, 10), map_k: int = 10) -> dict[str, np.ndarray]:
    """Each query's own P@k and AP@map_k (the figures are their means; their intervals come from resampling them)."""
    rel = relevance(query_labels, ranked_gallery_labels)
    counts = np.bincount(np.asarray(gallery_labels), minlength=int(np.max(query_labels, initial=0)) + 1)
    out = {f"precision@{k}": rel[:, :k].sum(axis=1) / k for k in ks}
    out[f"mAP@{map_k}"] = average_precision_at_k(rel, counts[np.asarray(query_labels)], map_k)
    return out


def retrieval_report(query_labels: np.ndarray, ranked_gallery_labels: np.ndarray,
                     gallery_labels: np.ndarray, ks: tuple[int, ...] = (1, 5, 10), map_k: int = 10) -> dict:
    """P@k for each k and mAP@map_k; a query's relevant items are the gallery items of its class."""
    rel = relevance(query_labels, ranked_gallery_labels)
    counts = np.bincount(np.asarray(gallery_labels), minlength=int(np.max(query_labels, initial=0)) + 1)
    n_rel = counts[np.asarray(query_labels)]
    report = {f"precision@{k}": round(precision_at_k(rel, k), 4) for k in ks}
    report[f"mAP@{map_k}"] = round(float(average_precision_at_k(rel, n_rel, map_k).mean()) if len(rel) else 0.0, 4)
    report["queries"] = int(len(query_labels))
    return report


def per_class(query_labels: np.ndarray, ranked_gallery_labels: np.ndarray, gallery_labels: np.ndarray,
              k: int = 10) -> dict[int, dict]:
    """P@1 and mAP@k of each query class (its own queries only), with how many queries it had."""
    q = np.asarray(query_labels)
    rel = relevance(q, ranked_gallery_labels)
    counts = np.bincount(np.asarray(gallery_labels), minlength=int(np.max(q, initial=0)) + 1)
    ap = average_precision_at_k(rel, counts[q], k) if len(q) else np.zeros(0)
    return {int(c): {"precision@1": round(float(rel[q == c, 0].mean()), 4),
                     f"mAP@{k}": round(float(ap[q == c].mean()), 4), "queries": int((q == c).sum())}
            for c in np.unique(q)}


def confusions(query_labels: np.ndarray, top1_labels: np.ndarray, n: int = 5) -> list[dict]:
    """The n most frequent (true class -> retrieved class) mistakes at rank 1, with the first query of each."""
    q, t = np.asarray(query_labels), np.asarray(top1_labels)
    wrong = np.flatnonzero(q != t)
    pairs: dict[tuple[int, int], list[int]] = {}
    for i in wrong:
        pairs.setdefault((int(q[i]), int(t[i])), []).append(int(i))
    ranked = sorted(pairs.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:n]
    return [{"true": a, "retrieved": b, "count": len(rows), "example": rows[0]} for (a, b), rows in ranked]


def near_identical(queries: np.ndarray, gallery: np.ndarray, cosine: float) -> np.ndarray:
    """(Q,) whether each query (unit vector) has a gallery vector at cosine similarity `cosine` or more."""
    if len(queries) == 0 or len(gallery) == 0:
        return np.zeros(len(queries), bool)
    return (np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T).max(axis=1) >= cosine


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k found by the approximate top-k."""
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def kept_together(neighbours: np.ndarray, rows: np.ndarray) -> float:
    """How well an embedding keeps a selection of photos together: the mean share of each selected row's nearest
    neighbours (`neighbours`: (N, k) rows of every photo's k nearest) that are selected too. 1 when the selection is
    a closed neighbourhood, about its size / N when it is scattered at random; 0 for an empty selection."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0 or neighbours.shape[1] == 0:
        return 0.0
    chosen = np.zeros(len(neighbours), dtype=bool)
    chosen[rows] = True
    return float(chosen[neighbours[rows]].mean())
