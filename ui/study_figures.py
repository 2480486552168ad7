"""What the Study tab shows from a study (`search.study.store`): figures, tables, the photos where two encoders
agree least and most, and one photo's neighbourhood dominoes."""

from __future__ import annotations

import itertools

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from search import config
from search.study.compute import dominoes

ENCODER_COLOURS = {"scratch": "#E45756", "pretrained": "#4C78A8", "transfer": "#54A24B"}
METRICS = {"precision@1": "P@1", "mAP@10": "mAP@10"}


def encoder_colour(name: str, position: int) -> str:
    """The seed encoders' own colours; any other encoder's from the same Tableau 10 palette, by its position."""
    return ENCODER_COLOURS.get(name) or plotly.colors.qualitative.T10[(position + 3) % 10]


def pairs(study: dict) -> list[str]:
    """The encoder pairs "a|b" the study compares."""
    return list(study.get("agreement") or {})


def ordered_pairs(study: dict) -> list[tuple[str, str]]:
    """(label, "a|b") for every map that can be coloured: encoder a's map by its agreement with b, both ways."""
    out = []
    for p in pairs(study):
        a, b = p.split("|")
        out += [(f"{a} map, coloured by agreement with {b}", f"{a}|{b}"),
                (f"{b} map, coloured by agreement with {a}", f"{b}|{a}")]
    return out


def per_photo(study: dict, pair: str) -> np.ndarray:
    """The pair's per-photo agreement (either order), in the study's photo order."""
    a, b = pair.split("|")
    got = study["agreement"].get(f"{a}|{b}") or study["agreement"][f"{b}|{a}"]
    return np.asarray(got["per_photo"], dtype=np.float64)


def agreement_text(study: dict) -> str:
    """Markdown: each pair's mean agreement and what it means."""
    k = study["k"]
    lines = [f"- **{p.replace('|', ' ∩ ')}**: mean Jaccard {a['mean']:.2f} — on average "
             f"{2 * a['mean'] / (1 + a['mean']) * k:.1f} of a photo's {k} nearest neighbours are the same"
             for p, a in study["agreement"].items()]
    return (f"For every gallery photo, each encoder's {k} nearest gallery neighbours (itself excluded) are compared "
            f"with the other's: their Jaccard index is 1 when both see the same {k}, 0 when they share none.\n\n"
            + "\n".join(lines))


def agreement_histogram(study: dict) -> go.Figure:
    """One histogram of per-photo agreement per encoder pair, overlaid."""
    fig = go.Figure()
    for p in pairs(study):
        fig.add_trace(go.Histogram(x=per_photo(study, p), name=p.replace("|", " ∩ "), opacity=0.6,
                                   xbins={"start": 0, "end": 1.0001, "size": 0.05}))
    fig.update_layout(barmode="overlay", template="plotly_white", height=300,
                      margin={"l": 40, "r": 10, "t": 30, "b": 40},
                      xaxis_title=f"Jaccard of the {study['k']}-NN sets", yaxis_title="photos",
                      title={"text": "Do the encoders see the same neighbours?", "font": {"size": 14}})
    return fig


def extremes(study: dict, pair: str, n: int = config.STUDY.extremes) -> dict[str, list[str]]:
    """The photos (paths) on which the pair agrees least and most, n of each, ties broken by photo order."""
    values = per_photo(study, pair)
    order = np.argsort(values, kind="stable")
    photos = study["photos"]
    return {"least": [photos[i] for i in order[:n]], "most": [photos[i] for i in order[::-1][:n]]}


def neighbourhood(study: dict, pair: str, path: str) -> dict[str, list[str]]:
    """A photo's neighbours common to both encoders of the pair, only in the first, only in the second (paths)."""
    a, b = pair.split("|")
    row = study["photos"].index(path)
    parts = dominoes(np.asarray(study["neighbours"][a]), np.asarray(study["neighbours"][b]), row)
    return {k: [study["photos"][r] for r in rows] for k, rows in parts.items()}


def class_bars(study: dict, metric: str = "precision@1") -> go.Figure | None:
    """Per landmark, each encoder's held-out metric as grouped bars, landmarks sorted by the gap between encoders."""
    classes = study.get("classes") or {}
    if not classes:
        return None
    names = sorted(set().union(*(c.keys() for c in classes.values())))
    values = {e: [c.get(n, {}).get(metric, np.nan) for n in names] for e, c in classes.items()}
    table = np.array(list(values.values()), dtype=np.float64)
    gap = np.nanmax(table, axis=0) - np.nanmin(table, axis=0)
    order = np.argsort(-gap, kind="stable")
    tested = ((study.get("landmark_differences") or {}).get(metric) or {})
    real = {lm for per_pair in tested.values() for lm, d in per_pair.items() if d["real"]}
    shown = [names[i] + (" *" if names[i] in real else "") for i in order]
    fig = go.Figure([go.Bar(name=e, x=shown, y=[v[i] for i in order],
                            marker_color=encoder_colour(e, j)) for j, (e, v) in enumerate(values.items())])
    title = f"{METRICS.get(metric, metric)} per landmark, largest gap between encoders first"
    if tested:
        tests = max(len(per_pair) for per_pair in tested.values())
        title += ("<br><sup>* a real difference between two encoders (paired test over the landmark's photos, "
                  f"Benjamini-Hochberg over each pair's {tests} landmarks)</sup>" if real else
                  f"<br><sup>no landmark's difference is real after correcting for each pair's {tests} landmarks "
                  "(paired, Benjamini-Hochberg): the gaps are within sampling noise</sup>")
    fig.update_layout(barmode="group", template="plotly_white", height=440, yaxis_range=[0, 1],
                      margin={"l": 40, "r": 10, "t": 64 if tested else 40, "b": 140}, xaxis_tickangle=-45,
                      yaxis_title=f"{METRICS.get(metric, metric)} (test photos)",
                      title={"text": title, "font": {"size": 14}})
    return fig


CONFUSION_COLUMNS = ["encoder", "true landmark", "retrieved landmark", "times at rank 1"]


def confusion_rows(study: dict) -> list[list]:
    """Each encoder's most frequent rank-1 confusions."""
    return [[e, c["true"], c["retrieved"], c["count"]] for e, cs in (study.get("confusions") or {}).items() for c in cs]


MAP_COLUMNS = ["encoder", "trustworthiness", "10-NN kept on the map", "photos (trustworthiness on)"]


def map_rows(study: dict) -> list[list]:
    """Per encoder, how faithful its t-SNE map is."""
    return [[e, m["trustworthiness"], m["knn_preserved"], f"{m['points']:,} ({m['trust_points']:,})"]
            for e, m in (study.get("maps") or {}).items()]


SEPARATION_COLUMNS = ["encoder", "silhouette (cosine)", "kNN class accuracy (gallery)", "colour agreement",
                      "P@1 closed set (test photos)", "P@1 landmarks left out of training"]


def separation_rows(study: dict) -> list[list]:
    """Per encoder: how it separates the landmarks (or groups), follows colour, and generalises."""
    sep, colour, unseen = (study.get(k) or {} for k in ("separation", "colour_agreement", "unseen"))
    names = list(dict.fromkeys(itertools.chain(sep, colour, unseen)))
    return [[n, sep.get(n, {}).get("silhouette"), sep.get(n, {}).get("knn_accuracy"), colour.get(n),
             unseen.get(n, {}).get("seen"), unseen.get(n, {}).get("unseen")] for n in names]


def public(study: dict) -> dict:
    """The study as the API returns it: everything but the neighbour lists."""
    return {k: v for k, v in study.items() if k != "neighbours"}
