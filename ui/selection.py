"""A selection of gallery photos that follows them across every encoder's map: where they lie under each encoder
(in the shared frame), how well each encoder keeps them together, which landmarks they show; its panel under a
tab's maps; and its API (`gallery_map`, `describe_selection`).

The highlighting itself happens in the browser (ui/static/map.js): a lasso, a box or a tap on a landmark in a map's
legend goes out as a page-wide event that every map answers at once; Python only fills the panel."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np

from search import config
from search.errors import LandmarkError
from search.retrieval.metrics import kept_together
from search.serving.results_export import rows_csv, rows_json
from search.storage import atomic_path
from ui import api
from ui.components import UrlFiles
from ui.mapview import MapView
from ui.site import LANDMARKS
from ui.tab import Shared
from ui.view import GalleryView

GRID_MAX = 48  # thumbnails the panel shows (the downloads list every selected photo)
CLEAR = ("() => { window.__llSelection = []; "
         "window.dispatchEvent(new CustomEvent('ll-selection', {detail: {paths: []}})); return []; }")


def gallery_map(view: GalleryView, encoder: str) -> str:
    """The landmark gallery's t-SNE map under one encoder, in the frame every encoder's map shares (a photo sits in
    about the same place under every encoder unless that encoder moved it), as JSON text.

    Args:
        encoder: one of the app's encoders (by default "scratch", "pretrained", "transfer").
    Returns:
        JSON text {"encoder", "points": [{"path", "landmark", "x", "y"}, ...]}, one point per gallery photo, path as search_json gives it
    """
    try:
        index = view.engine.backend(encoder).index
    except LandmarkError as exc:
        raise gr.Error(str(exc)) from None
    points = [{"path": it["path"], "landmark": it["class_name"], "x": round(float(x), 3), "y": round(float(y), 3)}
              for it, (x, y) in zip(index.items, index.coords)]
    return json.dumps({"encoder": encoder, "points": points})


def describe_selection(view: GalleryView, paths: str) -> str:
    """Where a selection of gallery photos lies under every encoder, and how well each encoder keeps it together.

    Args:
        paths: JSON text list of gallery paths, as search_json and gallery_map give them (at most 5,000).
    Returns:
        JSON text {"encoders": {encoder: {"points": [{"path", "x", "y"}], "together": share}}, "landmarks": {landmark: count}}, where "together" is the mean share of each selected photo's 10 nearest neighbours under that encoder that are also selected (0 to 1)
    """
    try:
        return json.dumps(selection_summary(view, parse_paths(paths)))
    except LandmarkError as exc:
        raise gr.Error(str(exc)) from None


def parse_paths(paths: str | list) -> list[str]:
    """The selection's paths from JSON text (or a list), each once, in order; one clear error for anything else."""
    if isinstance(paths, str):
        try:
            paths = json.loads(paths) if paths.strip() else []
        except ValueError as exc:
            raise LandmarkError(f"paths must be JSON text of a list of gallery paths ({exc}).") from None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise LandmarkError("paths must be a JSON list of gallery paths (strings).")
    paths = list(dict.fromkeys(paths))
    if not paths:
        raise LandmarkError("The selection is empty: select at least one photo.")
    if len(paths) > config.SELECTION_MAX_PHOTOS:
        raise LandmarkError(f"The selection holds {len(paths):,} photos; at most {config.SELECTION_MAX_PHOTOS:,} "
                            "can be described at once.")
    return paths


def selection_summary(view: GalleryView, paths: list[str], k: int = config.STUDY.k) -> dict:
    """Per encoder, the selected photos' points and how well the encoder keeps them together; per landmark, how
    many of them show it. Paths no index of the gallery holds are refused by name."""
    backends = view.engine.backends
    if not backends:
        raise LandmarkError("No encoder is loaded, so there is no map to select on.")
    landmark_of = {it["path"]: it["class_name"] for b in backends.values() for it in b.index.items}
    unknown = [p for p in paths if p not in landmark_of]
    if unknown:
        raise LandmarkError(f"{len(unknown)} of the paths are not photos of this gallery (e.g. "
                            f"{', '.join(repr(p) for p in unknown[:3])}): use paths as gallery_map gives them.")
    encoders = {}
    for name, b in backends.items():
        rows = np.array([b.index.row_of(p) for p in paths if b.index.holds(p)], np.int64)
        encoders[name] = {"points": [{"path": b.index.items[r]["path"], "x": round(float(b.index.coords[r, 0]), 3),
                                      "y": round(float(b.index.coords[r, 1]), 3)} for r in rows],
                          "together": round(kept_together(view.neighbours(name, k), rows), 4)}
    return {"encoders": encoders, "landmarks": dict(Counter(landmark_of[p] for p in paths).most_common())}


def selection_rows(view: GalleryView, summary: dict) -> list[dict]:
    """One row per selected photo: its path, landmark, and x/y under each encoder (empty where an index lacks it)."""
    landmark_of = {it["path"]: it["class_name"] for b in view.engine.backends.values() for it in b.index.items}
    rows: dict[str, dict] = {}
    for name, e in summary["encoders"].items():
        for pt in e["points"]:
            row = rows.setdefault(pt["path"], {"path": pt["path"], "landmark": landmark_of[pt["path"]]})
            row[f"x_{name}"], row[f"y_{name}"] = pt["x"], pt["y"]
    return list(rows.values())


def summary_markdown(summary: dict, count: int, private: bool) -> str:
    """The panel's words: how many photos, how many per landmark (or group), and each encoder's "together"."""
    what = "Groups" if private else "Landmarks"
    landmarks = " · ".join(f"{name} {n}" for name, n in summary["landmarks"].items())
    together = "\n".join(f"| {name} | {e['together']:.0%} |" for name, e in summary["encoders"].items())
    return (f"**{count} photo{'s' if count != 1 else ''} selected**, lit up on every encoder's map.\n\n"
            f"| encoder | kept together |\n|---|---:|\n{together}\n\n"
            f"*Kept together*: the share of each selected photo's {config.STUDY.k} nearest neighbours under that "
            "encoder that are selected too (100% = the encoder sees the group as one neighbourhood).\n\n"
            f"**{what}** (photos): {landmarks}")


def show_selection(view: GalleryView, evt: gr.EventData) -> tuple:
    """A map's selection changed: the panel (summary, thumbnails, downloads), or the panel hidden for none."""
    paths = (getattr(evt, "_data", None) or {}).get("paths") or []
    return panel_for(view, paths)


NO_PANEL = (gr.update(visible=False), "", [], [], [])


def panel_for(view: GalleryView, paths: list) -> tuple:
    """The panel's (column, summary, grid, files, paths) for a selection of gallery paths."""
    if not paths:
        return NO_PANEL
    try:
        paths = parse_paths(list(paths))
        summary = selection_summary(view, paths)
    except LandmarkError as exc:
        gr.Warning(str(exc))
        return NO_PANEL
    first = next(iter(view.engine.backends.values())).index
    grid = []
    for p in paths[:GRID_MAX]:
        index = first if first.holds(p) else next(b.index for b in view.engine.backends.values() if b.index.holds(p))
        row = index.row_of(p)
        grid.append((view.image(index.thumbnail_path(row)), f"{index.items[row]['class_name']} · {Path(p).name}"))
    rows = selection_rows(view, summary)
    return (gr.update(visible=True), summary_markdown(summary, len(paths), view.private), grid,
            _write_downloads(view, rows), paths)


def _write_downloads(view: GalleryView, rows: list[dict]) -> list[str]:
    """The selection as a CSV and a JSON file (private URLs for a private gallery, as the results' downloads)."""
    folder = view.work_dir / "downloads" / uuid.uuid4().hex
    columns = list(dict.fromkeys(k for r in rows for k in r))
    files = []
    for suffix, body in (("csv", rows_csv(rows, columns)), ("json", rows_json(rows))):
        path = folder / f"selection.{suffix}"
        with atomic_path(path) as tmp:
            Path(tmp).write_text(body, encoding="utf-8")
        files.append(view.image(path))
    return files


def panel(prefix: str, to_compare: bool = False) -> SimpleNamespace:
    """The selection's panel, hidden until a selection is made on one of the tab's maps (`to_compare`: with a
    button that opens Compare with the selection kept)."""
    paths = gr.State([])
    with gr.Column(visible=False, elem_id=f"{prefix}-selection") as column:
        gr.Markdown("### Your selection", elem_id=f"{prefix}-selection-title")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                summary = gr.Markdown(elem_id=f"{prefix}-selection-summary")
                with gr.Row():
                    clear = gr.Button("Clear the selection", size="sm", elem_id=f"{prefix}-selection-clear")
                    compare = gr.Button("See them in Compare", size="sm", visible=to_compare,
                                        elem_id=f"{prefix}-selection-compare")
            with gr.Column(scale=2):
                grid = gr.Gallery(label="Selected photos", columns=6, height=240, object_fit="cover",
                                  allow_preview=False, elem_id=f"{prefix}-selection-grid")
                files = UrlFiles(label="The selection as CSV and JSON (path, landmark, x/y under each encoder)",
                                 file_count="multiple", interactive=False, height=90,
                                 elem_id=f"{prefix}-selection-downloads")
    return SimpleNamespace(column=column, summary=summary, grid=grid, files=files, clear=clear, compare=compare,
                           paths=paths, outputs=[column, summary, grid, files, paths])


def wire(ui: SimpleNamespace, maps: list[MapView], shared: Shared) -> None:
    """A selection on any of `maps` fills the panel; Clear empties it on every map of the page."""
    for m in maps:
        m.option_select(shared.site.route(show_selection), shared.states, ui.outputs, **api.UI_ONLY)
    ui.clear.click(None, None, None, js=CLEAR, **api.UI_ONLY).then(lambda: NO_PANEL, None, ui.outputs, **api.UI_ONLY)


def wire_api(encoder: gr.components.Component, shared: Shared) -> None:
    """The selection's API over the landmark gallery (also MCP tools): gallery_map and describe_selection."""
    route = shared.site.route
    paths, out = gr.Textbox(visible=False), gr.Textbox(visible=False)
    for fn, first, name in ((gallery_map, encoder, api.GALLERY_MAP), (describe_selection, paths, api.DESCRIBE_SELECTION)):
        gr.Button(visible=False).click(route(fn, source=LANDMARKS), [first, shared.mine], out, api_name=name)
