"""The Study tab: the configured encoders compared over the whole gallery, not one query at a time: where their
neighbourhoods agree, which landmarks each gets right, how faithful each map is, and what the numbers say."""

from __future__ import annotations

import json
from types import SimpleNamespace

import gradio as gr

from ui import api, morph, search_tab, selection, text
from ui.figures import map_value
from ui.mapview import MapView
from ui.study_figures import (
    CONFUSION_COLUMNS,
    MAP_COLUMNS,
    METRICS,
    SEPARATION_COLUMNS,
    agreement_histogram,
    agreement_text,
    class_bars,
    confusion_rows,
    extremes,
    map_rows,
    neighbourhood,
    ordered_pairs,
    public,
    separation_rows,
)
from ui.tab import Shared, Tab
from ui.view import GalleryView

# -- handlers ------------------------------------------------------------------------------------------------------


def _photos(view: GalleryView, encoder: str, paths: list[str]) -> list[tuple[str, str]]:
    index = view.engine.backends[encoder].index
    rows = [index.row_of(p) for p in paths]
    return [(view.image(index.thumbnail_path(r)), index.items[r]["class_name"]) for r in rows]


def confusion_pairs(view: GalleryView) -> list[tuple[str, str]]:
    """Each encoder's most frequent confusion as a pair of photos: the test photo, then what it retrieved first."""
    out = []
    for encoder, mistakes in ((view.study or {}).get("confusions") or {}).items():
        index = view.engine.backends[encoder].index if encoder in view.engine.backends else None
        for c in mistakes[:1] if index is not None else ():
            out += [(view.image(index.thumbs / c["query_thumb"]), f"{encoder}: a test photo of {c['true']}"),
                    (view.image(index.thumbnail_path(index.row_of(c["hit"]))),
                     f"… retrieved {c['retrieved']} first ({c['count']}× for this landmark)")]
    return out


def pair_view(view: GalleryView, pair: str):
    """The chosen pair: encoder a's map coloured by agreement with b, and the photos they agree on least and most."""
    if not view.study or not pair:
        return map_value(None, message="no study"), [], [], {"least": [], "most": []}
    a, b = pair.split("|")
    ends = extremes(view.study, pair)
    return (map_value(view.agreement_layer(a, b), height=460), _photos(view, a, ends["least"]),
            _photos(view, a, ends["most"]), ends)


def dominoes(view: GalleryView, pair: str, path: str):
    """One photo's neighbourhood dominoes: its neighbours under both encoders, only under a, only under b."""
    a, b = pair.split("|")
    parts = neighbourhood(view.study, pair, path)
    note = (f"**{path.rsplit('/', 1)[-1]}**: {len(parts['both'])} neighbours in common, "
            f"{len(parts['only_a'])} only under {a}, {len(parts['only_b'])} only under {b}.")
    return (note, gr.update(visible=True), _photos(view, a, parts["both"]), _photos(view, a, parts["only_a"]),
            _photos(view, b, parts["only_b"]))


def open_photo(view: GalleryView, pair: str, path: str, top_k: float):
    """A study photo clicked: its dominoes here, and a search from it under encoder a in the Search tab."""
    if not view.study or not pair or not path:
        raise gr.Error("Choose a photo of the study first.")
    a = pair.split("|")[0]
    return (*dominoes(view, pair, path), *search_tab.similar_to(view, a, path, top_k), a,
            gr.Tabs(selected="search-tab"))


def pick_extreme(view: GalleryView, pair: str, ends: dict, top_k: float, evt: gr.SelectData, which: str):
    """A click on a least- or most-agreeing photo."""
    paths = (ends or {}).get(which) or []
    if not isinstance(evt.index, int) or not 0 <= evt.index < len(paths):
        raise gr.Error("That photo is no longer listed; choose the pair again.")
    return open_photo(view, pair, paths[evt.index], top_k)


def pick_on_map(view: GalleryView, pair: str, top_k: float, evt: gr.SelectData):
    """A click on the agreement map."""
    return open_photo(view, pair, evt.value, top_k)


def metric_bars(view: GalleryView, metric: str):
    """The per-landmark chart for one metric."""
    return class_bars(view.study or {}, metric)


def study(view: GalleryView) -> str:
    """The comparison of the encoders over the whole landmark gallery, as JSON text.

    Returns:
        JSON text {"k": 10, "photos": [gallery paths in the index's row order], "agreement": {"scratch|pretrained": {"mean", "per_photo": [Jaccard of the two encoders' 10-NN sets per photo]}, ...}, "maps": {encoder: {"trustworthiness", "knn_preserved", ...}}, "classes": {encoder: {landmark: {"precision@1", "mAP@10", "queries"}}}, "confusions": {encoder: [{"true", "retrieved", "count", ...}]}, "separation", "colour_agreement", "unseen", "differences": {"a|b": {"precision@1": {"difference", "ci95", "p", "queries", "real"}, "mAP@10": ...}}, "landmark_differences": {metric: {"a|b": {landmark: {..., "p_adjusted", "real"}}}}, "findings": [sentences]}
    """
    if not view.study:
        raise gr.Error(text.NO_STUDY)
    return json.dumps(public(view.study), indent=1)


def content(view: GalleryView) -> dict:
    """What the tab shows for one gallery's study (the landmark gallery's, or a visitor's), by component name."""
    s = view.study
    if not s:
        return {"intro": text.NO_STUDY, "body": False}
    choices = ordered_pairs(s)
    map_, least, most, ends = pair_view(view, choices[0][1])
    labelled = bool(s.get("classes"))
    return {"intro": text.study_intro(len(s["maps"])), "body": True, "agreement": agreement_text(s),
            "histogram": agreement_histogram(s), "pair": (choices, choices[0][1]), "map": map_, "least": least,
            "most": most, "ends": ends, "classes": labelled, "bars": class_bars(s) if labelled else None,
            "confusions": confusion_rows(s), "pairs": confusion_pairs(view) if labelled else [], "faith": map_rows(s), "separation": separation_rows(s),
            "findings": "\n\n".join(f"- {f}" for f in s.get("findings", [])), "dom_note": text.DOMINOES_HINT,
            "neighbourhood": False, "both": [], "only_a": [], "only_b": []}


def render(view: GalleryView, ui: SimpleNamespace) -> dict:
    """The gallery switched: every component of the tab for that gallery's study ({component: update})."""
    updates = {}
    for name, value in content(view).items():
        if name in ("body", "classes", "neighbourhood"):
            value = gr.update(visible=value)
        elif name == "pair":
            value = gr.update(choices=value[0], value=value[1])
        updates[getattr(ui, name)] = value
    updates[ui.morph.map] = morph.morph_value(view, *morph.default_pair(view))
    updates[ui.suggestions.pick] = morph.suggestion_choices(view, *morph.default_pair(view))
    return updates


# -- layout and wiring ---------------------------------------------------------------------------------------------


def _agreement_section(ui: SimpleNamespace, c: dict, view: GalleryView) -> None:
    gr.Markdown("### 1. Do the encoders see the same neighbours?")
    ui.agreement = gr.Markdown(c.get("agreement"), elem_id="study-agreement")
    ui.histogram = gr.Plot(c.get("histogram"), label="Agreement per photo", elem_id="study-histogram")
    choices, first = c.get("pair", ([], None))
    ui.pair = gr.Dropdown(choices, value=first, label="Map", elem_id="study-pair")
    ui.map = MapView(c.get("map", map_value(None)), height=460, elem_id="study-map")
    ui.selection = selection.panel("study")
    gr.Markdown("#### The morph: the whole gallery from one encoder's map to another's\n" + text.MORPH_HELP)
    ui.morph = morph.section("study", view)
    ui.suggestions = morph.suggestions("study", view, *morph.default_pair(view))
    ui.ends = gr.State(c.get("ends", {"least": [], "most": []}))
    with gr.Row():
        ui.least = gr.Gallery(c.get("least"), label="Where they agree least — click one to search from it",
                              columns=6, height=220, object_fit="cover", allow_preview=False, elem_id="study-least")
        ui.most = gr.Gallery(c.get("most"), label="Where they agree most — click one to search from it", columns=6,
                             height=220, object_fit="cover", allow_preview=False, elem_id="study-most")
    ui.dom_note = gr.Markdown(c.get("dom_note", text.DOMINOES_HINT), elem_id="study-dominoes")
    with gr.Row(visible=c.get("neighbourhood", False), elem_id="study-neighbourhood") as ui.neighbourhood:
        small = dict(columns=5, height=160, object_fit="cover", allow_preview=False)
        ui.both = gr.Gallery(label="Neighbours under both", elem_id="study-both", **small)
        ui.only_a = gr.Gallery(label="Only under the map's encoder", elem_id="study-only-a", **small)
        ui.only_b = gr.Gallery(label="Only under the other", elem_id="study-only-b", **small)


def _other_sections(ui: SimpleNamespace, c: dict) -> None:
    with gr.Column(visible=c.get("classes", False)) as ui.classes:
        gr.Markdown("### 2. Which landmarks does each encoder get right?")
        ui.metric = gr.Radio([(v, k) for k, v in METRICS.items()], value="precision@1", label="Metric")
        ui.bars = gr.Plot(c.get("bars"), label="Per landmark", elem_id="study-classes")
        ui.confusions = gr.Dataframe(c.get("confusions"), headers=CONFUSION_COLUMNS, interactive=False,
                                     label="Most frequent confusions", elem_id="study-confusions")
        ui.pairs = gr.Gallery(c.get("pairs"), label="Each encoder's most frequent confusion: the test photo, then "
                              "the gallery photo it retrieved first", columns=6, height=220, object_fit="cover",
                              allow_preview=False, elem_id="study-confusion-examples")
    gr.Markdown("### 3. Can you trust the map?\n" + text.MAP_FAITH)
    ui.faith = gr.Dataframe(c.get("faith"), headers=MAP_COLUMNS, interactive=False, label="Map faithfulness",
                            elem_id="study-maps")
    gr.Markdown("### 4. The study's findings, measured")
    ui.separation = gr.Dataframe(c.get("separation"), headers=SEPARATION_COLUMNS, interactive=False,
                                 label="Per encoder", elem_id="study-separation")
    ui.findings = gr.Markdown(c.get("findings"), elem_id="study-findings")
    with gr.Accordion("The study as JSON (the study API)", open=False):
        ui.export = gr.Button("Get JSON", size="sm", elem_id="study-export")
        ui.as_json = gr.Code(language="json", interactive=False, elem_id="study-json")


def _wire(ui: SimpleNamespace, shared: Shared) -> None:
    route, ctx, private = shared.site.route, shared.states, api.UI_ONLY
    search = shared.published["search"]
    opened = [ui.dom_note, ui.neighbourhood, ui.both, ui.only_a, ui.only_b, *search["outputs"], search["encoder"],
              shared.tabs]
    show_query = dict(fn=route(search_tab.query_photo), inputs=[search["encoder"], search["query_path"], *ctx],
                      outputs=search["image"], **private)
    files = dict(fn=route(search_tab.takeaways), inputs=[search["encoder"], search["outputs"][3],
                                                          search["query_path"], *ctx],
                 outputs=[search["downloads"], search["link"]], **private)
    ui.pair.change(route(pair_view), [ui.pair, *ctx], [ui.map, ui.least, ui.most, ui.ends], **private)
    for which, gallery in (("least", ui.least), ("most", ui.most)):
        gallery.select(route(pick_extreme, which=which), [ui.pair, ui.ends, search["top_k"], *ctx], opened,
                       **private).success(**show_query).success(**files)
    ui.map.select(route(pick_on_map), [ui.pair, search["top_k"], *ctx], opened, **private).success(
        **show_query).success(**files)
    ui.metric.change(route(metric_bars), [ui.metric, *ctx], ui.bars, **private)
    selection.wire(ui.selection, [ui.map], shared)
    morph.wire(ui.morph, shared)
    morph.wire_suggestions(ui.suggestions, ui.morph, ui.selection, shared)
    ui.export.click(route(study), ctx, ui.as_json, api_name=api.STUDY)


def build(shared: Shared) -> Tab:
    """Lay out the Study tab with the landmark gallery's study, wire it, and say what it redraws on a switch."""
    c = content(shared.site.landmarks)
    with gr.Tab("Study", id="study-tab"):
        ui = SimpleNamespace(intro=gr.Markdown(c["intro"], elem_id="study-intro"))
        with gr.Column(visible=c["body"]) as ui.body:
            _agreement_section(ui, c, shared.site.landmarks)
            _other_sections(ui, c)
    _wire(ui, shared)
    names = ["intro", "body", "agreement", "histogram", "pair", "map", "least", "most", "ends", "classes", "bars",
             "confusions", "pairs", "faith", "separation", "findings", "dom_note", "neighbourhood", "both", "only_a",
             "only_b"]
    return Tab(switch_outputs=[*(getattr(ui, n) for n in names), ui.morph.map, ui.suggestions.pick], on_switch=lambda view, _values: render(view, ui))
