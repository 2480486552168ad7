"""The gallery map as a Gradio 6 custom HTML component: Plotly.js in the browser, click and hover events.

`gr.Plot` sends no click events back to Python and re-sends the whole figure on every update. This
component loads the `plotly.min.js` that the installed `plotly` package ships (served by the app, so it
works offline), fetches each encoder's gallery layer once as a static file, and per search receives only
the query layer (`ui.figures.map_value`). Clicking a gallery point fires `select` with
`{index: row, value: gallery path}`; hovering one shows its thumbnail next to the map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import plotly

STATIC = Path(__file__).with_name("static")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

TEMPLATE = """<div class="ll-map-status"></div><div class="ll-map-plot"></div>
<div class="ll-map-preview"><img alt="" /><div class="ll-map-preview-text"></div></div>"""


def component_script(name: str) -> str:
    """A map component's script: the shared Plotly loader and layer cache, then its own file of static/."""
    return (STATIC / "plotly_layers.js").read_text() + (STATIC / name).read_text()


def file_url(path: Path) -> str:
    """The app-relative URL under which Gradio's file route serves an allowed file."""
    return f"gradio_api/file={Path(path).resolve()}"


class MapView(gr.HTML):
    """An interactive t-SNE map of a gallery with the query layered on top (value: `present.map_value`)."""

    def __init__(self, value: dict | None = None, height: int = 520, **kwargs: Any):
        super().__init__(value=value, html_template=TEMPLATE,
                         css_template=(STATIC / "map.css").read_text(),
                         js_on_load=component_script("map.js"),
                         apply_default_css=False, plotly_url=file_url(PLOTLY_JS), height=height, **kwargs)

    def preprocess(self, payload: Any) -> Any:
        return payload

    def postprocess(self, value: Any) -> Any:
        return value

    def api_info(self) -> dict[str, Any]:
        return {"type": "object", "description": "{layer: URL of the gallery layer JSON, traces: query layer "
                                                 "(Plotly traces), layout: layout overrides}"}

    def example_payload(self) -> Any:
        return {"layer": None, "traces": [], "layout": {}}

    def example_value(self) -> Any:
        return self.example_payload()


def allowed_files() -> list[str]:
    """Files this component needs the app to serve."""
    return [str(PLOTLY_JS.resolve())]
