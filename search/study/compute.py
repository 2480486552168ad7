"""The study of the configured encoders over a whole gallery: do they see the same neighbours, how faithful is each
t-SNE map, how well each embedding separates the landmarks. Pure functions over the vectors the indexes hold."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from search import config
from search.retrieval.intervals import adjust, paired_difference


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
    correct = predicted == labels
    return {"silhouette": round(float(sil), 4), "knn_accuracy": round(float(correct.mean()), 4),
            "knn_correct": correct.astype(int).tolist()}  # per photo, for a paired test between encoders


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


def colour_agreement(neighbours: dict[str, np.ndarray], colour_neighbours: np.ndarray) -> dict[str, list[float]]:
    """Per encoder, the Jaccard of each photo's k-NN set with the colour histogram's."""
    return {n: np.round(jaccard(nb, colour_neighbours), 4).tolist() for n, nb in neighbours.items()}


def _paired(a: dict, b: dict, metric: str, only: str | None = None) -> dict | None:
    """Two encoders' per-query values of `metric` over the queries both evaluated (of one landmark, if `only`)."""
    where = {q: i for i, q in enumerate(b["query"])}
    common = [(i, where[q]) for i, q in enumerate(a["query"]) if q in where
              and (only is None or a["landmark"][i] == only)]
    if len(common) < 2:
        return None
    ia, ib = map(list, zip(*common))
    return paired_difference(np.asarray(a[metric])[ia], np.asarray(b[metric])[ib])


def retrieval_differences(per_query: dict[str, dict], metrics: Sequence[str] = ("precision@1", "mAP@10")) -> dict:
    """Per encoder pair "a|b" and metric: a minus b on the test photos both searched, with its interval and paired
    test (`search.retrieval.intervals.paired_difference`)."""
    out = {}
    for a, b in itertools.combinations(per_query, 2):
        diffs = {m: _paired(per_query[a], per_query[b], m) for m in metrics}
        out[f"{a}|{b}"] = {m: d for m, d in diffs.items() if d is not None}
    return out


def landmark_differences(per_query: dict[str, dict], metric: str) -> dict:
    """Per encoder pair "a|b" and landmark: a minus b on that landmark's test photos, its p-value adjusted over the
    pair's landmarks (Benjamini-Hochberg), and `real` only when the adjusted p passes."""
    out = {}
    for a, b in itertools.combinations(per_query, 2):
        landmarks = sorted(set(per_query[a]["landmark"]))
        diffs = {lm: _paired(per_query[a], per_query[b], metric, only=lm) for lm in landmarks}
        diffs = {lm: d for lm, d in diffs.items() if d is not None}
        for (lm, d), q in zip(diffs.items(), adjust([d["p"] for d in diffs.values()])):
            diffs[lm] = {**d, "p_adjusted": q, "real": q < 1 - config.BOOTSTRAP.level}
        out[f"{a}|{b}"] = diffs
    return out


def _points(d: dict) -> str:
    """A difference of shares in percentage points with its interval: '+0.6 pts [-0.9, +2.2]'."""
    lo, hi = d["ci95"]
    return f"{100 * d['difference']:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def p_text(p: float) -> str:
    """A p-value as words, never finer than the resamples can tell."""
    return "p < 0.001" if p <= 0.001 else f"p = {p:.2g}"


def difference_sentence(a: str, b: str, metric: str, d: dict) -> str:
    """'transfer vs pretrained P@1: +0.6 pts [-0.9, +2.2], not a real difference on 318 photos', the encoder ahead
    named first."""
    if d["difference"] < 0:
        a, b = b, a
        d = {**d, "difference": -d["difference"], "ci95": [-d["ci95"][1], -d["ci95"][0]]}
    verdict = f"a real difference ({p_text(d['p'])})" if d["real"] else "not a real difference"
    return f"{a} vs {b} {METRIC_NAMES.get(metric, metric)}: {_points(d)}, {verdict} on {d['queries']} photos"


def listed(items: Sequence[str]) -> str:
    """'a, b and c': names in a sentence."""
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


METRIC_NAMES = {"precision@1": "P@1", "mAP@10": "mAP@10"}


def _diff_text(d: dict, share: bool = True) -> str:
    """A paired difference as words: '+2.5 pts [+0.9, +4.1], p = 0.002' (shares) or '+0.031 [...]' (other values)."""
    if share:
        return f"{_points(d)}, {p_text(d['p'])}"
    lo, hi = d["ci95"]
    return f"{d['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}], {p_text(d['p'])}"


def _leader(means: dict[str, float], per_item: dict[str, Sequence[float]] | None) -> tuple[str, str, dict | None]:
    """The encoder with the highest mean, the runner-up, and their paired test on the same items (None without the
    per-item values: then nothing may be claimed about who leads)."""
    top, second = sorted(means, key=means.get, reverse=True)[:2]
    if not per_item or top not in per_item or second not in per_item:
        return top, second, None
    return top, second, paired_difference(np.asarray(per_item[top], np.float64),
                                          np.asarray(per_item[second], np.float64))


def _claim(lead: tuple[str, str, dict | None], share: bool, tied: str, ahead: str) -> str:
    """`ahead` (naming the leader) with its paired test when the lead is real, else `tied` with the test that found
    it not real (or nothing, without per-item values to test)."""
    top, second, d = lead
    if d is not None and d["real"]:
        test = f"{top} vs {second}: {_diff_text(d, share)})"
        return f"{ahead[:-1]}; {test}" if ahead.endswith(")") else f"{ahead} ({test}"
    return tied + ("" if d is None else f"; {top} vs {second}: {_diff_text(d, share)}, not a real difference")


def _colour_finding(study: dict) -> str | None:
    colour = study.get("colour_agreement") or {}
    if len(colour) < 2:
        return None
    lead = _leader(colour, study.get("colour_per_photo"))
    values = ", ".join(f"{n} {v:.2f}" for n, v in colour.items())
    return _claim(lead, False, "Colour and mood: the encoders' 10 nearest neighbours overlap with those of a plain "
                  f"colour histogram by a Jaccard of {values}", f"**{lead[0]}** follows colour and mood most: its 10 "
                  f"nearest neighbours overlap with those of a plain colour histogram by a Jaccard of "
                  f"{colour[lead[0]]:.2f} ({values})") + "."


def _separation_finding(study: dict) -> str | None:
    sep = study.get("separation") or {}
    if len(sep) < 2:
        return None
    trained = [n for n in sep if (study.get("trained") or {}).get(n)]
    own = f" For {listed(trained)} these are their own training photos." if trained else ""
    per_photo = {n: s["knn_correct"] for n, s in sep.items() if "knn_correct" in s}
    lead = _leader({n: s["knn_accuracy"] for n, s in sep.items()}, per_photo)
    values = ", ".join(f"{n} {s['knn_accuracy']:.0%} (silhouette {s['silhouette']:.2f})" for n, s in sep.items())
    return _claim(lead, True, "Grouping by landmark, the share of gallery photos whose landmark most of their 10 "
                  f"neighbours show: {values}", f"**{lead[0]}** groups the photos by landmark best: {values} of "
                  "gallery photos share the landmark most of their 10 neighbours show") + "." + own


def _unseen_finding(study: dict) -> str | None:
    unseen = {n: u for n, u in (study.get("unseen") or {}).items() if u}
    if len(unseen) < 2:
        return None
    untrained = {n for n, u in unseen.items() if u.get("trained") is False}
    parts = ", ".join(f"{n} {u['unseen']:.0%} " + ("(trained on no landmark)" if n in untrained else
                                                  f"(on the landmarks it trained on: {u['seen']:.0%})")
                      for n, u in unseen.items())
    said = f"On landmarks left out of training, P@1 is {parts}"
    per_query = {n: u["per_query"] for n, u in unseen.items() if "per_query" in u}
    if len(per_query) < 2:
        return said + "."
    best, second = sorted(unseen, key=lambda n: unseen[n]["unseen"], reverse=True)[:2]
    d = _paired(per_query[best], per_query[second], "unseen") if best in per_query and second in per_query else None
    said = _claim((best, second, d), True, said, f"{said}: **{best}** generalises best")
    lost = {n: {**q, "lost": (np.asarray(q["seen"]) - np.asarray(q["unseen"])).tolist()} for n, q in per_query.items()}
    drop, runner = sorted(lost, key=lambda n: unseen[n]["seen"] - unseen[n]["unseen"], reverse=True)[:2]
    d = _paired(lost[drop], lost[runner], "lost")
    if d is not None and d["real"] and unseen[drop]["seen"] > unseen[drop]["unseen"]:
        said += (f". **{drop}** loses the most ({100 * (unseen[drop]['seen'] - unseen[drop]['unseen']):.0f} points; "
                 f"vs {runner}'s loss: {_diff_text(d)}), so what it learned is tied to the landmarks it saw")
    return said + "."


def _retrieval_findings(study: dict) -> list[str]:
    out = []
    for metric in ("precision@1", "mAP@10"):
        said = [difference_sentence(*pair.split("|"), metric, diffs[metric])
                for pair, diffs in (study.get("differences") or {}).items() if metric in diffs]
        if said:
            out.append("Test photos, paired over the same queries: " + "; ".join(said) + ".")
    return out


def _agreement_finding(study: dict) -> str | None:
    pairs = study.get("agreement") or {}
    if len(pairs) < 2:
        return None
    means = {p: v["mean"] for p, v in pairs.items()}
    hi, lo = max(means, key=means.get), min(means, key=means.get)
    d = paired_difference(np.asarray(pairs[hi]["per_photo"]), np.asarray(pairs[lo]["per_photo"])) \
        if "per_photo" in pairs[hi] and "per_photo" in pairs[lo] else None
    values = ", ".join(f"{p.replace('|', ' and ')} {v:.2f}" for p, v in means.items())
    if d is None or not d["real"]:
        return f"How much the encoders' neighbourhoods overlap (mean 10-NN Jaccard): {values}."
    return (f"The encoders see different neighbourhoods: {hi.replace('|', ' and ')} agree most (mean Jaccard "
            f"{pairs[hi]['mean']:.2f}), {lo.replace('|', ' and ')} least ({pairs[lo]['mean']:.2f}; "
            f"{_diff_text(d, share=False)}).")


def findings(study: dict) -> list[str]:
    """Sentences stating what the numbers show: which encoder follows colour, which the landmark, which
    generalises, how far apart their retrieval is, which maps can be trusted. Each names its figures; a claim that
    one encoder does better is written only when a paired test over the same photos or queries says the difference
    is real (`search.retrieval.intervals`)."""
    out = [f for f in (_colour_finding(study), _separation_finding(study), _unseen_finding(study)) if f]
    out += _retrieval_findings(study)
    agreement = _agreement_finding(study)
    if agreement:
        out.append(agreement)
    maps = study.get("maps") or {}
    if maps:
        kept = ", ".join(f"{n} {m['knn_preserved']:.0%} (trustworthiness {m['trustworthiness']:.2f})"
                         for n, m in maps.items())
        out.append(f"Read the maps with care: of a photo's 10 embedding neighbours, each map keeps among its 10 map "
                   f"neighbours {kept}.")
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
