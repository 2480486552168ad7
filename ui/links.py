"""Opening a link that reopens a search (ui/permalink.py makes them): `?photo=<gallery path>&encoder=<name>
[&tab=compare]` opens the page with that gallery photo as the query (searched by its stored vector), that encoder
chosen, on the Search tab or on Compare."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from search import config
from search.errors import LandmarkError
from ui import api, compare_tab, search_tab, text
from ui.permalink import COMPARE
from ui.tab import Shared

OPEN_IF_LINKED = ("() => { const q = new URLSearchParams(window.location.search);"
                  " if (q.has('photo') || q.has('encoder') || q.has('tab'))"
                  " setTimeout(() => document.querySelector('#open-link')?.click(), 0); return []; }")


def open_link(shared: Shared, ui: SimpleNamespace, request: gr.Request) -> dict:
    """On page load: a link's search, reopened, or one clear message; nothing for a page opened without one."""
    params = dict(getattr(request, "query_params", None) or {})
    photo, encoder, tab = params.get("photo"), params.get("encoder"), params.get("tab", "")
    if not photo and not encoder:
        return {ui.message: gr.skip()}  # Gradio needs at least one output named (a link with only ?tab=)
    view = shared.site.landmarks  # a link names a photo of the landmark gallery, never a visitor's
    try:
        if not photo:
            raise LandmarkError("This link names no photo: it needs ?photo=<gallery path>&encoder=<name>.")
        encoder = encoder or shared.default
        if encoder not in view.engine.backends:
            raise LandmarkError(f"This link names the encoder {encoder!r}, which this app does not have: choose "
                                f"one of {', '.join(view.engine.backends) or 'none (no index is loaded)'}.")
        if tab not in ("", "search", COMPARE):
            raise LandmarkError(f"This link names the tab {tab!r}: use tab=compare, or no tab for Search.")
        view.engine.gallery_photo(encoder, photo)  # refuses a path the gallery does not hold
    except LandmarkError as exc:
        return {ui.message: text.link_problem(str(exc))}
    if tab == COMPARE:
        out = compare_tab.compare_gallery_photo(view, photo, config.COMPARE_TOP_K_DEFAULT)
        return {**dict(zip(ui.compare_outputs, out[:-1])), ui.compare_image: out[-1],
                ui.compare_downloads: compare_tab.downloads(view, out[len(ui.compare_outputs) - 1]),
                shared.tabs: gr.Tabs(selected="compare-tab")}
    found = search_tab.similar_to(view, encoder, photo, config.TOP_K_DEFAULT)
    files, link = search_tab.takeaways(view, encoder, found[3], photo)
    return {**dict(zip(ui.search_outputs, found)), ui.search_image: search_tab.query_photo(view, encoder, photo),
            ui.encoder: encoder, ui.downloads: files, ui.link: link, shared.tabs: gr.Tabs(selected="search-tab")}


def wire(demo: gr.Blocks, shared: Shared, message: gr.Markdown) -> None:
    """Open a link's search when the page loads."""
    search, compare = shared.published["search"], shared.published["compare"]
    ui = SimpleNamespace(message=message, search_outputs=search["outputs"], search_image=search["image"],
                         encoder=search["encoder"], downloads=search["downloads"], link=search["link"],
                         compare_outputs=compare["outputs"], compare_image=compare["image"],
                         compare_downloads=compare["downloads"])
    outputs = [message, *ui.search_outputs, ui.search_image, ui.encoder, ui.downloads, ui.link, *ui.compare_outputs,
               ui.compare_image, ui.compare_downloads, shared.tabs]

    def on_load(request: gr.Request):
        return open_link(shared, ui, request)

    # Only a page opened from a link runs the Python side: an event that names the tabs' outputs and leaves them
    # unchanged still makes the front end redraw them (the maps lost their props), so a plain load must not run one.
    opener = gr.Button(visible="hidden", elem_id="open-link")
    opener.click(on_load, None, outputs, show_progress="hidden", **api.UI_ONLY)
    demo.load(None, None, None, js=OPEN_IF_LINKED, **api.UI_ONLY)
