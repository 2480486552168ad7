"""The study of the configured encoders over a whole gallery: do they see the same neighbours, how faithful is each
t-SNE map, how well each embedding separates the landmarks. Pure functions over the vectors the indexes hold."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from search import config


def knn(vectors: np.ndarray, k: int = config.STUDY.k, block: int = 2048) -> np.ndarray:
    """(n, k) rows of each vector's k nearest other vectors by Euclidean distance, nearest first (exact)."""
    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    sq = (x * x).sum(1)
    k = min(k, len(x) - 1)
    out = np.empty((len(x), max(k, 0)), np.int64)
    for start in range(0, len(x), block):
        q = x[start:start + block]
        d = sq[start:start + block, None] - 2 * q @ x.T + sq[None, :]
        d[torch.arange(len(q)), torch.arange(start, start + len(q))] = float("inf")  # itself excluded
        out[start:start + len(q)] = torch.topk(d, k, dim=1, largest=False).indices.numpy()
    return out


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the Jaccard index of two neighbour sets (n, k) over the same photos."""
    out = np.empty(len(a), np.float64)
    for i, (ra, rb) in enumerate(zip(a, b)):
        common = np.intersect1d(ra, rb).size
        out[i] = common / (len(ra) + len(rb) - common) if len(ra) + len(rb) else 1.0
    return out


def overlap_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the share of the neighbours in `a` that are also in `b`."""
    return np.array([np.intersect1d(ra, rb).size / max(len(ra), 1) for ra, rb in zip(a, b)])


def dominoes(a: np.ndarray, b: np.ndarray, row: int) -> dict[str, list[int]]:
    """A photo's neighbourhood under two encoders: the neighbours both give, only the first, only the second
    (each in its encoder's rank order)."""
    sa, sb = set(a[row].tolist()), set(b[row].tolist())
    return {"both": [int(r) for r in a[row] if r in sb], "only_a": [int(r) for r in a[row] if r not in sb],
            "only_b": [int(r) for r in b[row] if r not in sa]}


def map_faithfulness(vectors: np.ndarray, coords: np.ndarray, neighbours: np.ndarray, k: int = config.STUDY.k,
                     max_points: int = config.STUDY.trust_max_points, seed: int = config.SEED) -> dict:
    """How much of what the 2-D map suggests is true: trustworthiness (scikit-learn, on a seeded subsample past
    `max_points`) and the share of each photo's k embedding neighbours that are among its k map neighbours."""
    # only to compute a study: the app and Ray workers skip its second of import
    from sklearn.manifold import trustworthiness

    n = len(vectors)
    rows = np.arange(n)
    if n > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    kk = min(k, len(rows) // 2 - 1)
    trust = float(trustworthiness(vectors[rows], coords[rows], n_neighbors=kk)) if kk >= 1 else float("nan")
    kept = overlap_share(neighbours, knn(coords, neighbours.shape[1]))
    return {"trustworthiness": round(trust, 4), "knn_preserved": round(float(kept.mean()), 4),
            "trust_points": int(len(rows)), "points": int(n)}


def separation(vectors: np.ndarray, labels: np.ndarray, neighbours: np.ndarray,
               max_points: int = config.STUDY.silhouette_max_points, seed: int = config.SEED) -> dict | None:
    """How well an embedding separates labelled groups: silhouette score (cosine, seeded subsample past
    `max_points`) and leave-one-out kNN class accuracy (majority vote of the k neighbours, ties to the nearest)."""
    # only to compute a study: the app and Ray workers skip its second of import
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2 or len(labels) < 3:
        return None
    sample = min(max_points, len(labels)) if len(labels) > max_points else None
    sil = silhouette_score(vectors, labels, metric="cosine", sample_size=sample, random_state=seed)
    votes = labels[neighbours]
    predicted = np.array([_majority(v) for v in votes])
    return {"silhouette": round(float(sil), 4), "knn_accuracy": round(float((predicted == labels).mean()), 4)}


def _majority(votes: np.ndarray) -> int:
    values, counts = np.unique(votes, return_counts=True)
    best = values[counts == counts.max()]
    return int(next(v for v in votes if v in best))  # a tie goes to the nearest neighbour's label


def align(paths: dict[str, Sequence[str]]) -> tuple[list[str], dict[str, np.ndarray]]:
    """The photos every encoder's index holds, in the first index's row order, and each index's rows of them."""
    first = next(iter(paths.values()))
    common = set(first).intersection(*map(set, paths.values()))
    order = [p for p in first if p in common]
    rows = {n: np.array([{p: i for i, p in enumerate(ps)}[p] for p in order], np.int64) for n, ps in paths.items()}
    return order, rows


def agreement(neighbours: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per encoder pair "a|b": the mean and the per-photo Jaccard of the k-NN sets (neighbours in shared rows)."""
    out = {}
    for a, b in itertools.combinations(neighbours, 2):
        per_photo = jaccard(neighbours[a], neighbours[b])
        out[f"{a}|{b}"] = {"mean": round(float(per_photo.mean()), 4) if len(per_photo) else float("nan"),
                           "per_photo": [round(float(v), 4) for v in per_photo]}
    return out


def study(vectors: dict[str, np.ndarray], coords: dict[str, np.ndarray], paths: dict[str, Sequence[str]],
          labels: dict[str, np.ndarray] | None = None, k: int = config.STUDY.k) -> dict:
    """The whole-gallery comparison of encoders: agreement per pair, map faithfulness and, with labels,
    separation per encoder. Agreement is over the photos every index holds, in `photos` order (the first
    index's row order); neighbours are the shared rows' own k nearest among each other."""
    order, rows = align(paths)
    neighbours = {n: knn(vectors[n][r], k) for n, r in rows.items()}
    maps, separated = {}, {}
    for name, r in rows.items():
        maps[name] = map_faithfulness(vectors[name][r], coords[name][r], neighbours[name], k)
        if labels is not None:
            separated[name] = separation(vectors[name][r], np.asarray(labels[name])[r], neighbours[name])
    return {"k": k, "photos": order, "agreement": agreement(neighbours), "maps": maps,
            "separation": {n: s for n, s in separated.items() if s is not None},
            "neighbours": {n: nb.tolist() for n, nb in neighbours.items()}}


def colour_histogram(image, bins: tuple[int, int, int] = (8, 4, 4)) -> np.ndarray:
    """A photo's HSV colour histogram as a unit vector of square roots (Euclidean distance ~ Hellinger): the
    "colour and mood" reference the encoders' neighbours are compared with."""
    hsv = np.asarray(image.convert("RGB").convert("HSV"), dtype=np.uint8).reshape(-1, 3)
    hist, _ = np.histogramdd(hsv, bins=bins, range=((0, 256), (0, 256), (0, 256)))
    v = np.sqrt(hist.ravel() / max(hist.sum(), 1))
    return (v / max(np.linalg.norm(v), 1e-12)).astype(np.float32)


def colour_agreement(neighbours: dict[str, np.ndarray], colour_neighbours: np.ndarray) -> dict[str, float]:
    """Per encoder, the mean Jaccard of its k-NN sets with the colour histogram's."""
    return {n: round(float(jaccard(nb, colour_neighbours).mean()), 4) for n, nb in neighbours.items()}


def listed(items: Sequence[str]) -> str:
    """'a, b and c': names in a sentence."""
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def findings(study: dict) -> list[str]:
    """Sentences stating what the numbers show: which encoder follows colour, which the landmark, which
    generalises, which maps can be trusted. Each names its figures; none is written without them."""
    out = []
    colour = study.get("colour_agreement") or {}
    if len(colour) > 1:
        top, second = sorted(colour, key=colour.get, reverse=True)[:2]
        rest = ", ".join(f"{n} {v:.2f}" for n, v in colour.items() if n != top)
        how = "slightly more than the others" if colour[top] < 1.2 * colour[second] else "most"
        out.append(f"**{top}** follows colour and mood {how}: its 10 nearest neighbours overlap with those of a "
                   f"plain colour histogram by a Jaccard of {colour[top]:.2f} ({rest}).")
    sep = study.get("separation") or {}
    trained = [n for n in sep if (study.get("trained") or {}).get(n)]
    if len(sep) > 1:
        top = max(sep, key=lambda n: sep[n]["knn_accuracy"])
        rest = ", ".join(f"{n} {s['knn_accuracy']:.0%}" for n, s in sep.items() if n != top)
        out.append(f"**{top}** groups the photos by landmark best: {sep[top]['knn_accuracy']:.0%} of gallery photos "
                   f"share the landmark most of their 10 neighbours show (silhouette {sep[top]['silhouette']:.2f}; "
                   f"{rest})." + (f" For {listed(trained)} these are their own training photos." if trained else ""))
    unseen = {n: u for n, u in (study.get("unseen") or {}).items() if u}
    if len(unseen) > 1:
        best = max(unseen, key=lambda n: unseen[n]["unseen"])
        drop = min(unseen, key=lambda n: unseen[n]["unseen"] - unseen[n]["seen"])
        untrained = {n for n, u in unseen.items() if u.get("trained") is False}
        parts = ", ".join(f"{n} {u['unseen']:.0%} " + ("(trained on no landmark)" if n in untrained else
                                                      f"(on the landmarks it trained on: {u['seen']:.0%})")
                          for n, u in unseen.items())
        out.append(f"On landmarks left out of training, P@1 is {parts}: **{best}** generalises best, and **{drop}** "
                   f"loses the most ({100 * (unseen[drop]['seen'] - unseen[drop]['unseen']):.0f} points), so what it "
                   "learned is tied to the landmarks it saw.")
    pairs = study.get("agreement") or {}
    if pairs:
        lo = min(pairs, key=lambda p: pairs[p]["mean"])
        hi = max(pairs, key=lambda p: pairs[p]["mean"])
        out.append(f"The encoders see different neighbourhoods: {hi.replace('|', ' and ')} agree most (mean Jaccard "
                   f"{pairs[hi]['mean']:.2f}), {lo.replace('|', ' and ')} least ({pairs[lo]['mean']:.2f}).")
    maps = study.get("maps") or {}
    if maps:
        worst = min(maps, key=lambda n: maps[n]["knn_preserved"])
        out.append(f"Read the maps with care: on the least faithful ({worst}), {maps[worst]['knn_preserved']:.0%} of a "
                   f"photo's 10 embedding neighbours are among its 10 map neighbours (trustworthiness "
                   f"{maps[worst]['trustworthiness']:.2f}).")
    return out


def changed_groups(study: dict, a: str, b: str, group_of: dict[str, str], top: int = 5,
                   min_size: int = 3) -> list[dict]:
    """Emblaze's recommender, per landmark: up to `top` groups of photos (a landmark's, or a sub-folder's) whose
    neighbourhoods change most between encoders a and b, i.e. whose photos' mean k-NN Jaccard is lowest; groups
    smaller than `min_size` are left out. Each: {"group", "paths", "jaccard"}."""
    pair = study.get("agreement", {}).get(f"{a}|{b}") or study.get("agreement", {}).get(f"{b}|{a}")
    if pair is None:
        return []
    groups: dict[str, list[tuple[str, float]]] = {}
    for path, j in zip(study["photos"], pair["per_photo"]):
        if path in group_of:
            groups.setdefault(group_of[path], []).append((path, j))
    scored = [{"group": g, "paths": [p for p, _ in members],
               "jaccard": round(float(np.mean([j for _, j in members])), 4)}
              for g, members in groups.items() if len(members) >= min_size]
    return sorted(scored, key=lambda s: (s["jaccard"], s["group"]))[:top]
