"""The Search tab: one photo, one encoder, the ranked gallery photos, why each is similar, and the map."""

from __future__ import annotations

import json
from types import SimpleNamespace

import gradio as gr

from search import config
from search.errors import LandmarkError, NoHeatmapError
from search.photos.images import open_image
from search.serving.engine import Hit
from ui import api, selection, text
from ui.components import PhotoInput, UrlFiles, UrlImage, on_photo_url, photo_url_box
from ui.figures import hit_details, hits_json, map_value
from ui.mapview import MapView
from ui.permalink import COPY_LINK, link_query, on_public_url
from ui.site import MINE
from ui.tab import Shared, Tab
from ui.view import GalleryView

# -- handlers: the view of the session's gallery first, then the event's inputs ------------------------------------


def results(view: GalleryView, encoder: str, hits: list[Hit], k: int, query_path: str = ""):
    """The outputs every search shares: ranked gallery, map, verdict, hits and the query (state)."""
    if len(hits) < k:
        gr.Warning(f"Showing {len(hits)} results: k is at most {config.TOP_K_MAX} and the gallery has "
                   f"{len(view.engine.backends[encoder].index.items)} images.")
    layer = map_value(view.layer_urls[encoder],
                      view.maps[encoder].query_traces(hits, query_row=view.row_of(encoder, query_path)))
    return view.gallery(encoder, hits), layer, view.verdict(hits, encoder), hits, query_path


def search(view: GalleryView, image, encoder: str, top_k: float):
    """Find the gallery photos most similar to a photo, under one of the app's encoders.

    Args:
        image: the query photo (any common format; a URL or file for API and MCP callers).
        encoder: one of the app's encoders (the choices; by default "scratch", "pretrained", "transfer").
        top_k: how many results, 1 to 50.
    Returns:
        ranked gallery: a thumbnail and the caption "#rank · landmark · P% same landmark" per hit
        map: the URL of the gallery's t-SNE layer and the query layer (the query star, the ringed hits)
        verdict: one line saying whether the best hit is a confident match
    """
    if image is None:
        raise gr.Error(text.NO_PHOTO)
    k = view.check(encoder, top_k)
    try:
        hits = view.fold(encoder, view.engine.search(encoder, open_image(image), view.search_depth(k)), k)
    except LandmarkError as exc:
        raise gr.Error(str(exc)) from exc
    return results(view, encoder, hits, k)


def search_mine(view: GalleryView, image, encoder: str, top_k: float):
    """Search your own gallery (built with my_gallery in this session) for the photos most similar to a photo.

    Args:
        image: the query photo.
        encoder: one of the app's encoders (the choices; by default "scratch", "pretrained", "transfer").
        top_k: how many results, 1 to 50.
    Returns:
        ranked gallery: a thumbnail and the caption "#rank · group · d=distance" per hit
        map: the URL of your gallery's t-SNE layer and the query layer
        verdict: one line naming the best match
    """
    return search(view, image, encoder, top_k)


def similar_to(view: GalleryView, encoder: str, path: str, top_k: float):
    """Find the gallery photos most similar to a photo that is already in the gallery (no re-encoding).

    Args:
        encoder: one of the app's encoders (the choices; by default "scratch", "pretrained", "transfer").
        path: the gallery photo's path as the index metadata gives it (the "path" of a search_json hit).
        top_k: how many results, 1 to 50.
    Returns:
        ranked gallery: as search returns it, this photo first
        map: as search returns it, with this photo marked
        verdict: as search returns it
    """
    k = view.check(encoder, top_k)
    try:
        hits = view.fold(encoder, view.engine.similar_to(encoder, str(path or ""), view.search_depth(k)), k)
    except LandmarkError as exc:
        raise gr.Error(str(exc)) from exc
    return results(view, encoder, hits, k, query_path=str(path))


def search_from_map(view: GalleryView, encoder: str, top_k: float, evt: gr.SelectData):
    """A click on a map point: search from that gallery photo."""
    return similar_to(view, encoder, evt.value, top_k)


def refresh(view: GalleryView, image, query_path: str, encoder: str, top_k: float):
    """Re-run the current query when the encoder or k changes: a gallery photo by its stored vector."""
    if query_path:
        return similar_to(view, encoder, query_path, top_k)
    if image is None:
        return (gr.skip(),) * 5
    if encoder not in view.engine.backends:
        gr.Warning(f"The {encoder} encoder is unavailable: {view.engine.unavailable.get(encoder)}")
        return [], map_value(None, message="unavailable"), "", [], ""
    return search(view, image, encoder, top_k)


def search_json(view: GalleryView, image, encoder: str, top_k: float) -> str:
    """Search like `search`, but return JSON text for programs and exports.

    Args:
        image: the query photo (a URL or file).
        encoder: one of the app's encoders (the choices; by default "scratch", "pretrained", "transfer").
        top_k: how many results, 1 to 50.
    Returns:
        JSON text {"encoder", "label", "hits": [{rank, path, class_name, distance, p_same}], "confident"}, where p_same is the calibrated probability (0 to 1) that the hit shows the same landmark and "confident" says whether the best hit's p_same reaches the encoder's match threshold (chosen on landmarks left out; How it works says how)
    """
    _, _, _, hits, _ = search(view, image, encoder, top_k)
    # Text, not an object: gradio_client takes every {"path": ...} inside an object for a file to download.
    return json.dumps({"encoder": encoder, "label": view.label(encoder), **hits_json(hits)}, indent=1)


def query_photo(view: GalleryView, encoder: str, query_path: str):
    """Show a gallery photo used as the query in the photo box (a private one never becomes an input file)."""
    if not query_path or view.private:
        return gr.skip()
    return str(view.engine.gallery_photo(encoder, query_path)["thumbnail"])


def select_hit(view: GalleryView, encoder: str, hits: list[Hit], evt: gr.SelectData):
    """A click on a result: the detail panel (larger photo, landmark, file, distance, confidence)."""
    if not hits or not isinstance(evt.index, int) or not 0 <= evt.index < len(hits):
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    hit = hits[evt.index]
    return gr.update(visible=True), view.image(hit.thumbnail), hit_details(hit, view.label(encoder)), hit.path


def explain(view: GalleryView, image, encoder: str, path: str):
    """Show why a gallery photo came back for a query: heatmaps of the regions that drive their similarity.

    Args:
        image: the query photo.
        encoder: one of the app's encoders (the choices; by default "scratch", "pretrained", "transfer").
        path: the gallery photo's path as the index metadata gives it.
    Returns:
        the query photo at its own size with a heatmap of the regions that raise the similarity (Grad-CAM on the last conv feature map)
        the gallery photo (its thumbnail) with its heatmap
    """
    if image is None:
        raise gr.Error(text.NO_PHOTO)
    view.check(encoder, 1)
    try:
        q, h, _ = view.engine.explain(encoder, open_image(image), str(path or ""))
    except NoHeatmapError as exc:  # the rest of the detail panel stands; the heatmaps say why they are empty
        gr.Info(str(exc))
        return None, None
    except LandmarkError as exc:
        raise gr.Error(str(exc)) from exc
    if not view.private:
        return q, h
    return view.keep_private(q), view.keep_private(h)


def downloads(view: GalleryView, encoder: str, hits: list[Hit]) -> list[str]:
    """The shown results as a CSV and a JSON file (rank, photo path, landmark, distance, confidence, encoder)."""
    return view.downloads(f"landmark-lens-{encoder}", {encoder: hits or []})


def takeaways(view: GalleryView, encoder: str, hits: list[Hit], query_path: str):
    """What the shown results offer to take away: their files, and the link that reopens them (a gallery photo of
    the landmark gallery only)."""
    return downloads(view, encoder, hits), "" if view.private else link_query(encoder, query_path)


def on_switch(view: GalleryView, ui: SimpleNamespace, values: dict) -> dict:
    """The Gallery radio changed: this tab's encoder choices, info, results and map for that gallery."""
    encoder = values[ui.encoder]
    current = encoder if encoder in view.engine.backends else next(iter(view.engine.backends), encoder)
    image = values[ui.image]
    if image is not None and current in view.engine.backends:
        found = search(view, image, current, values[ui.top_k])
    else:
        found = ([], map_value(view.layer_urls.get(current)), "", [], "")
    return {ui.encoder: gr.update(choices=view.choices(), value=current), ui.info: view.info(current),
            **dict(zip(ui.outputs, found)), ui.downloads: downloads(view, current, found[3])}


# -- layout and wiring ---------------------------------------------------------------------------------------------


def _query_column(shared: Shared, view: GalleryView) -> SimpleNamespace:
    ui = SimpleNamespace()
    ui.image = PhotoInput(type="pil", label="Your photo", sources=["upload", "clipboard", "webcam"], height=300,
                          elem_id="query-image")
    ui.url = photo_url_box("query-url")
    ui.encoder = gr.Radio(view.choices(), value=shared.default, label="Encoder", elem_id="encoder")
    ui.info = gr.Markdown(view.info(shared.default), elem_id="encoder-info")
    ui.top_k = gr.Slider(1, config.TOP_K_MAX, value=config.TOP_K_DEFAULT, step=1, label="Top-k results",
                         elem_id="top-k")
    ui.button = gr.Button("Search", variant="primary", elem_id="search-button")
    ui.mine_button = gr.Button("Search my gallery", visible=False)  # the search_mine API
    ui.examples = None
    if shared.examples:
        ui.examples = gr.Examples(examples=[[str(p)] for p in shared.examples], inputs=[ui.image],
                                  label="Test-split photos (not in the gallery) — click one", examples_per_page=8)
    ui.downloads = UrlFiles(label="These results as CSV and JSON", file_count="multiple", interactive=False,
                            height=110, elem_id="search-downloads")
    with gr.Accordion("Results as JSON (for programs and exports)", open=False):
        ui.export = gr.Button("Get JSON", size="sm", elem_id="export-button")
        ui.as_json = gr.Code(label="hits with calibrated P(same landmark)", language="json", interactive=False,
                             elem_id="results-json")
    return ui


def _results_column(ui: SimpleNamespace, view: GalleryView, default: str) -> None:
    with gr.Row(equal_height=False):
        ui.found = gr.Markdown(elem_id="verdict")
        ui.copy = gr.Button("Copy link", size="sm", scale=0, min_width=110, elem_id="copy-link")
        gr.DeepLinkButton(size="sm", scale=0, visible=on_public_url(), elem_id="share-link")
    ui.link = gr.Textbox(visible=False, elem_id="search-link")
    ui.gallery = gr.Gallery(label="Most similar gallery photos, best first — click one to explore it",
                            elem_id="results", columns=3, height=460, object_fit="cover", allow_preview=False,
                            show_label=True)
    with gr.Group(visible=False, elem_id="detail") as ui.detail:
        with gr.Row():
            ui.d_image = UrlImage(label="Selected result", height=260, interactive=False, elem_id="detail-image")
            with gr.Column():
                ui.d_text = gr.Markdown(elem_id="detail-text")
                ui.d_path = gr.Textbox(label="Gallery path", interactive=False, elem_id="detail-path")
                ui.again = gr.Button("Search with this photo", variant="primary", elem_id="search-this")
        gr.Markdown(text.WHY_SIMILAR)
        with gr.Row():
            ui.heat_q = UrlImage(label="Your photo", height=240, interactive=False, elem_id="heat-query")
            ui.heat_h = UrlImage(label="This result", height=240, interactive=False, elem_id="heat-hit")
    gr.Markdown(text.MAP_HELP)
    ui.the_map = MapView(map_value(view.layer_urls.get(default)), elem_id="map")
    ui.selection = selection.panel("search", to_compare=True)


def _wire(ui: SimpleNamespace, shared: Shared) -> None:
    route, ctx, private = shared.site.route, shared.states, api.UI_ONLY
    query, outputs = [ui.image, ui.encoder, ui.top_k], ui.outputs
    hide_detail = dict(fn=lambda: gr.update(visible=False), outputs=ui.detail, **private)
    files = dict(fn=route(takeaways), inputs=[ui.encoder, ui.hits, ui.query_path, *ctx],
                 outputs=[ui.downloads, ui.link], **private)
    ui.copy.click(None, ui.link, None, js=COPY_LINK, **private)
    show_query = dict(fn=route(query_photo), inputs=[ui.encoder, ui.query_path, *ctx], outputs=ui.image, **private)
    ui.button.click(route(search), [*query, *ctx], outputs, api_name=api.SEARCH).success(**hide_detail).success(
        **files)
    ui.mine_button.click(route(search_mine, source=MINE), [*query, shared.mine], outputs, api_name=api.SEARCH_MINE)
    ui.image.upload(route(search), [*query, *ctx], outputs, **private).success(**hide_detail).success(**files)
    on_photo_url(ui.url, ui.image, shared.web).success(
        route(search), [*query, *ctx], outputs, **private).success(**hide_detail).success(**files)
    for event in (ui.encoder.change, ui.top_k.release):
        event(route(refresh), [ui.image, ui.query_path, ui.encoder, ui.top_k, *ctx], outputs, **private).success(
            **hide_detail).success(**files)
    ui.encoder.change(route(GalleryView.info), [ui.encoder, *ctx], ui.info, **private)
    if ui.examples is not None:
        ui.examples.load_input_event.then(route(search), [*query, *ctx], outputs, **private).success(**files)
    ui.export.click(route(search_json), [*query, *ctx], ui.as_json, api_name=api.SEARCH_JSON)
    ui.gallery.select(route(select_hit), [ui.encoder, ui.hits, *ctx], [ui.detail, ui.d_image, ui.d_text, ui.d_path],
                      **private).success(route(explain), [ui.image, ui.encoder, ui.d_path, *ctx],
                                         [ui.heat_q, ui.heat_h], api_name=api.EXPLAIN)
    ui.again.click(route(similar_to), [ui.encoder, ui.d_path, ui.top_k, *ctx], outputs,
                   api_name=api.SIMILAR_TO).success(**show_query).success(**hide_detail).success(**files)
    ui.the_map.select(route(search_from_map), [ui.encoder, ui.top_k, *ctx], outputs, **private).success(
        **show_query).success(**hide_detail).success(**files)
    selection.wire(ui.selection, [ui.the_map], shared)
    selection.wire_api(ui.encoder, shared)


def build(shared: Shared) -> Tab:
    """Lay out the Search tab, wire its events, and say what it updates when the gallery switches."""
    view = shared.site.landmarks
    with gr.Tab("Search", id="search-tab"):
        hits, query_path = gr.State([]), gr.State("")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                ui = _query_column(shared, view)
            with gr.Column(scale=2):
                _results_column(ui, view, shared.default)
        ui.hits, ui.query_path = hits, query_path
        ui.outputs = [ui.gallery, ui.the_map, ui.found, ui.hits, ui.query_path]
        _wire(ui, shared)  # inside the tab: its API's hidden fields must not sit in the tab bar beside the tabs
    return Tab(switch_inputs=[ui.image, ui.encoder, ui.top_k],
               switch_outputs=[ui.encoder, ui.info, *ui.outputs, ui.downloads],
               on_switch=lambda v, values: on_switch(v, ui, values),
               name="search", components={"image": ui.image, "encoder": ui.encoder, "top_k": ui.top_k,
                                          "query_path": ui.query_path, "outputs": ui.outputs,
                                          "downloads": ui.downloads, "link": ui.link,
                                          "selection": ui.selection})
