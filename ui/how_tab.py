"""The How it works tab: the method, the reliability of the match confidence, and the calibration fallback."""

from __future__ import annotations

import gradio as gr

from search.models.encoders import REGISTRY
from ui import text
from ui.figures import METRIC_COLUMNS
from ui.tab import Shared, Tab


def build(shared: Shared) -> Tab:
    """Lay out the How it works tab (the landmark gallery's figures; nothing here changes with the gallery)."""
    view = shared.site.landmarks
    with gr.Tab("How it works", id="how-tab"):
        gr.Markdown(text.how_it_works(REGISTRY, view.engine))
        reliable = view.reliability_plot()
        if reliable is not None:
            gr.Plot(reliable, label="Reliability of the match confidence", elem_id="reliability")
            gr.Dataframe(value=view.metrics_table(), headers=METRIC_COLUMNS, interactive=False,
                         label="Closed-set retrieval, then the open-set figures (landmarks left out); "
                               "[95% bootstrap interval over queries]", elem_id="open-set-table")
        differences = text.differences(view.study)
        if differences:
            gr.Markdown(differences, elem_id="differences")
        curve = view.calibration_plot()
        if curve is not None:
            gr.Plot(curve, label="Distance-only calibration curves (the fallback)", elem_id="calibration")
        elif reliable is None:
            gr.Markdown("_No encoder is calibrated yet: `scripts/evaluate.py` fits the curves._")
    return Tab()
