"""Landmark Lens: drop a landmark photo, pick a CNN encoder, see the most similar gallery photos and where
your photo lands on the gallery's t-SNE map. Widgets and wiring only; the work happens in `search/`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import gradio as gr
from gradio.components.plot import PlotData

from search import config
from search.demo import list_examples
from search.encoders import REGISTRY
from search.engine import SearchEngine
from search.errors import BadImageError, LandmarkError
from search.images import open_image
from search.index import thumbs_dir
from search.present import METRIC_COLUMNS, GalleryMap, gallery_items, metrics_row, metrics_summary

PREPARE_CMD = "python scripts/prepare_demo.py"
INTRO = """# 🗺️ Landmark Lens
Reverse image search for landmark photos, built to **compare what three CNNs consider "similar"**:
a small CNN trained from scratch, an ImageNet CNN used as it is, and the same ImageNet CNN adapted to the
landmarks by transfer learning. Drop a photo (or click an example), pick an encoder, and see the closest
gallery photos and where your photo lands on the map of the whole gallery."""


class PhotoInput(gr.Image):
    """gr.Image(type="pil") that decodes uploads with the library's validation, so bad files get clear messages."""

    def get_block_name(self) -> str:
        return "image"  # render with gr.Image's own front end

    def preprocess(self, payload):
        if payload is None:
            return None
        if payload.path is None or (payload.url or "").startswith("data:"):
            try:
                return open_image(super().preprocess(payload))
            except BadImageError as exc:
                raise gr.Error(str(exc)) from exc
            except Exception as exc:  # any decoder failure becomes a readable message
                raise gr.Error(f"That file could not be read as an image ({exc}).") from exc
        try:
            path = Path(payload.path)
            if getattr(payload, "size", None) and payload.size > config.MAX_UPLOAD_BYTES:
                raise BadImageError(f"File is larger than {config.MAX_UPLOAD_BYTES // 2**20} MB.")
            image = open_image(path)
        except BadImageError as exc:
            raise gr.Error(str(exc).replace(str(path.name), payload.orig_name or "upload")) from exc
        if Path(payload.orig_name or "").suffix.lower() == ".gif":
            gr.Info("Animated or not, a GIF is searched by its first frame.")
        return image


class App:
    """The engine plus everything precomputed for display: one gallery map per encoder."""

    def __init__(self, engine: SearchEngine):
        self.engine = engine
        self.maps = {n: GalleryMap(b.index, f"t-SNE of the {n} gallery ({len(b.index.items)} images)")
                     for n, b in engine.backends.items()}
        self.small_maps = {n: GalleryMap(b.index, f"{n} map", height=340, legend=False)
                           for n, b in engine.backends.items()}

    def label(self, name: str) -> str:
        if name in self.engine.backends:
            return self.engine.backends[name].encoder.label
        return f"{name} — unavailable"

    def info(self, name: str) -> str:
        """Markdown: what the encoder is, how well it retrieves, or why it cannot be used."""
        spec = REGISTRY[name]
        if name not in self.engine.backends:
            return f"**{spec.title}** — {spec.description}\n\n⚠️ Unavailable: {self.engine.unavailable.get(name)}"
        b = self.engine.backends[name]
        return (f"**{b.encoder.label}** — {spec.description}\n\n"
                f"How well does it retrieve? {metrics_summary(b.index.eval_report())}")

    def metrics_table(self) -> list[list]:
        return [metrics_row(n, self.engine.backends[n].index.eval_report()
                            if n in self.engine.backends else None) for n in REGISTRY]

    def search(self, image, encoder: str, top_k: float):
        """Ranked gallery and map for one photo under one encoder."""
        if image is None:
            raise gr.Error("Drop a photo first (or click one of the examples).")
        if encoder not in REGISTRY:
            raise gr.Error(f"Unknown encoder {encoder!r}; choose one of {', '.join(REGISTRY)}.")
        try:
            k = int(top_k)
            hits = self.engine.search(encoder, open_image(image), k)
        except (LandmarkError, TypeError, ValueError) as exc:
            raise gr.Error(str(exc)) from exc
        if len(hits) < k:
            gr.Warning(f"Showing {len(hits)} results: k is at most {config.TOP_K_MAX} and the gallery has "
                       f"{len(self.engine.backends[encoder].index.items)} images.")
        return gallery_items(hits), PlotData(type="plotly", plot=self.maps[encoder].json(hits))

    def search_if_image(self, image, encoder: str, top_k: float):
        """Re-run the search on encoder or k changes, once there is a photo."""
        if image is None:
            return gr.skip(), gr.skip()
        if encoder not in self.engine.backends:
            gr.Warning(f"The {encoder} encoder is unavailable: {self.engine.unavailable.get(encoder)}")
            return [], None
        return self.search(image, encoder, top_k)

    def compare(self, image, top_k: float):
        """The same photo under every encoder: three galleries and three maps."""
        if image is None:
            raise gr.Error("Drop a photo first (or click one of the examples).")
        try:
            vectors = self.engine.embed_many(list(self.engine.backends), open_image(image))
        except LandmarkError as exc:
            raise gr.Error(str(exc)) from exc
        galleries, plots = [], []
        for name in REGISTRY:
            if name not in vectors:
                galleries.append([])
                plots.append(None)
                continue
            try:
                hits = self.engine.search_vector(name, vectors[name], int(top_k))
            except LandmarkError as exc:
                raise gr.Error(str(exc)) from exc
            galleries.append(gallery_items(hits))
            plots.append(PlotData(type="plotly", plot=self.small_maps[name].json(hits)))
        return (*galleries, *plots)


def missing_banner(engine: SearchEngine, data_dir: Path = config.DEFAULT_DATA_DIR) -> str:
    """Markdown saying which encoders cannot be used, and the one command that prepares everything."""
    if not engine.unavailable:
        return ""
    if not engine.backends:
        return (f"### ⚠️ No gallery index yet\nThis app needs precomputed indexes in `{engine.index_root}/`. "
                f"Prepare them with one command (it downloads the data when online; offline add "
                f"`--from-zip landmark_images.zip`):\n\n"
                f"`{PREPARE_CMD} --data-dir {data_dir} --index-dir {engine.index_root}`\n\n"
                + "\n".join(f"- **{n}**: {why}" for n, why in engine.unavailable.items()))
    return "⚠️ " + " · ".join(f"**{n}** unavailable: {why}" for n, why in engine.unavailable.items())


def build_demo(engine: SearchEngine, data_dir: Path = config.DEFAULT_DATA_DIR) -> gr.Blocks:
    """The Blocks UI over a loaded engine."""
    app = App(engine)
    names = list(REGISTRY)
    default = next(iter(engine.backends), names[0])
    choices = [(app.label(n), n) for n in names]
    examples = [str(p) for p in list_examples(engine.index_root)]
    gallery_kw = dict(columns=3, height=520, object_fit="cover", allow_preview=True, show_label=True)

    with gr.Blocks(title="Landmark Lens") as demo:
        gr.Markdown(INTRO)
        banner = missing_banner(engine, data_dir)
        if banner:
            gr.Markdown(banner, elem_id="missing-banner")
        with gr.Tab("Search"):
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    image = PhotoInput(type="pil", label="Your photo", sources=["upload", "clipboard", "webcam"],
                                       height=300, elem_id="query-image")
                    encoder = gr.Radio(choices, value=default, label="Encoder", elem_id="encoder")
                    info = gr.Markdown(app.info(default), elem_id="encoder-info")
                    top_k = gr.Slider(1, config.TOP_K_MAX, value=config.TOP_K_DEFAULT, step=1, label="Top-k results")
                    button = gr.Button("Search", variant="primary", elem_id="search-button")
                    if examples:
                        ex = gr.Examples(examples=[[p] for p in examples], inputs=[image],
                                         label="Test-split photos (not in the gallery) — click one", examples_per_page=8)
                with gr.Column(scale=2):
                    gallery = gr.Gallery(label="Most similar gallery photos, best first", elem_id="results",
                                         **gallery_kw)
                    plot = gr.Plot(label="Where your photo lands on the gallery map (★)", elem_id="map")
            outputs = [gallery, plot]
            button.click(app.search, [image, encoder, top_k], outputs, api_name="search")
            image.upload(app.search_if_image, [image, encoder, top_k], outputs, api_visibility="private")
            encoder.change(app.search_if_image, [image, encoder, top_k], outputs, api_visibility="private")
            encoder.change(app.info, encoder, info, api_visibility="private")
            top_k.release(app.search_if_image, [image, encoder, top_k], outputs, api_visibility="private")
            if examples:
                ex.load_input_event.then(app.search_if_image, [image, encoder, top_k], outputs,
                                         api_visibility="private")

        with gr.Tab("Compare encoders"):
            gr.Markdown("One photo, three encoders side by side: does each one match colour and mood, general "
                        "content, or the landmark itself?")
            with gr.Row():
                c_image = PhotoInput(type="pil", label="Your photo", sources=["upload", "clipboard", "webcam"],
                                     height=240, elem_id="compare-image")
                with gr.Column():
                    c_k = gr.Slider(1, 24, value=6, step=1, label="Top-k per encoder")
                    c_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
                    gr.Dataframe(value=app.metrics_table(), headers=METRIC_COLUMNS, interactive=False,
                                 label="Retrieval quality on the test split (from evaluate.py)")
            if examples:
                c_ex = gr.Examples(examples=[[p] for p in examples], inputs=[c_image], label="Examples",
                                   examples_per_page=8)
            c_galleries, c_plots = [], []
            with gr.Row(equal_height=False):
                for n in names:
                    with gr.Column():
                        gr.Markdown(app.info(n))
                        c_galleries.append(gr.Gallery(label=app.label(n), columns=3, height=300, object_fit="cover",
                                                      elem_id=f"compare-{n}"))
                        c_plots.append(gr.Plot(label=f"{n} map"))
            c_out = [*c_galleries, *c_plots]
            c_button.click(app.compare, [c_image, c_k], c_out, api_name="compare")
            c_image.upload(app.compare, [c_image, c_k], c_out, api_visibility="private")
            if examples:
                c_ex.load_input_event.then(app.compare, [c_image, c_k], c_out, api_visibility="private")

        with gr.Tab("How it works"):
            gr.Markdown(HOW_IT_WORKS)
    return demo


HOW_IT_WORKS = """
**Three encoders** turn every photo into a vector; similar photos have nearby vectors.

| encoder | what it is | embedding |
|---|---|---|
| scratch | 4 conv blocks + 3 fully connected layers, trained only on the landmark photos | hidden layer before the logits (256-d) |
| pretrained | an ImageNet CNN used as it is (VGG16; EfficientNet-Lite0 when VGG16 weights are unavailable offline) | VGG16 fc7 (4096-d) / pooled features (1280-d) |
| transfer | the same frozen ImageNet CNN with a new head trained on the landmark classes | head's hidden layer (256-d) |

**Search** is exact nearest-neighbour search by Euclidean distance on L2-normalised vectors (smaller *d* = more similar).
**The map** is a t-SNE projection of each encoder's gallery vectors, computed once when the index is built; your photo
is placed at the distance-weighted mean of its nearest neighbours, and the top-k hits are ringed.
**Metrics**: test-split photos are used as queries against the train-split gallery; P@k is the share of the top k
that show the same landmark, mAP@10 rewards putting the right landmark first.
"""


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--index-dir", type=Path, default=config.INDEX_DIR)
    p.add_argument("--data-dir", type=Path, default=config.DEFAULT_DATA_DIR,
                   help="dataset root, named in the preparation hint (the app itself serves only thumbnails)")
    p.add_argument("--checkpoint-dir", type=Path, default=config.CHECKPOINT_DIR)
    p.add_argument("--weights", type=Path, default=None, help="local VGG16 state dict")
    p.add_argument("--share", action="store_true")
    return p.parse_args()


def launch(engine: SearchEngine, host: str, port: int, share: bool = False,
           data_dir: Path = config.DEFAULT_DATA_DIR, **kw) -> gr.Blocks:
    """Build, queue and start the app; returns the running Blocks."""
    demo = build_demo(engine, data_dir)
    demo.queue(default_concurrency_limit=2, max_size=64)
    allowed = [str(thumbs_dir(engine.index_root).resolve()), str((engine.index_root / config.EXAMPLES_DIRNAME).resolve())]
    demo.launch(server_name=host, server_port=port, share=share, max_file_size=f"{config.MAX_UPLOAD_BYTES // 2**20}mb",
                allowed_paths=allowed, show_error=True, **kw)
    return demo


if __name__ == "__main__":
    args = get_args()
    launch(SearchEngine(args.index_dir, args.checkpoint_dir, args.weights), args.host, args.port, args.share,
           args.data_dir)
