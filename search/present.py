"""What a person sees: captions for ranked hits, the t-SNE map with the query on it, metric summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly import colors as pcolors

from .engine import Hit
from .index import GalleryIndex
from .projection import place_query

PALETTE = pcolors.qualitative.Dark24 + pcolors.qualitative.Light24 + pcolors.qualitative.Alphabet


def caption(hit: Hit) -> str:
    """'#1 · Eiffel Tower · d=0.412'."""
    return f"#{hit.rank} · {hit.class_name} · d={hit.distance:.3f}"


def gallery_items(hits: Sequence[Hit]) -> list[tuple[str, str]]:
    """(thumbnail path, caption) pairs, best first, for a gr.Gallery."""
    return [(str(h.thumbnail), caption(h)) for h in hits]


class GalleryMap:
    """The static part of an encoder's map (one trace per class), serialised once; queries are layered on top."""

    def __init__(self, index: GalleryIndex, title: str, height: int = 520, legend: bool = True):
        self.coords = index.coords
        fig = go.Figure()
        labels = np.array([it["class_id"] for it in index.items])
        names = index.manifest["classes"]
        for cid in np.unique(labels):
            rows = np.flatnonzero(labels == cid)
            fig.add_trace(go.Scattergl(
                x=self.coords[rows, 0], y=self.coords[rows, 1], mode="markers", name=names[cid],
                marker={"size": 6, "color": PALETTE[int(cid) % len(PALETTE)], "opacity": 0.75},
                customdata=[Path(index.items[r]["path"]).name for r in rows],
                hovertemplate="<b>%{fullData.name}</b><br>%{customdata}<extra></extra>"))
        fig.update_layout(
            title={"text": title, "x": 0.01, "font": {"size": 14}}, template="plotly_white", height=height,
            margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=legend,
            legend={"itemsizing": "constant", "font": {"size": 10}, "title": {"text": "class (click to toggle)"}},
            xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"}, uirevision="keep")
        self.figure = fig
        spec = json.loads(fig.to_json())
        self._data = ",".join(json.dumps(t) for t in spec["data"])
        self._layout = json.dumps(spec["layout"])

    def query_traces(self, hits: Sequence[Hit]) -> list[dict]:
        """The query marker (at its neighbours' distance-weighted mean) and rings around the top-k hits."""
        rows = np.array([h.row for h in hits], dtype=np.int64)
        dist = np.array([h.distance for h in hits], dtype=np.float32)
        qx, qy = place_query(self.coords, rows, dist).tolist()
        hit_xy = self.coords[rows] if len(rows) else np.zeros((0, 2), np.float32)
        return [
            {"type": "scattergl", "x": hit_xy[:, 0].tolist(), "y": hit_xy[:, 1].tolist(), "mode": "markers",
             "name": f"top-{len(hits)} hits", "marker": {"size": 15, "color": "rgba(0,0,0,0)",
                                                       "line": {"width": 2.5, "color": "#111"}},
             "text": [caption(h) for h in hits], "hovertemplate": "%{text}<extra></extra>"},
            {"type": "scattergl", "x": [qx], "y": [qy], "mode": "markers", "name": "your photo",
             "marker": {"size": 24, "symbol": "star", "color": "#FFD400", "line": {"width": 2, "color": "#111"}},
             "hovertemplate": "your photo<extra></extra>"},
        ]

    def json(self, hits: Sequence[Hit] | None = None) -> str:
        """Plotly figure JSON: the cached gallery layer plus, when given, the query layer."""
        extra = "".join("," + json.dumps(t) for t in self.query_traces(hits)) if hits else ""
        return f'{{"data":[{self._data}{extra}],"layout":{self._layout}}}'


def metrics_summary(report: dict | None) -> str:
    """One Markdown line of retrieval quality from an evaluate.py report."""
    if not report:
        return "_Not evaluated yet: run `python scripts/evaluate.py --encoder NAME`._"
    return (f"**P@1 {report['precision@1']:.2f}** · P@5 {report['precision@5']:.2f} · "
            f"mAP@10 {report['mAP@10']:.2f} — {report['queries']} test photos searched against "
            f"{report.get('gallery', '?')} gallery images")


METRIC_COLUMNS = ["encoder", "P@1", "P@5", "P@10", "mAP@10", "queries", "gallery"]


def metrics_row(label: str, report: dict | None) -> list:
    """One row of the comparison table."""
    if not report:
        return [label, None, None, None, None, None, None]
    return [label, report["precision@1"], report["precision@5"], report["precision@10"], report["mAP@10"],
            report["queries"], report.get("gallery")]
