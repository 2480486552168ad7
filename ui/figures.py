"""What a person sees: captions with match confidence, agreement between encoders, the t-SNE map layers,
the calibration curves and metric summaries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly import colors as pcolors

from search import config
from search.index import GalleryIndex
from search.retrieval.calibration import Calibration
from search.retrieval.projection import place_query
from search.serving.engine import Hit
from search.storage import atomic_path

PALETTE = pcolors.qualitative.Dark24 + pcolors.qualitative.Light24 + pcolors.qualitative.Alphabet


def percent(p: float) -> str:
    """A hit's P(same landmark) as every output shows it: '94%'."""
    return f"{p:.0%}"


def confidence(hit: Hit) -> str:
    """'94% same landmark' when the index is calibrated, else the raw distance."""
    return f"{percent(hit.p_same)} same landmark" if hit.p_same is not None else f"d={hit.distance:.3f}"


def caption(hit: Hit, in_all: bool = False, by_path: bool = False, compared: int = 3) -> str:
    """'#1 · Eiffel Tower · 94% same landmark' (+ a mark when all `compared` encoders returned this photo);
    `by_path` names the photo's file instead of its class (a private gallery: the visitor knows their photos by
    name)."""
    return f"#{hit.rank} · {hit.path if by_path else hit.class_name} · {confidence(hit)}" + (
        f" · ✓ all {compared}" if in_all else "") + (f" · +{hit.near_identical} near-identical"
                                                      if hit.near_identical else "")


def gallery_items(hits: Sequence[Hit], in_all: set[str] = frozenset(), placeholder: Path | None = None,
                  by_path: bool = False, compared: int = 3) -> list[tuple[str, str]]:
    """(thumbnail path, caption) pairs, best first, for a gr.Gallery; a broken thumbnail shows `placeholder`."""
    return [(str(h.thumbnail if h.thumbnail_ok or placeholder is None else placeholder),
             caption(h, h.path in in_all, by_path, compared) + ("" if h.thumbnail_ok else " · thumbnail missing"))
            for h in hits]


def broken_thumbnails_warning(hits: Sequence[Hit], encoder: str) -> str | None:
    """A message naming the fix when some hits' thumbnails are missing or corrupt, else None."""
    bad = [h.path for h in hits if not h.thumbnail_ok]
    if not bad:
        return None
    return (f"{len(bad)} thumbnail(s) of the {encoder} index are missing or corrupt (e.g. for {bad[0]}): rebuild "
            f"it with scripts/build_index.py --encoder {encoder}.")


def is_confident(hits: Sequence[Hit]) -> bool:
    """Whether the best hit is called a match: its P(same landmark) reaches its encoder's threshold (at least 50%,
    higher where that kept absent landmarks from being called matches; uncalibrated: unknown, so False)."""
    return bool(hits) and hits[0].p_same is not None and hits[0].p_same >= hits[0].threshold


UNCALIBRATED_PRIVATE = ("Your gallery shows raw distances (smaller is more similar): match confidence is fitted on "
                        "test photos of known landmarks, which your photos are not.")


def unreliable_note(label: str, report: dict | None, compact: bool = False) -> str | None:
    """A warning when an encoder's confidence could not tell absent landmarks from present ones in the open-set
    evaluation (AUROC below `config.RELIABLE_AUROC`), else None; `compact`: for a column headed by the encoder."""
    auroc = ((report or {}).get("open_set") or {}).get("auroc")
    if auroc is None or auroc >= config.RELIABLE_AUROC:
        return None
    if compact:
        return f"⚠️ Percentages not to be trusted: AUROC {auroc:.2f} on landmarks left out (0.5 is chance)."
    return (f"⚠️ {label} cannot tell when a landmark is missing from the gallery (AUROC {auroc:.2f} on landmarks "
            "left out, where 0.5 is chance): its percentages are not to be trusted.")


def verdict(hits: Sequence[Hit], uncalibrated_note: str | None = None, unreliable: str | None = None) -> str:
    """One plain sentence above the results: the best match and how sure it is, or that the gallery does not seem
    to hold the photo's landmark; plus, for an encoder whose confidence is unreliable, a warning saying so."""
    if not hits:
        return ""
    best = hits[0]
    if best.p_same is None and uncalibrated_note:
        return f"Best match: **{best.path}** (d={best.distance:.3f}). {uncalibrated_note}"
    if best.p_same is None:
        return (f"Best match: **{best.class_name}** (d={best.distance:.3f}). Match confidence is not calibrated for "
                "this gallery: that needs test photos of known landmarks (`scripts/evaluate.py`).")
    if not is_confident(hits):
        bar = (f", under the {best.threshold:.0%} this encoder needs to call a match"
               if best.threshold > config.CONFIDENT_P_SAME and best.p_same >= config.CONFIDENT_P_SAME else "")
        text = (f"🔎 **This landmark does not seem to be in the gallery: these are the closest photos.** The best one "
                f"({best.class_name}) is {percent(best.p_same)} likely to show the same landmark{bar}.")
    else:
        text = (f"✅ Best match: **{best.class_name}**, {percent(best.p_same)} likely the same landmark "
                f"(d={best.distance:.3f}).")
    return f"{text}\n\n{unreliable}" if unreliable else text


def hits_json(hits: Sequence[Hit]) -> dict:
    """Hits as plain JSON for programs: rank, path, class_name, distance, p_same, and whether any is confident."""
    return {"hits": [{"rank": h.rank, "path": h.path, "class_name": h.class_name, "distance": round(h.distance, 6),
                      "p_same": h.p_same} for h in hits],
            "confident": is_confident(hits)}


def hit_details(hit: Hit, encoder_label: str) -> str:
    """Markdown for the detail panel of one result."""
    conf = f"**{percent(hit.p_same)}** likely the same landmark" if hit.p_same is not None else "not calibrated"
    return (f"### #{hit.rank} · {hit.class_name}\n"
            f"- file: `{hit.path}`\n- distance under {encoder_label}: **{hit.distance:.4f}**\n"
            f"- match confidence: {conf}")


def overlaps(paths: dict[str, Sequence[str]]) -> list[tuple[str, str, int]]:
    """How many top-k photos each pair of encoders share: [(a, b, count)]."""
    return [(a, b, len(set(paths[a]) & set(paths[b]))) for a, b in combinations(paths, 2)]


def shared_by_all(paths: dict[str, Sequence[str]]) -> set[str]:
    """The photos that every encoder returned (empty with fewer than two encoders)."""
    sets = [set(p) for p in paths.values()]
    return set.intersection(*sets) if len(sets) >= 2 else set()


def agreement_summary(paths: dict[str, Sequence[str]], k: int) -> str:
    """Markdown: the pairwise top-k overlaps and how many photos all encoders agree on."""
    if len(paths) < 2:
        return ""
    pairs = " · ".join(f"{a} ∩ {b}: **{n} of {k}**" for a, b, n in overlaps(paths))
    return f"**Do the encoders agree?** {pairs} · returned by all {len(paths)}: **{len(shared_by_all(paths))}**"


def found_summary(hits: Sequence[Hit], known_class: str | None) -> str:
    """'Found Eiffel Tower in 5 of 6' for a query whose landmark is known, else ''."""
    if not known_class or not hits:
        return ""
    n = sum(h.class_name == known_class for h in hits)
    mark = "✅" if hits[0].class_name == known_class else "❌"
    return f"{mark} found **{known_class}** in **{n} of {len(hits)}**" + ("" if n else " (missed it)")


def unchanged_by_selection(opacity: float) -> dict:
    """Plotly's own lasso/box selection leaves the points as they are: the map script draws the page's selection
    alike on every map (the one lassoed included)."""
    return {"selected": {"marker": {"opacity": opacity}}, "unselected": {"marker": {"opacity": opacity}}}


class GalleryMap:
    """An encoder's gallery layer of the t-SNE map (one trace per class), serialised once and sent to the
    browser once; every search then sends only its small query layer (`query_traces`)."""

    def __init__(self, index: GalleryIndex, title: str, thumb_url: Callable[[Path], str] = str,
                 colour_by: tuple[str, np.ndarray] | None = None):
        """`colour_by` (name, one value in [0, 1] per row) colours every point by that value instead of its class."""
        self.coords, self.items = index.coords, index.items
        labels = np.array([it["class_id"] for it in index.items])
        names = index.manifest["classes"]
        data = []
        for cid in np.unique(labels) if colour_by is None else ():
            rows = np.flatnonzero(labels == cid)
            data.append({"type": "scattergl", "mode": "markers", "name": names[cid],
                         "x": self.coords[rows, 0].round(3).tolist(), "y": self.coords[rows, 1].round(3).tolist(),
                         "customdata": rows.tolist(),
                         "marker": {"size": 6, "color": PALETTE[int(cid) % len(PALETTE)], "opacity": 0.75},
                         **unchanged_by_selection(0.75),
                         "hovertemplate": "<b>%{fullData.name}</b><extra></extra>"})
        if colour_by is not None:
            what, values = colour_by
            data.append({"type": "scattergl", "mode": "markers", "name": what,
                         "x": self.coords[:, 0].round(3).tolist(), "y": self.coords[:, 1].round(3).tolist(),
                         "customdata": list(range(len(self.items))), "text": [f"{v:.2f}" for v in values],
                         "marker": {"size": 7, "color": [None if np.isnan(v) else round(float(v), 3) for v in values],
                                    "colorscale": "Viridis",
                                    "cmin": 0, "cmax": 1, "opacity": 0.85,
                                    "colorbar": {"title": {"text": what, "side": "top"}, "thickness": 10,
                                                 # below the map, so a phone's width goes to the map
                                                 "orientation": "h", "len": 0.7, "y": -0.01,
                                                 "yanchor": "top"}},
                         **unchanged_by_selection(0.85),
                         "hovertemplate": f"{what} %{{text}}<extra></extra>"})
        layout = {"title": {"text": title, "x": 0.01, "font": {"size": 14}}, "template": "plotly_white",
                  "margin": {"l": 10, "r": 10, "t": 56 if "<br>" in title else 40,
                             "b": 10 if colour_by is None else 70}, "hovermode": "closest",
                  "legend": {"itemsizing": "constant", "font": {"size": 10},
                             "title": {"text": "landmark (tap: select its photos)"}},
                  "xaxis": {"visible": False}, "yaxis": {"visible": False, "scaleanchor": "x"}, "uirevision": "keep"}
        meta = {"thumb_base": thumb_url(index.thumbs) + "/", "thumbs": [it["thumb"] for it in index.items],
                "paths": [it["path"] for it in index.items], "classes": [it["class_name"] for it in index.items]}
        layout = json.loads(go.Figure(layout=layout).to_json())["layout"]  # resolves the template by name
        self.layer_json = json.dumps({"data": data, "layout": layout, "meta": meta}, separators=(",", ":"))

    def write(self, folder: Path) -> Path:
        """The gallery layer as a content-addressed JSON file (a new index gets a new name, so no stale cache)."""
        body = self.layer_json.encode()
        path = Path(folder) / f"map-{hashlib.sha256(body).hexdigest()[:16]}.json"
        if not path.exists():
            with atomic_path(path) as tmp:
                tmp.write_bytes(body)
        return path

    def query_traces(self, hits: Sequence[Hit], query_row: int | None = None,
                     highlight_row: int | None = None) -> list[dict]:
        """Rings around the top-k hits, the query (a gallery photo's own spot, or its neighbours'
        distance-weighted mean for an upload) and, for linked brushing, one highlighted photo."""
        rows = np.array([h.row for h in hits], dtype=np.int64)
        dist = np.array([h.distance for h in hits], dtype=np.float32)
        if query_row is not None:
            qx, qy = self.coords[query_row].tolist()
        else:
            qx, qy = place_query(self.coords, rows, dist).tolist()
        hit_xy = self.coords[rows] if len(rows) else np.zeros((0, 2), np.float32)
        traces = [
            {"type": "scattergl", "x": hit_xy[:, 0].tolist(), "y": hit_xy[:, 1].tolist(), "mode": "markers",
             "name": f"top-{len(hits)} hits", "customdata": rows.tolist(),
             "marker": {"size": 15, "color": "rgba(0,0,0,0)", "line": {"width": 2.5, "color": "#111"}},
             "text": [caption(h) for h in hits], "hovertemplate": "%{text}<extra></extra>"},
            {"type": "scattergl", "x": [qx], "y": [qy], "mode": "markers",
             "name": "your photo" if query_row is None else "query photo",
             "customdata": [] if query_row is None else [int(query_row)],
             "marker": {"size": 24, "symbol": "star", "color": "#FFD400", "line": {"width": 2, "color": "#111"}},
             "hovertemplate": ("your photo" if query_row is None else "query: %{customdata}") + "<extra></extra>"},
        ]
        if highlight_row is not None:
            hx, hy = self.coords[highlight_row].tolist()
            traces.append({"type": "scattergl", "x": [hx], "y": [hy], "mode": "markers", "name": "selected photo",
                           "customdata": [int(highlight_row)],
                           "marker": {"size": 22, "symbol": "diamond-open", "color": "#E6007E",
                                      "line": {"width": 3, "color": "#E6007E"}},
                           "hovertemplate": "selected: " + self.items[highlight_row]["path"] + "<extra></extra>"})
        return traces


def map_value(layer_url: str | None, traces: Sequence[dict] = (), message: str = "", **layout: object) -> dict:
    """What the map component receives per search: where its gallery layer is, plus the query layer (or, with no
    layer, the message it shows instead)."""
    return {"layer": layer_url, "traces": list(traces), "layout": layout, "message": message}


def calibration_figure(curves: dict[str, Calibration]) -> go.Figure:
    """P(same landmark) against distance, one line per encoder: the same distance means different things."""
    fig = go.Figure()
    d = np.linspace(0.0, 2.0, 201)
    for label, cal in curves.items():
        fig.add_trace(go.Scatter(x=d, y=cal(d), mode="lines", name=label,
                                 hovertemplate="d=%{x:.2f}: %{y:.0%} same landmark<extra></extra>"))
    fig.add_hline(y=config.CONFIDENT_P_SAME, line_dash="dot", line_color="#888",
                  annotation_text="confident above", annotation_position="top right")
    fig.update_layout(template="plotly_white", height=360, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      title={"text": "Match confidence: P(same landmark) by distance, per encoder", "x": 0.01},
                      xaxis={"title": "distance between unit embeddings", "range": [0, 2]},
                      yaxis={"title": "P(same landmark)", "range": [0, 1.02], "tickformat": ".0%"},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def metrics_summary(report: dict | None) -> str:
    """One Markdown line of retrieval quality (and, when evaluated, how well its confidence knows absent landmarks)
    from an evaluate.py report."""
    if not report:
        return "_Not evaluated yet: run `python scripts/evaluate.py --encoder NAME`._"
    line = (f"**P@1 {report['precision@1']:.2f}** · P@5 {report['precision@5']:.2f} · "
            f"mAP@10 {report['mAP@10']:.2f} — {report['queries']} test photos searched against "
            f"{report.get('gallery', '?')} gallery images")
    open_set = report.get("open_set")
    if open_set and open_set.get("auroc") is not None:
        line += (f". Landmarks left out: confidence AUROC {open_set['auroc']:.2f}, "
                 f"{open_set['false_confident']:.0%} of absent landmarks called a match")
    return line


METRIC_COLUMNS = ["encoder", "P@1", "P@5", "P@10", "mAP@10", "queries", "gallery", "open-set AUROC",
                  "calibration error (ECE)", "absent called a match", "right & confident", "GAP", "unseen P@1",
                  "pretrained on those"]


def with_interval(value: float | None, ci: list[float] | None) -> str | float | None:
    """A figure with its 95% interval, as the tables show it: '0.972 [0.953, 0.987]'."""
    if value is None or not ci:
        return value
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def metrics_row(label: str, report: dict | None) -> list:
    """One row of the comparison table: closed-set retrieval, then the open-set figures where evaluated, each with
    its 95% bootstrap interval where the evaluation computed one."""
    if not report:
        return [label] + [None] * (len(METRIC_COLUMNS) - 1)
    o, u = report.get("open_set") or {}, report.get("unseen") or {}
    ci, oci = report.get("ci95") or {}, o.get("ci95") or {}
    closed = [with_interval(report[k], ci.get(k)) for k in ("precision@1", "precision@5", "precision@10", "mAP@10")]
    return [label, *closed, report["queries"], report.get("gallery"), with_interval(o.get("auroc"), oci.get("auroc")),
            report.get("calibration_error"), with_interval(o.get("false_confident"), oci.get("false_confident")),
            with_interval(o.get("confident_when_right"), oci.get("confident_when_right")), o.get("gap"),
            u.get("precision@1"), (u.get("pretrained") or {}).get("precision@1")]


def reliability_figure(reports: dict[str, dict]) -> go.Figure | None:
    """Predicted P(same landmark) against the share that was right, per encoder, on landmarks left out
    (cross-validated): a line near the diagonal is a confidence that means what it says."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly reliable",
                             line={"dash": "dot", "color": "#888"}, hoverinfo="skip"))
    drawn = 0
    for label, report in reports.items():
        points = (report or {}).get("reliability") or []
        o = (report or {}).get("open_set") or {}
        if not points:
            continue
        drawn += 1
        name = label if o.get("auroc") is None else f"{label} (AUROC {o['auroc']:.2f}" + (
            f", ECE {report['calibration_error']:.3f})" if report.get("calibration_error") is not None else ")")
        fig.add_trace(go.Scatter(x=[p["p"] for p in points], y=[p["observed"] for p in points],
                                 mode="lines+markers", name=name, customdata=[p["n"] for p in points],
                                 marker={"size": [6 + 14 * (p["n"] / max(q["n"] for q in points)) ** 0.5
                                                  for p in points]},
                                 hovertemplate="said %{x:.0%}, right %{y:.0%} (%{customdata} queries)<extra></extra>"))
    if not drawn:
        return None
    fig.update_layout(template="plotly_white", height=380, margin={"l": 40, "r": 10, "t": 40, "b": 40},
                      title={"text": "Is the confidence reliable? Said vs right, with landmarks left out", "x": 0.01},
                      xaxis={"title": "predicted P(same landmark) of the top hit", "range": [0, 1],
                             "tickformat": ".0%"},
                      yaxis={"title": "share whose top hit was right", "range": [0, 1.02], "tickformat": ".0%"},
                      legend={"orientation": "h", "y": -0.25})
    return fig
