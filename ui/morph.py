"""The morph from encoder A to encoder B: one map in which every gallery photo travels from its place under A to its
place under B (the maps share one frame, so what moves is what the encoders see differently). Plotly.js in a Gradio
HTML component, the positions interpolated in the browser (ui/static/morph.js): a slider, and a play button that
goes there and back. On Compare the query's star travels too."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import gradio as gr

from search.models.encoders import REGISTRY
from search.study.compute import changed_groups
from ui import api, selection
from ui.mapview import PLOTLY_JS, component_script, file_url
from ui.tab import Shared
from ui.view import GalleryView

TEMPLATE = """<div class="ll-morph-controls"><button class="ll-morph-play" type="button">▶ Play A → B → A</button>
<input class="ll-morph-slider" type="range" min="0" max="100" value="0" aria-label="from A to B" />
<span class="ll-morph-label"></span></div><div class="ll-morph-status"></div><div class="ll-morph-plot"></div>"""
CSS = """.ll-morph-controls { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; margin: 4px 0; }
.ll-morph-slider { flex: 1; min-width: 140px; }
.ll-morph-play { padding: 4px 10px; border-radius: 6px; border: 1px solid #999; background: #fff; cursor: pointer; }
.ll-morph-label { font-size: 13px; color: #444; }
.ll-morph-status { color: #a33; font-size: 13px; }"""
COLOURS = [("landmark", "landmark"), ("how much its 10 neighbours change (Jaccard)", "change")]


class MorphView(gr.HTML):
    """The morph's map (value: `morph_value`)."""

    def __init__(self, value: dict | None = None, height: int = 460, **kwargs: Any):
        super().__init__(value=value, html_template=TEMPLATE, css_template=CSS,
                         js_on_load=component_script("morph.js"), apply_default_css=False,
                         plotly_url=file_url(PLOTLY_JS), height=height, **kwargs)

    def preprocess(self, payload: Any) -> Any:
        return payload

    def postprocess(self, value: Any) -> Any:
        return value

    def api_info(self) -> dict[str, Any]:
        return {"type": "object", "description": "{a, b: gallery layer URLs, names, change, query}"}

    def example_payload(self) -> Any:
        return {"a": None, "b": None}

    def example_value(self) -> Any:
        return self.example_payload()


def default_pair(view: GalleryView) -> tuple[str | None, str | None]:
    """The two encoders a morph starts with: the first two available ones."""
    names = list(view.engine.backends)
    return (names[0], names[1]) if len(names) > 1 else (None, None)


def morph_value(view: GalleryView, a: str | None, b: str | None, colour: str = "landmark",
                query: dict | None = None) -> dict:
    """What the morph component gets: A's and B's gallery layers, the layer coloured by neighbourhood change when
    asked (it needs the study), and the query's place under A and B."""
    if not a or not b or a == b:
        return {"a": None, "message": "Choose two different encoders to morph between."}
    missing = [n for n in (a, b) if n not in view.layer_urls]
    if missing:
        return {"a": None, "message": f"{', '.join(missing)} is unavailable: nothing to morph."}
    change = view.agreement_layer(a, b) if colour == "change" else None
    return {"a": view.layer_urls[a], "b": view.layer_urls[b], "names": [a, b], "change": change, "query": query}


def section(prefix: str, view: GalleryView) -> SimpleNamespace:
    """The morph's controls and map."""
    a, b = default_pair(view)
    choices = list(REGISTRY)
    with gr.Row():
        ui = SimpleNamespace(
            a=gr.Dropdown(choices, value=a, label="From encoder A", elem_id=f"{prefix}-morph-a", scale=1),
            b=gr.Dropdown(choices, value=b, label="to encoder B", elem_id=f"{prefix}-morph-b", scale=1),
            colour=gr.Radio(COLOURS, value="landmark", label="Colour the photos by", elem_id=f"{prefix}-morph-colour",
                            scale=2))
    ui.map = MorphView(morph_value(view, a, b), elem_id=f"{prefix}-morph")
    return ui


def redraw(view: GalleryView, a: str, b: str, colour: str) -> dict:
    """A new choice of encoders or colouring: the morph over the whole gallery."""
    return morph_value(view, a, b, colour)


def wire(ui: SimpleNamespace, shared: Shared, handler=redraw, extra_inputs: list | None = None) -> None:
    """A new choice of A, B or colouring redraws the morph (`handler(view, a, b, colour, *extra_inputs)`)."""
    inputs = [ui.a, ui.b, ui.colour, *(extra_inputs or []), *shared.states]
    for control in (ui.a, ui.b, ui.colour):
        control.change(shared.site.route(handler), inputs, ui.map, **api.UI_ONLY)


SELECT_PATHS = ("(paths) => { const chosen = JSON.parse(paths || '[]'); window.__llSelection = chosen; "
                "window.dispatchEvent(new CustomEvent('ll-selection', {detail: {paths: chosen}})); return []; }")


def suggested(view: GalleryView, a: str | None, b: str | None) -> list[dict]:
    """Up to five groups (a landmark's photos, or a sub-folder's) whose neighbourhoods change most from A to B."""
    if not view.study or not a or not b or a == b or a not in view.engine.backends:
        return []
    group_of = {it["path"]: it["class_name"] for it in view.engine.backends[a].index.items}
    return changed_groups(view.study, a, b, group_of)


def _choices(view: GalleryView, a: str | None, b: str | None) -> list[tuple[str, int]]:
    return [(f"{g['group']}: {len(g['paths'])} photos, {g['jaccard']:.0%} of their 10 neighbours shared", i)
            for i, g in enumerate(suggested(view, a, b))]


def suggestion_choices(view: GalleryView, a: str | None, b: str | None) -> gr.Radio:
    """The suggestions as a radio's choices (hidden when there are none)."""
    choices = _choices(view, a, b)
    return gr.Radio(choices=choices, value=None, visible=bool(choices))


def pick_suggestion(view: GalleryView, a: str, b: str, choice: int | None) -> tuple:
    """One click on a suggestion: its photos selected (the panel, and their paths for the maps)."""
    groups = suggested(view, a, b)
    if choice is None or not isinstance(choice, int) or not 0 <= choice < len(groups):
        return (*selection.NO_PANEL, "[]")
    paths = groups[choice]["paths"]
    return (*selection.panel_for(view, paths), json.dumps(paths))


def suggestions(prefix: str, view: GalleryView, a: str | None, b: str | None) -> SimpleNamespace:
    """The suggested selections under the morph, and where a pick's paths go for the maps."""
    choices = _choices(view, a, b)
    return SimpleNamespace(
        pick=gr.Radio(choices, value=None, visible=bool(choices), elem_id=f"{prefix}-suggestions",
                      label="Suggested selections: where the neighbourhoods change most from A to B (one click "
                            "selects the photos)"),
        paths=gr.Textbox(visible="hidden", elem_id=f"{prefix}-suggestion-paths"))


def wire_suggestions(ui: SimpleNamespace, morph: SimpleNamespace, panel: SimpleNamespace, shared: Shared) -> None:
    """New encoders, new suggestions; a pick selects its photos on every map and fills the selection panel."""
    route, ctx = shared.site.route, shared.states
    for control in (morph.a, morph.b):
        control.change(route(suggestion_choices), [morph.a, morph.b, *ctx], ui.pick, **api.UI_ONLY)
    ui.pick.select(route(pick_suggestion), [morph.a, morph.b, ui.pick, *ctx], [*panel.outputs, ui.paths],
                   **api.UI_ONLY).then(None, ui.paths, None, js=SELECT_PATHS, **api.UI_ONLY)
