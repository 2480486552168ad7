"""The Compare encoders tab: one photo under every encoder side by side, where they agree, and brushing a photo
across every encoder's map."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import gradio as gr

from search import config
from search.errors import LandmarkError
from search.index import example_landmark
from search.models.encoders import REGISTRY
from search.photos.images import open_image
from search.serving.engine import Hit
from ui import api, morph, selection, text
from ui.components import PhotoInput, UrlFiles, on_photo_url, photo_url_box
from ui.figures import METRIC_COLUMNS, agreement_summary, found_summary, map_value, shared_by_all
from ui.mapview import MapView
from ui.tab import Shared, Tab
from ui.view import GalleryView

SMALL_MAP = dict(height=340, showlegend=False)


def small_map(view: GalleryView, name: str, state: dict | None = None, highlight: str | None = None) -> dict:
    """One column's map: the encoder's gallery layer with the compared query and, when brushed, one photo."""
    title = f"{name} map" + view.faithfulness(name, short=True)
    if state is None:
        return map_value(view.layer_urls.get(name), **SMALL_MAP, title_text=title)
    traces = view.maps[name].query_traces(state["hits"][name], query_row=view.row_of(name, state["query_path"]),
                                          highlight_row=view.row_of(name, highlight))
    return map_value(view.layer_urls[name], traces, **SMALL_MAP, title_text=title)


def _compare(view: GalleryView, vectors: dict, k: int, known_class: str | None, query_path: str = "",
             trunks: dict | None = None, rows: dict | None = None):
    hits: dict[str, list[Hit]] = {}
    for name, vec in vectors.items():
        try:
            hits[name] = view.engine.search_vector(name, vec, k, (trunks or {}).get(name), (rows or {}).get(name))
        except LandmarkError as exc:
            raise gr.Error(str(exc)) from exc
    paths = {n: [h.path for h in hs] for n, hs in hits.items()}
    shared = shared_by_all(paths)
    state = {"hits": hits, "query_path": query_path, "k": k}
    galleries, maps, notes = [], [], []
    for name in REGISTRY:
        if name not in hits:
            galleries.append([])
            why = "not compared" if name in view.engine.backends else "unavailable"
            maps.append(map_value(None, message=f"{name} is {why}"))
            notes.append("")
            continue
        galleries.append(view.gallery(name, hits[name], shared, len(hits)))
        maps.append(small_map(view, name, state))
        notes.append(found_summary(hits[name], known_class) or view.verdict(hits[name], name, compact=True))
    return (*galleries, *maps, *notes, agreement_summary(paths, k), state)


def morph_of(view: GalleryView, a: str, b: str, colour: str, state: dict | None) -> dict:
    """The morph from A to B, the compared photo's star travelling from its place under A to its place under B."""
    stars = None
    if state and a in state["hits"] and b in state["hits"]:
        stars = {}
        for key, name in (("a", a), ("b", b)):
            star = view.maps[name].query_traces(state["hits"][name],
                                                query_row=view.row_of(name, state["query_path"]))[1]
            stars[key] = [star["x"][0], star["y"][0]]
    return morph.morph_value(view, a, b, colour, stars)


def default_compared(names) -> list[str]:
    """The encoders Compare shows first: the seed's three when configured, else the first three."""
    seed = [n for n in ("scratch", "pretrained", "transfer") if n in names]
    return seed if len(seed) >= 2 else list(names)[:3]


def chosen(view: GalleryView, encoders: list[str] | None) -> list[str]:
    """The available encoders of a choice (none: the default ones), in the configured order; at least two."""
    asked = default_compared(REGISTRY) if not encoders else list(encoders)
    unknown = [n for n in asked if n not in REGISTRY]
    if unknown:
        raise gr.Error(f"Unknown encoder {unknown[0]!r}; choose from {', '.join(REGISTRY)}.")
    names = [n for n in REGISTRY if n in asked and n in view.engine.backends]
    if len(names) < 2 and len([n for n in REGISTRY if n in view.engine.backends]) >= 2:
        raise gr.Error("Choose at least two encoders to compare.")
    return names


def compare(view: GalleryView, image, top_k: float, known_class: str = "", encoders: list[str] | None = None):
    """Search the same photo under several encoders and show where they agree.

    Args:
        image: the query photo.
        top_k: how many results per encoder, 1 to 24.
        known_class: the photo's landmark when known (for the examples), else empty.
        encoders: which encoders to compare, two or more (empty: the default three).
    Returns:
        galleries: one per configured encoder, in order: its ranked hits ("✓ all N": all compared returned it)
        maps: one per configured encoder, in order
        notes: one per configured encoder, in order: whether its top-k found the known landmark, or its verdict
        agreement: the pairwise top-k overlaps and how many photos all compared encoders returned
    """
    if image is None:
        raise gr.Error(text.NO_PHOTO)
    try:
        vectors, trunks = view.engine.embed_with_trunk(chosen(view, encoders), open_image(image))
    except LandmarkError as exc:
        raise gr.Error(str(exc)) from exc
    # an example's landmark says nothing about a private gallery's groups
    return _compare(view, vectors, int(top_k), None if view.private else known_class or None, trunks=trunks)


def compare_gallery_photo(view: GalleryView, path: str, top_k: float, encoders: list[str] | None = None):
    """Compare the encoders on a gallery photo, by its stored vectors; its landmark is known."""
    if not path:
        raise gr.Error("Click a photo in one of the columns first.")
    try:
        photos = {n: view.engine.gallery_photo(n, path) for n in chosen(view, encoders)}
        vectors = {n: view.engine.backends[n].index.embeddings[p["row"]] for n, p in photos.items()}
    except LandmarkError as exc:
        raise gr.Error(str(exc)) from exc
    photo = next(iter(photos.values()), None)
    rows = {n: p["row"] for n, p in photos.items()}
    return (*_compare(view, vectors, int(top_k), photo and photo["class_name"], query_path=path, rows=rows),
            str(photo["thumbnail"]) if photo and not view.private else gr.skip())


def brush(view: GalleryView, state: dict | None, evt: gr.SelectData, column: str):
    """A photo selected in one column: highlight that same photo on every map, say where each ranks it."""
    if not state or column not in state["hits"] or not 0 <= evt.index < len(state["hits"][column]):
        return (*(gr.skip(),) * len(REGISTRY), gr.skip(), gr.skip())
    path = state["hits"][column][evt.index].path
    maps, where = [], []
    for name in REGISTRY:
        if name not in state["hits"]:
            maps.append(gr.skip())
            continue
        maps.append(small_map(view, name, state, highlight=path))
        rank = next((h.rank for h in state["hits"][name] if h.path == path), None)
        where.append(f"{name}: #{rank}" if rank else f"{name}: not in its top-{state['k']}")
    name = path.rsplit("/", 1)[-1]
    return (*maps, f"Selected **{name}** (magenta on every map) — " + " · ".join(where), path)


def downloads(view: GalleryView, state: dict | None) -> list[str]:
    """The shown results of every encoder in one CSV and one JSON file (a column names the encoder)."""
    hits = (state or {}).get("hits") or {}
    return view.downloads("landmark-lens-compare", {n: hits[n] for n in REGISTRY if n in hits})


def on_switch(view: GalleryView, ui: SimpleNamespace) -> dict:
    """The Gallery radio changed: empty columns and that gallery's maps."""
    return {**{g: [] for g in ui.galleries}, **{m: small_map(view, n) for n, m in zip(REGISTRY, ui.maps)},
            **{note: "" for note in ui.notes}, ui.agreement: "", ui.state: None, ui.downloads: []}


# -- layout and wiring ---------------------------------------------------------------------------------------------


def _columns(ui: SimpleNamespace, view: GalleryView) -> None:
    ui.galleries, ui.maps, ui.notes, ui.columns = [], [], [], []
    shown = default_compared(REGISTRY)
    with gr.Row(equal_height=False):
        for n in REGISTRY:
            with gr.Column(visible=n in shown) as column:
                ui.columns.append(column)
                info = gr.Markdown(view.info(n), render=False)  # below the map: the hits come first
                ui.notes.append(gr.Markdown(elem_id=f"compare-note-{n}"))
                ui.galleries.append(gr.Gallery(label=view.label(n), columns=3, height=300, object_fit="cover",
                                               allow_preview=False, elem_id=f"compare-{n}"))
                ui.maps.append(MapView(small_map(view, n), height=340, elem_id=f"compare-map-{n}"))
                info.render()


def _layout(shared: Shared, view: GalleryView) -> SimpleNamespace:
    gr.Markdown(text.compare_intro(REGISTRY))
    ui = SimpleNamespace(state=gr.State(None), known=gr.Textbox(visible=False), examples=None)
    # The first screen holds the photo, the controls and the examples beside it, then the agreement line and the
    # tops of the columns; the retrieval table goes below them.
    with gr.Row():
        with gr.Column():
            ui.image = PhotoInput(type="pil", label="Your photo", sources=["upload", "clipboard", "webcam"],
                                  height=220, elem_id="compare-image")
            ui.url = photo_url_box("compare-url", compact=True)
        with gr.Column():
            with gr.Row():
                ui.k = gr.Slider(1, config.COMPARE_TOP_K_MAX, value=config.COMPARE_TOP_K_DEFAULT, step=1,
                                 label="Top-k per encoder", scale=2, min_width=150)
                ui.encoders = gr.CheckboxGroup([(n, n) for n in REGISTRY], value=default_compared(REGISTRY),
                                               label="Encoders (two or more)", scale=3, elem_id="compare-encoders")
                ui.button = gr.Button("Compare", variant="primary", elem_id="compare-button", scale=1, min_width=90)
            table = gr.Dataframe(value=view.metrics_table(), headers=METRIC_COLUMNS, interactive=False,
                                 label="Retrieval quality on the test split (from evaluate.py)", render=False)
            if shared.examples:  # one input: Gradio shows them as a strip of thumbnails (as on Search), not a table
                ui.examples = gr.Examples(examples=[[str(p)] for p in shared.examples], inputs=[ui.image],
                                          examples_per_page=8, label="Examples (their landmark is known, so each "
                                                                     "column says if it found it)")
    ui.api_compare = gr.Button(visible=False)  # the /compare API (the button above is /compare_encoders)
    ui.agreement = gr.Markdown(elem_id="agreement")
    # made here, shown below the columns: the agreement line stays right above them, and the components keep the
    # creation order the API's output names come from
    ui.selected = gr.Markdown(elem_id="compare-selected", render=False)
    ui.path = gr.Textbox(visible=False, render=False)
    ui.again = gr.Button("Compare with this photo", size="sm", elem_id="compare-this", render=False)
    _columns(ui, view)
    with gr.Row():
        for component in (ui.selected, ui.path, ui.again):
            component.render()
    with gr.Row():
        ui.downloads = UrlFiles(label="These results, every encoder, as CSV and JSON", file_count="multiple",
                                interactive=False, height=110, elem_id="compare-downloads")
        table.render()
    return ui


def example_known(examples: list, clicked: tuple) -> str:
    """The landmark of the example clicked (the Examples' dataset gives its index first)."""
    index = clicked[0] if isinstance(clicked, (list, tuple)) else clicked
    return example_landmark(examples[index]) if isinstance(index, int) and 0 <= index < len(examples) else ""


def recompare(view: GalleryView, image, top_k: float, known_class: str, encoders: list[str]):
    """The choice of encoders changed: compare the photo shown again under the new choice (nothing without one)."""
    if image is None:
        return (gr.skip(),) * (3 * len(REGISTRY) + 2)
    return compare(view, image, top_k, known_class, encoders)


def _wire(ui: SimpleNamespace, shared: Shared) -> None:
    route, ctx, private = shared.site.route, shared.states, api.UI_ONLY
    query, outputs = [ui.image, ui.k, ui.known, ui.encoders, *ctx], ui.outputs
    files = dict(fn=route(downloads), inputs=[ui.state, *ctx], outputs=ui.downloads, **private)
    ui.button.click(route(compare), query, outputs, api_name=api.COMPARE_ENCODERS).success(**files)
    # /compare keeps its three parameters (a raw HTTP caller sends every input): the default encoders
    ui.api_compare.click(route(compare, encoders=None), [ui.image, ui.k, ui.known, *ctx], outputs, api_name=api.COMPARE)
    ui.image.upload(lambda: "", None, ui.known, **private).then(route(compare), query, outputs, **private).success(
        **files)
    on_photo_url(ui.url, ui.image, shared.web).success(
        lambda: "", None, ui.known, **private).then(route(compare), query, outputs, **private).success(**files)
    if ui.examples is not None:
        ui.examples.load_input_event.then(functools.partial(example_known, shared.examples), ui.examples.dataset,
                                          ui.known, **private).then(route(compare), query, outputs,
                                                                    **private).success(**files)
    for n, gallery in zip(REGISTRY, ui.galleries):
        gallery.select(route(brush, column=n), [ui.state, *ctx], [*ui.maps, ui.selected, ui.path], **private)
    ui.again.click(route(compare_gallery_photo), [ui.path, ui.k, ui.encoders, *ctx], [*outputs, ui.image],
                   **private).success(**files)
    ui.encoders.change(lambda names: [gr.Column(visible=n in names) for n in REGISTRY], ui.encoders, ui.columns,
                       **private).then(route(recompare), query, outputs, **private).success(**files)
    selection.wire(ui.selection, ui.maps, shared)
    morph.wire(ui.morph, shared, morph_of, [ui.state])
    ui.state.change(route(morph_of), [ui.morph.a, ui.morph.b, ui.morph.colour, ui.state, *ctx], ui.morph.map,
                    **private)
    from_search = shared.published["search"]["selection"]  # Search's selection, opened here with its photos kept
    from_search.compare.click(route(selection.panel_for), [from_search.paths, *ctx],
                              ui.selection.outputs, **private).then(
        lambda: gr.Tabs(selected="compare-tab"), None, shared.tabs, **private)


def build(shared: Shared) -> Tab:
    """Lay out the Compare tab, wire its events, and say what it resets when the gallery switches."""
    view = shared.site.landmarks
    with gr.Tab("Compare encoders", id="compare-tab"):
        ui = _layout(shared, view)
        ui.selection = selection.panel("compare")
        gr.Markdown("### The morph: from one encoder's map to another's\n" + text.MORPH_HELP)
        ui.morph = morph.section("compare", view)
    ui.outputs = [*ui.galleries, *ui.maps, *ui.notes, ui.agreement, ui.state]
    _wire(ui, shared)
    return Tab(switch_outputs=[*ui.outputs, ui.downloads], on_switch=lambda v, _values: on_switch(v, ui),
               name="compare", components={"outputs": ui.outputs, "image": ui.image, "downloads": ui.downloads})
