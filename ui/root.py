"""The composition root: the page's header and shared states, every tab (one line each), then the events that
cross tabs, composed from what each tab contributes."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from search import config
from search.index import list_examples
from search.models.encoders import REGISTRY
from search.photos.web import WebPhotoRules
from search.serving.engine import SearchEngine
from ui import api, compare_tab, how_tab, links, mine_tab, search_tab, study_tab, text
from ui.site import LANDMARKS, MINE, Site
from ui.tab import Shared, Tab

TABS = (search_tab, compare_tab, study_tab, mine_tab, how_tab)  # in page order; each module's build(shared) -> Tab
PAGE_CSS = (Path(__file__).parent / "static" / "page.css").read_text()  # the page's own rules (phones)


def _header(site: Site, engine: SearchEngine, data_dir: Path, web: WebPhotoRules) -> Shared:
    gr.Markdown(text.intro(REGISTRY))
    banner = text.missing_banner(engine, data_dir)
    if banner:
        gr.Markdown(banner, elem_id="missing-banner")
    link_message = gr.Markdown(elem_id="link-message")
    source = gr.State(LANDMARKS)
    # A function, not the bound method: Gradio deep-copies the config (this prop too) on every page load.
    mine = gr.State(None, time_to_live=config.MY_GALLERY.ttl_seconds, delete_callback=lambda t: site.forget(t))
    n = max((len(b.index.items) for b in engine.backends.values()), default=0)
    pick = gr.Radio([(f"Landmark gallery ({n:,} photos)" if n else "Landmark gallery", LANDMARKS),
                     ("Your photos", MINE)], value=LANDMARKS, label="Gallery", elem_id="gallery-source")
    return Shared(site, source, mine, pick, list_examples(engine.index_root),
                  default=next(iter(engine.backends), next(iter(REGISTRY))), link_message=link_message, web=web)


def _wire_switch(shared: Shared, tabs: list[Tab]) -> None:
    """The Gallery radio: every tab updates for the chosen gallery; with none to show, the radio goes back."""
    inputs = {shared.pick, shared.mine, *(c for t in tabs for c in t.switch_inputs)}
    outputs = {shared.source, *(c for t in tabs for c in t.switch_outputs)}

    def switch(values: dict) -> dict:
        try:
            view = shared.site.view(values[shared.pick], values[shared.mine])
        except gr.Error as exc:
            gr.Warning(exc.message)
            return {shared.source: LANDMARKS}
        updates = {shared.source: values[shared.pick]}
        for tab in tabs:
            if tab.on_switch is not None:
                updates.update(tab.on_switch(view, values))
        return updates

    shared.pick.change(switch, inputs, outputs, **api.UI_ONLY).then(lambda s: s, shared.source, shared.pick,
                                                                    **api.UI_ONLY)


def build_demo(engine: SearchEngine, data_dir: Path = config.DEFAULT_DATA_DIR,
               work_dir: Path = config.APP_WORK_DIR, web: WebPhotoRules = WebPhotoRules()) -> gr.Blocks:
    """The Blocks UI over a loaded engine; `demo.site` holds the galleries (launch guards their files with it);
    `web` bounds fetching a visitor's photo from a web address."""
    site = Site(engine, work_dir)
    with gr.Blocks(title="Landmark Lens", delete_cache=(3600, 3600)) as demo:
        shared = _header(site, engine, data_dir, web)
        with gr.Tabs(selected="search-tab" if engine.backends else "mine-tab", overflow_behavior="wrap") as shared.tabs:
            tabs = []
            for tab in TABS:
                tabs.append(tab.build(shared))
                shared.published[tabs[-1].name] = tabs[-1].components
        _wire_switch(shared, tabs)
        links.wire(demo, shared, shared.link_message)
        demo.unload(site.tab_closed)
    demo.site = site
    return demo
