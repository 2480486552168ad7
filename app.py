"""Landmark Lens: drop a landmark photo, pick a CNN encoder, see the most similar gallery photos and where
your photo lands on the gallery's t-SNE map. Widgets and wiring only; the work happens in `search/`."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path

import gradio as gr
from gradio import route_utils
from gradio.data_classes import ImageData
from starlette.middleware import Middleware

from search import config
from search.demo import list_examples
from search.encoders import REGISTRY, Encoder
from search.engine import Hit, SearchEngine
from search.errors import BadImageError, LandmarkError
from search.images import open_image, placeholder
from search.index import thumbs_dir
from ui.mapview import MapView, allowed_files, file_url
from search.present import (METRIC_COLUMNS, GalleryMap, agreement_summary, broken_thumbnails_warning,
                            calibration_figure, found_summary, gallery_items, hit_details, hits_json, map_value,
                            metrics_row, metrics_summary, reliability_figure, shared_by_all, unreliable_note,
                            UNCALIBRATED_PRIVATE, verdict)
from search.sessions import PrivateGalleries, PrivateGallery
from search.storage import atomic_path
from search.uploads import discard
from search.visitor import PrivateFiles, private_url, visitor_of

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
            if path.stat().st_size > config.MAX_UPLOAD_BYTES:
                raise BadImageError(f"File is larger than {config.MAX_UPLOAD_BYTES // 2**20} MB.")
            image = open_image(path)
        except BadImageError as exc:
            raise gr.Error(str(exc).replace(str(path.name), payload.orig_name or "upload")) from exc
        if Path(payload.orig_name or "").suffix.lower() == ".gif":
            gr.Info("Animated or not, a GIF is searched by its first frame.")
        return image


class UrlImage(gr.Image):
    """gr.Image that shows an http(s) URL as it is, for the browser to fetch with its cookie (a private gallery's
    file), instead of Gradio downloading it into its shared cache; anything else is shown as gr.Image shows it."""

    def get_block_name(self) -> str:
        return "image"

    def postprocess(self, value):
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return ImageData(path=value, url=value, orig_name=value.rsplit("/", 1)[-1])
        return super().postprocess(value)


def public_root(request: gr.Request | None) -> str:
    """The app's URL as this request's browser reaches it (through a proxy too), without a trailing slash."""
    req = getattr(request, "request", None)
    if req is None:
        return ""
    return route_utils.get_root_url(req, route_utils.get_api_call_path(req), getattr(req.app, "root_path", None))


class App:
    """Event handlers over the engine, plus what is precomputed for display: one map layer per encoder.

    A private gallery's files are never handed to Gradio (which would copy them into its shared cache): they go out
    as URLs of the app's private route, absolute under `base_url` where a Gradio component needs one."""

    def __init__(self, engine: SearchEngine, work_dir: Path = config.APP_WORK_DIR, private: bool = False,
                 private_root: Path | None = None, base_url: str = ""):
        self.engine = engine
        self.work_dir = Path(work_dir)
        self.private = private
        self.base_url = base_url.rstrip("/")
        self.url_of = (lambda p: private_url(private_root, p)) if private else file_url
        title = "t-SNE of your photos under {n} ({c} photos)" if private else "t-SNE of the {n} gallery ({c} images)"
        self.maps = {n: GalleryMap(b.index, title.format(n=n, c=len(b.index.items)), self.url_of)
                     for n, b in engine.backends.items()}
        self.layer_urls = {n: self.url_of(m.write(self.work_dir / "maps")) for n, m in self.maps.items()}
        self.missing_thumb = self.work_dir / "maps" / "thumbnail-missing.jpg"
        if not self.missing_thumb.exists():
            with atomic_path(self.missing_thumb) as tmp:
                placeholder("thumbnail missing: rebuild the index").save(tmp, format="JPEG")

    def _gallery(self, encoder: str, hits: list[Hit], in_all: set[str] = frozenset()) -> list[tuple[str, str]]:
        """Gallery items; a missing or corrupt thumbnail shows a placeholder and a warning naming the fix."""
        warning = broken_thumbnails_warning(hits, encoder)
        if warning:
            gr.Warning(warning)
        return [(self.image(p), c) for p, c in gallery_items(hits, in_all, self.missing_thumb, by_path=self.private)]

    def image(self, path: Path | str) -> str:
        """What a Gradio image component gets for a file: its path, or a private gallery's absolute private URL."""
        return f"{self.base_url}/{self.url_of(Path(path))}" if self.private else str(path)

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
        if self.private:
            return (f"**{b.encoder.label}** — {spec.description}\n\nYour photos have no landmark labels, so there is "
                    "no retrieval score here: judge by eye, or compare the encoders side by side.")
        return (f"**{b.encoder.label}** — {spec.description}\n\n"
                f"How well does it retrieve? {metrics_summary(b.index.eval_report())}")

    def metrics_table(self) -> list[list]:
        return [metrics_row(n, self.engine.backends[n].index.eval_report()
                            if n in self.engine.backends else None) for n in REGISTRY]

    def calibration_plot(self):
        curves = {b.encoder.label: b.index.calibration for b in self.engine.backends.values() if b.index.calibration}
        return calibration_figure(curves) if curves else None

    def reliability_plot(self):
        return reliability_figure({b.encoder.label: b.index.eval_report() for b in self.engine.backends.values()})

    # -- Search tab ---------------------------------------------------------------------------------------------

    def _check(self, encoder: str, top_k: float) -> int:
        if encoder not in REGISTRY:
            raise gr.Error(f"Unknown encoder {encoder!r}; choose one of {', '.join(REGISTRY)}.")
        if encoder not in self.engine.backends:
            raise gr.Error(f"The {encoder} encoder is unavailable: {self.engine.unavailable.get(encoder)}")
        try:
            return int(top_k)
        except (TypeError, ValueError) as exc:
            raise gr.Error(f"top-k must be a whole number (got {top_k!r}).") from exc

    def _results(self, encoder: str, hits: list[Hit], k: int, query_path: str = ""):
        """The outputs every search shares: ranked gallery, map, verdict, hits and the query (state)."""
        if len(hits) < k:
            gr.Warning(f"Showing {len(hits)} results: k is at most {config.TOP_K_MAX} and the gallery has "
                       f"{len(self.engine.backends[encoder].index.items)} images.")
        row = self.engine.gallery_photo(encoder, query_path)["row"] if query_path else None
        value = map_value(self.layer_urls[encoder], self.maps[encoder].query_traces(hits, query_row=row))
        return self._gallery(encoder, hits), value, self.verdict(hits, encoder), hits, query_path

    def verdict(self, hits: list[Hit], encoder: str | None = None) -> str:
        if self.private or encoder not in self.engine.backends:
            return verdict(hits, UNCALIBRATED_PRIVATE if self.private else None)
        b = self.engine.backends[encoder]
        return verdict(hits, None, unreliable_note(b.encoder.label, b.index.eval_report()))

    def search(self, image, encoder: str, top_k: float):
        """Find the gallery photos most similar to a photo, under one of the three encoders.

        Args:
            image: the query photo (any common format; a URL or file for API and MCP callers).
            encoder: "scratch", "pretrained" or "transfer".
            top_k: how many results, 1 to 50.
        Returns:
            ranked gallery: a thumbnail and the caption "#rank · landmark · P% same landmark" per hit
            map: the URL of the gallery's t-SNE layer and the query layer (the query star, the ringed hits)
            verdict: one line saying whether the best hit is a confident match
        """
        if image is None:
            raise gr.Error("Drop a photo first (or click one of the examples).")
        k = self._check(encoder, top_k)
        try:
            hits = self.engine.search(encoder, open_image(image), k)
        except LandmarkError as exc:
            raise gr.Error(str(exc)) from exc
        return self._results(encoder, hits, k)

    def similar_to(self, encoder: str, path: str, top_k: float):
        """Find the gallery photos most similar to a photo that is already in the gallery (no re-encoding).

        Args:
            encoder: "scratch", "pretrained" or "transfer".
            path: the gallery photo's path as the index metadata gives it (the "path" of a search_json hit).
            top_k: how many results, 1 to 50.
        Returns:
            ranked gallery: as search returns it, this photo first
            map: as search returns it, with this photo marked
            verdict: as search returns it
        """
        k = self._check(encoder, top_k)
        try:
            hits = self.engine.similar_to(encoder, str(path or ""), k)
        except LandmarkError as exc:
            raise gr.Error(str(exc)) from exc
        return self._results(encoder, hits, k, query_path=str(path))

    def search_from_map(self, encoder: str, top_k: float, evt: gr.SelectData):
        """A click on a map point: search from that gallery photo."""
        return self.similar_to(encoder, evt.value, top_k)

    def refresh(self, image, query_path: str, encoder: str, top_k: float):
        """Re-run the current query when the encoder or k changes: a gallery photo by its stored vector."""
        if query_path:
            return self.similar_to(encoder, query_path, top_k)
        if image is None:
            return (gr.skip(),) * 5
        if encoder not in self.engine.backends:
            gr.Warning(f"The {encoder} encoder is unavailable: {self.engine.unavailable.get(encoder)}")
            return [], map_value(None, message="unavailable"), "", [], ""
        return self.search(image, encoder, top_k)

    def search_json(self, image, encoder: str, top_k: float) -> str:
        """Search like `search`, but return JSON text for programs and exports.

        Args:
            image: the query photo (a URL or file).
            encoder: "scratch", "pretrained" or "transfer".
            top_k: how many results, 1 to 50.
        Returns:
            JSON text {"encoder", "label", "hits": [{rank, path, class_name, distance, p_same}], "confident"}, where p_same is the calibrated probability (0 to 1) that the hit shows the same landmark and "confident" says whether the best hit's p_same is at least 0.5
        """
        _, _, _, hits, _ = self.search(image, encoder, top_k)
        # Text, not an object: gradio_client takes every {"path": ...} inside an object for a file to download.
        return json.dumps({"encoder": encoder, "label": self.label(encoder), **hits_json(hits)}, indent=1)

    def query_photo(self, encoder: str, query_path: str):
        """Show a gallery photo used as the query in the photo box (a private one never becomes an input file)."""
        if not query_path or self.private:
            return gr.skip()
        return str(self.engine.gallery_photo(encoder, query_path)["thumbnail"])

    def select_hit(self, encoder: str, hits: list[Hit], evt: gr.SelectData):
        """A click on a result: the detail panel (larger photo, landmark, file, distance, confidence)."""
        if not hits or not isinstance(evt.index, int) or not 0 <= evt.index < len(hits):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        hit = hits[evt.index]
        return (gr.update(visible=True), self.image(hit.thumbnail), hit_details(hit, self.label(encoder)), hit.path)

    def explain(self, image, encoder: str, path: str):
        """Show why a gallery photo came back for a query: heatmaps of the regions that drive their similarity.

        Args:
            image: the query photo.
            encoder: "scratch", "pretrained" or "transfer".
            path: the gallery photo's path as the index metadata gives it.
        Returns:
            the query photo at its own size with a heatmap of the regions that raise the similarity (Grad-CAM on the last conv feature map)
            the gallery photo (its thumbnail) with its heatmap
        """
        if image is None:
            raise gr.Error("Drop a photo first (or click one of the examples).")
        self._check(encoder, 1)
        try:
            q, h, _ = self.engine.explain(encoder, open_image(image), str(path or ""))
        except LandmarkError as exc:
            raise gr.Error(str(exc)) from exc
        if not self.private:
            return q, h
        return self.keep_private(q), self.keep_private(h)

    def keep_private(self, picture) -> str:
        """Save an image derived from a visitor's photos inside their gallery (not Gradio's shared cache); its URL."""
        path = self.work_dir / "derived" / f"{uuid.uuid4().hex}.jpg"
        with atomic_path(path) as tmp:
            picture.convert("RGB").save(tmp, format="JPEG", quality=90)
        return self.image(path)

    # -- Compare tab --------------------------------------------------------------------------------------------

    def _compare(self, vectors: dict, k: int, known_class: str | None, query_path: str = "",
                 trunks: dict | None = None, rows: dict | None = None):
        hits: dict[str, list[Hit]] = {}
        for name, vec in vectors.items():
            try:
                hits[name] = self.engine.search_vector(name, vec, k, (trunks or {}).get(name), (rows or {}).get(name))
            except LandmarkError as exc:
                raise gr.Error(str(exc)) from exc
        paths = {n: [h.path for h in hs] for n, hs in hits.items()}
        shared = shared_by_all(paths)
        state = {"hits": hits, "query_path": query_path, "k": k}
        galleries, maps, notes = [], [], []
        for name in REGISTRY:
            if name not in hits:
                galleries.append([])
                maps.append(map_value(None, message=f"{name} is unavailable"))
                notes.append("")
                continue
            galleries.append(self._gallery(name, hits[name], shared))
            maps.append(self._small_map(name, state))
            notes.append(found_summary(hits[name], known_class) or self.verdict(hits[name], name))
        agreement = agreement_summary(paths, k)
        return (*galleries, *maps, *notes, agreement, state)

    def _small_map(self, name: str, state: dict, highlight: str | None = None) -> dict:
        row = (lambda p: self.engine.gallery_photo(name, p)["row"] if p else None)
        traces = self.maps[name].query_traces(state["hits"][name], query_row=row(state["query_path"]),
                                              highlight_row=row(highlight))
        return map_value(self.layer_urls[name], traces, height=340, showlegend=False, title_text=f"{name} map")

    def compare(self, image, top_k: float, known_class: str = ""):
        """Search the same photo under every encoder and show where they agree.

        Args:
            image: the query photo.
            top_k: how many results per encoder, 1 to 24.
            known_class: the photo's landmark when known (for the examples), else empty.
        Returns:
            scratch gallery: ranked hits; photos every encoder returned are marked "✓ all 3"
            pretrained gallery: likewise
            transfer gallery: likewise
            scratch map
            pretrained map
            transfer map
            scratch note: whether its top-k found the known landmark, or its verdict
            pretrained note
            transfer note
            agreement: the pairwise top-k overlaps and how many photos all encoders returned
        """
        if image is None:
            raise gr.Error("Drop a photo first (or click one of the examples).")
        try:
            vectors, trunks = self.engine.embed_with_trunk(list(self.engine.backends), open_image(image))
        except LandmarkError as exc:
            raise gr.Error(str(exc)) from exc
        return self._compare(vectors, int(top_k), known_class or None, trunks=trunks)

    def compare_gallery_photo(self, path: str, top_k: float):
        """Compare the encoders on a gallery photo, by its stored vectors; its landmark is known."""
        if not path:
            raise gr.Error("Click a photo in one of the columns first.")
        try:
            photos = {n: self.engine.gallery_photo(n, path) for n in self.engine.backends}
            vectors = {n: self.engine.backends[n].index.embeddings[p["row"]] for n, p in photos.items()}
        except LandmarkError as exc:
            raise gr.Error(str(exc)) from exc
        photo = next(iter(photos.values()), None)
        rows = {n: p["row"] for n, p in photos.items()}
        return (*self._compare(vectors, int(top_k), photo and photo["class_name"], query_path=path, rows=rows),
                str(photo["thumbnail"]) if photo and not self.private else gr.skip())

    def brusher(self, column: str):
        """The select handler of one compare column (Gradio reads `evt`'s type from the handler's signature)."""
        def brush(state: dict | None, evt: gr.SelectData):
            return self.brush(column, state, evt)
        return brush

    def brush(self, column: str, state: dict | None, evt: gr.SelectData):
        """A photo selected in one column: highlight that same photo on all three maps, say where each ranks it."""
        if not state or column not in state["hits"] or not 0 <= evt.index < len(state["hits"][column]):
            return (*(gr.skip(),) * len(REGISTRY), gr.skip(), gr.skip())
        path = state["hits"][column][evt.index].path
        maps, where = [], []
        for name in REGISTRY:
            if name not in state["hits"]:
                maps.append(gr.skip())
                continue
            maps.append(self._small_map(name, state, highlight=path))
            rank = next((h.rank for h in state["hits"][name] if h.path == path), None)
            where.append(f"{name}: #{rank}" if rank else f"{name}: not in its top-{state['k']}")
        name = path.rsplit("/", 1)[-1]
        return (*maps, f"Selected **{name}** (magenta on every map) — " + " · ".join(where), path)


LANDMARKS, MINE = "landmarks", "mine"  # the two galleries every view can search


class Site:
    """The whole app: the landmark gallery's views, and each visitor's private gallery with the same views.

    Every UI event carries two session states after its inputs: which gallery is shown (`source`) and the token
    of the session's private gallery (`mine`). API callers never set `source`, so `search` & co. search the
    landmark gallery and `search_mine` the caller's own.
    """

    def __init__(self, engine: SearchEngine, work_dir: Path = config.APP_WORK_DIR):
        self.landmarks = App(engine, work_dir)
        self.galleries = PrivateGalleries(Path(work_dir) / config.SESSIONS_DIRNAME, self.encoders)
        self._encoders: dict[str, Encoder] | None = None
        self.unavailable: dict[str, str] = {}  # why an encoder cannot index private galleries
        self._views: dict[str, App] = {}

    def encoders(self) -> dict[str, Encoder]:
        """Every encoder this machine can load, shared with the landmark gallery (loaded once)."""
        if self._encoders is None:
            engine = self.landmarks.engine
            loaded = {n: b.encoder for n, b in engine.backends.items()}
            trunk = next((e.trunk_name for e in loaded.values() if e.trunk is not None), None)
            for name in REGISTRY:
                if name not in loaded:
                    try:
                        loaded[name] = engine.store.load(name, trunk=trunk)
                    except LandmarkError as exc:
                        self.unavailable[name] = str(exc)
            self._encoders = {n: loaded[n] for n in REGISTRY if n in loaded}
        return self._encoders

    def view(self, source: str | None, mine: str | None) -> App:
        """The views of the gallery a session is looking at."""
        if source != MINE:
            return self.landmarks
        gallery = self.galleries.get(mine)
        if gallery is None:
            self._views.pop(mine or "", None)
            raise gr.Error("You have no gallery of your own yet (or it expired after "
                           f"{config.MY_GALLERY.ttl_seconds // 60} minutes): build one in the Your photos tab.")
        return self._views.get(mine) or self.open_view(gallery)

    def open_view(self, gallery: PrivateGallery, base_url: str = "") -> App:
        """The views of a private gallery, its files linked under `base_url` (the app's URL as its owner reaches it)."""
        gallery.engine.unavailable.update(self.unavailable)  # its engine only knows the encoders it was given
        self._views[gallery.token] = App(gallery.engine, gallery.folder, private=True,
                                         private_root=self.galleries.root, base_url=base_url)
        return self._views[gallery.token]

    def forget(self, mine: str | None) -> None:
        """A session ended or its gallery expired: delete its gallery."""
        self._views.pop(mine or "", None)
        self.galleries.drop(mine)

    def tab_closed(self, request: gr.Request) -> None:
        """The visitor closed or reloaded the tab: its gallery goes now (Gradio keeps closed sessions' state an hour)."""
        for token in self.galleries.drop_session(getattr(request, "session_hash", None) or ""):
            self._views.pop(token, None)

    # -- Your photos ------------------------------------------------------------------------------------------

    def my_gallery(self, files: list[str] | None, mine: str | None, request: gr.Request,
                   progress: gr.Progress = gr.Progress()):
        """Build your own private gallery from photos or zips (sub-folders name groups), with every available encoder.

        Args:
            files: photos (JPEG, PNG, WebP, HEIC, AVIF, ...) and/or zip files of them.
        Returns:
            a short status: how many photos, groups and encoders, and how long the build took
        """
        owner = visitor_of(request.headers if request is not None else None)
        try:
            gallery = self.galleries.build(owner, [f for f in files or [] if f],
                                           lambda f, what: progress(f, desc=what),
                                           session=getattr(request, "session_hash", None) or "")
        except LandmarkError as exc:
            raise gr.Error(str(exc)) from exc
        finally:  # built or not, the originals do not stay in Gradio's upload folder (thumbnails serve the app)
            discard(files or [], Path(gr.utils.get_upload_folder()))
        if mine and mine != gallery.token:
            self.forget(mine)
        self.open_view(gallery, public_root(request))
        return gallery.summary(), gallery.token

    def built(self, status: str, mine: str | None):
        """After a build, in the tab: switch the Gallery radio to it, clear the upload list, show the map of its first
        encoder and the status with where to go next."""
        view = self.view(MINE, mine)
        compare = (" or see how the encoders group them in **Compare encoders**" if len(view.engine.backends) > 1
                   else "")
        missing = "".join(f"\n\n⚠️ {n} could not index them: {why}" for n, why in self.unavailable.items())
        note = (f"✅ {status}\n\nThe *Gallery* above now shows **Your photos**: search them in the **Search** tab"
                f"{compare}.{missing}")
        return MINE, None, map_value(next(iter(view.layer_urls.values()), None)), note

    def search_mine(self, image, encoder: str, top_k: float, mine: str | None):
        """Search your own gallery (built with my_gallery in this session) for the photos most similar to a photo.

        Args:
            image: the query photo.
            encoder: "scratch", "pretrained" or "transfer".
            top_k: how many results, 1 to 50.
        Returns:
            ranked gallery: a thumbnail and the caption "#rank · group · d=distance" per hit
            map: the URL of your gallery's t-SNE layer and the query layer
            verdict: one line naming the best match
        """
        return self.view(MINE, mine).search(image, encoder, top_k)

    def switch(self, source: str, mine: str | None, image, encoder: str, top_k: float):
        """The gallery radio changed: the encoder choices, info, results and maps of that gallery."""
        try:
            view = self.view(source, mine)
        except gr.Error as exc:
            gr.Warning(exc.message)
            return (LANDMARKS, *(gr.skip(),) * (7 + 3 * len(REGISTRY) + 2))
        names = list(REGISTRY)
        current = encoder if encoder in view.engine.backends else next(iter(view.engine.backends), encoder)
        radio = gr.update(choices=[(view.label(n), n) for n in names], value=current)
        if image is not None and current in view.engine.backends:
            results = view.search(image, current, top_k)
        else:
            results = ([], map_value(view.layer_urls.get(current)), "", [], "")
        maps = [map_value(view.layer_urls.get(n), height=340, showlegend=False, title_text=f"{n} map") for n in names]
        return (source, radio, view.info(current), *results, *([[]] * len(names)), *maps, *([""] * len(names)),
                "", None)

    # -- every view, over the session's gallery ---------------------------------------------------------------

    def search(self, image, encoder: str, top_k: float, source: str = LANDMARKS, mine: str | None = None):
        return self.view(source, mine).search(image, encoder, top_k)

    def similar_to(self, encoder: str, path: str, top_k: float, source: str = LANDMARKS, mine: str | None = None):
        return self.view(source, mine).similar_to(encoder, path, top_k)

    def search_json(self, image, encoder: str, top_k: float, source: str = LANDMARKS, mine: str | None = None) -> str:
        return self.view(source, mine).search_json(image, encoder, top_k)

    def explain(self, image, encoder: str, path: str, source: str = LANDMARKS, mine: str | None = None):
        return self.view(source, mine).explain(image, encoder, path)

    def compare(self, image, top_k: float, known_class: str = "", source: str = LANDMARKS, mine: str | None = None):
        # an example's landmark says nothing about a private gallery's groups
        return self.view(source, mine).compare(image, top_k, "" if source == MINE else known_class)

    for _name in ("search", "similar_to", "search_json", "explain", "compare"):  # the API docs are the views'
        locals()[_name].__doc__ = getattr(App, _name).__doc__
    del _name

    def search_from_map(self, encoder: str, top_k: float, source: str, mine: str | None, evt: gr.SelectData):
        return self.view(source, mine).search_from_map(encoder, top_k, evt)

    def refresh(self, image, query_path: str, encoder: str, top_k: float, source: str, mine: str | None):
        return self.view(source, mine).refresh(image, query_path, encoder, top_k)

    def info(self, encoder: str, source: str, mine: str | None) -> str:
        return self.view(source, mine).info(encoder)

    def query_photo(self, encoder: str, query_path: str, source: str, mine: str | None):
        return self.view(source, mine).query_photo(encoder, query_path)

    def select_hit(self, encoder: str, hits: list[Hit], source: str, mine: str | None, evt: gr.SelectData):
        return self.view(source, mine).select_hit(encoder, hits, evt)

    def compare_gallery_photo(self, path: str, top_k: float, source: str, mine: str | None):
        return self.view(source, mine).compare_gallery_photo(path, top_k)

    def brusher(self, column: str):
        """The select handler of one compare column (Gradio reads `evt`'s type from the handler's signature)."""
        def brush(state: dict | None, source: str, mine: str | None, evt: gr.SelectData):
            return self.view(source, mine).brush(column, state, evt)
        return brush


def missing_banner(engine: SearchEngine, data_dir: Path = config.DEFAULT_DATA_DIR) -> str:
    """Markdown saying which encoders cannot be used, and the one command that prepares everything."""
    if not engine.unavailable:
        return ""
    if not engine.backends:
        return (f"### ⚠️ No gallery index yet\nThis app needs precomputed indexes in `{engine.index_root}/`. "
                f"Prepare them with one command (it downloads the data when online; offline add "
                f"`--from-zip landmark_images.zip`):\n\n"
                f"`{PREPARE_CMD} --data-dir {data_dir} --index-dir {engine.index_root}`\n\n"
                f"**Or try the app right now with your own photos:** the **Your photos** tab builds a private gallery "
                f"from photos or a zip you drop, with every encoder this machine can load.\n\n"
                + "\n".join(f"- **{n}**: {why}" for n, why in engine.unavailable.items()))
    return "⚠️ " + " · ".join(f"**{n}** unavailable: {why}" for n, why in engine.unavailable.items())


def _known_class(path: Path) -> str:
    """An example photo's landmark, from the name write_examples gives it ('Eiffel_Tower.jpg')."""
    return path.stem.replace("_", " ")


def mine_intro(limits: config.MyGalleryLimits = config.MY_GALLERY) -> str:
    """Markdown of the Your photos tab: what it does, and its caps."""
    return (f"### Search your own photos\nDrop photos (JPEG, PNG, WebP, HEIC/HEIF straight from a phone, AVIF, ...) "
            f"or a zip of them. If the zip has sub-folders, each one is a group and gets its own colour on the map. "
            f"The app builds a **private gallery** with every available encoder: thumbnails, embeddings and a t-SNE "
            f"map; then the **Search** and **Compare encoders** tabs work over it (switch with *Gallery* above).\n\n"
            f"Your gallery is yours alone: it lives in a folder of this session, its files are served only to this "
            f"browser, and it is deleted when you close the tab or {limits.ttl_seconds // 60} minutes after you last "
            f"used it. One gallery per browser: building a new one replaces your previous one. Caps: {limits.max_photos} photos, {limits.max_upload_bytes // 2**20} MB uploaded "
            f"({limits.max_unpacked_bytes // 2**20} MB unpacked), {config.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels per photo.")


def build_demo(engine: SearchEngine, data_dir: Path = config.DEFAULT_DATA_DIR,
               work_dir: Path = config.APP_WORK_DIR) -> gr.Blocks:
    """The Blocks UI over a loaded engine."""
    site = Site(engine, work_dir)
    app = site.landmarks
    names = list(REGISTRY)
    default = next(iter(engine.backends), names[0])
    choices = [(app.label(n), n) for n in names]
    examples = list_examples(engine.index_root)
    gallery_kw = dict(columns=3, height=460, object_fit="cover", allow_preview=False, show_label=True)
    n_landmarks = max((len(b.index.items) for b in engine.backends.values()), default=0)

    with gr.Blocks(title="Landmark Lens", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        banner = missing_banner(engine, data_dir)
        if banner:
            gr.Markdown(banner, elem_id="missing-banner")
        source = gr.State(LANDMARKS)
        # A function, not the bound method: Gradio deep-copies the config (this prop too) on every page load.
        mine = gr.State(None, time_to_live=config.MY_GALLERY.ttl_seconds, delete_callback=lambda t: site.forget(t))
        pick = gr.Radio([(f"Landmark gallery ({n_landmarks:,} photos)" if n_landmarks else "Landmark gallery", LANDMARKS),
                         ("Your photos", MINE)], value=LANDMARKS, label="Gallery", elem_id="gallery-source")
        ctx = [source, mine]
        with gr.Tabs(selected="search-tab" if engine.backends else "mine-tab"):
            with gr.Tab("Search", id="search-tab"):
                hits_state = gr.State([])
                query_path = gr.State("")
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        image = PhotoInput(type="pil", label="Your photo", sources=["upload", "clipboard", "webcam"],
                                           height=300, elem_id="query-image")
                        encoder = gr.Radio(choices, value=default, label="Encoder", elem_id="encoder")
                        info = gr.Markdown(app.info(default), elem_id="encoder-info")
                        top_k = gr.Slider(1, config.TOP_K_MAX, value=config.TOP_K_DEFAULT, step=1,
                                          label="Top-k results", elem_id="top-k")
                        button = gr.Button("Search", variant="primary", elem_id="search-button")
                        mine_button = gr.Button("Search my gallery", visible=False)  # the search_mine API
                        if examples:
                            ex = gr.Examples(examples=[[str(p)] for p in examples], inputs=[image],
                                             label="Test-split photos (not in the gallery) — click one",
                                             examples_per_page=8)
                        with gr.Accordion("Results as JSON (for programs and exports)", open=False):
                            export = gr.Button("Get JSON", size="sm", elem_id="export-button")
                            as_json = gr.Code(label="hits with calibrated P(same landmark)", language="json",
                                              interactive=False, elem_id="results-json")
                    with gr.Column(scale=2):
                        found = gr.Markdown(elem_id="verdict")
                        gallery = gr.Gallery(label="Most similar gallery photos, best first — click one to explore it",
                                             elem_id="results", **gallery_kw)
                        with gr.Group(visible=False, elem_id="detail") as detail:
                            with gr.Row():
                                d_image = UrlImage(label="Selected result", height=260, interactive=False,
                                                   elem_id="detail-image")
                                with gr.Column():
                                    d_text = gr.Markdown(elem_id="detail-text")
                                    d_path = gr.Textbox(label="Gallery path", interactive=False, elem_id="detail-path")
                                    again = gr.Button("Search with this photo", variant="primary",
                                                      elem_id="search-this")
                            gr.Markdown("**Why similar?** Warm colours mark the regions that raise this encoder's "
                                        "similarity between the two photos (Grad-CAM); dimmed edges were cropped away.")
                            with gr.Row():
                                heat_q = UrlImage(label="Your photo", height=240, interactive=False,
                                                  elem_id="heat-query")
                                heat_h = UrlImage(label="This result", height=240, interactive=False,
                                                  elem_id="heat-hit")
                        gr.Markdown("**Map** — hover a point to see its photo, click it to search from it.")
                        the_map = MapView(map_value(app.layer_urls.get(default)), elem_id="map")
                outputs = [gallery, the_map, found, hits_state, query_path]
                private = dict(api_visibility="private")
                hide_detail = dict(fn=lambda: gr.update(visible=False), outputs=detail, **private)
                button.click(site.search, [image, encoder, top_k, *ctx], outputs, api_name="search").success(
                    **hide_detail)
                mine_button.click(site.search_mine, [image, encoder, top_k, mine], outputs, api_name="search_mine")
                image.upload(site.search, [image, encoder, top_k, *ctx], outputs, **private).success(**hide_detail)
                for ev in (encoder.change, top_k.release):
                    ev(site.refresh, [image, query_path, encoder, top_k, *ctx], outputs, **private).success(
                        **hide_detail)
                encoder.change(site.info, [encoder, *ctx], info, **private)
                if examples:
                    ex.load_input_event.then(site.search, [image, encoder, top_k, *ctx], outputs, **private)
                export.click(site.search_json, [image, encoder, top_k, *ctx], as_json, api_name="search_json")
                gallery.select(site.select_hit, [encoder, hits_state, *ctx], [detail, d_image, d_text, d_path],
                               **private).success(
                    site.explain, [image, encoder, d_path, *ctx], [heat_q, heat_h], api_name="explain")
                again.click(site.similar_to, [encoder, d_path, top_k, *ctx], outputs, api_name="similar_to").success(
                    site.query_photo, [encoder, query_path, *ctx], image, **private).success(**hide_detail)
                the_map.select(site.search_from_map, [encoder, top_k, *ctx], outputs, **private).success(
                    site.query_photo, [encoder, query_path, *ctx], image, **private).success(**hide_detail)

            with gr.Tab("Compare encoders", id="compare-tab"):
                gr.Markdown("One photo, three encoders side by side: does each one match colour and mood, general "
                            "content, or the landmark itself? Click a photo in any column to find it on all three maps.")
                c_state = gr.State(None)
                known = gr.Textbox(visible=False)
                with gr.Row():
                    c_image = PhotoInput(type="pil", label="Your photo", sources=["upload", "clipboard", "webcam"],
                                         height=240, elem_id="compare-image")
                    with gr.Column():
                        c_k = gr.Slider(1, config.COMPARE_TOP_K_MAX, value=6, step=1, label="Top-k per encoder")
                        c_button = gr.Button("Compare", variant="primary", elem_id="compare-button")
                        gr.Dataframe(value=app.metrics_table(), headers=METRIC_COLUMNS, interactive=False,
                                     label="Retrieval quality on the test split (from evaluate.py)")
                if examples:
                    c_ex = gr.Examples(examples=[[str(p), _known_class(p)] for p in examples],
                                       inputs=[c_image, known], examples_per_page=8,
                                       label="Examples (their landmark is known, so each column says if it found it)")
                agreement = gr.Markdown(elem_id="agreement")
                with gr.Row():
                    c_selected = gr.Markdown(elem_id="compare-selected")
                    c_path = gr.Textbox(visible=False)
                    c_again = gr.Button("Compare with this photo", size="sm", elem_id="compare-this")
                c_galleries, c_maps, c_notes = [], [], []
                with gr.Row(equal_height=False):
                    for n in names:
                        with gr.Column():
                            gr.Markdown(app.info(n))
                            c_notes.append(gr.Markdown(elem_id=f"compare-note-{n}"))
                            c_galleries.append(gr.Gallery(label=app.label(n), columns=3, height=300,
                                                          object_fit="cover", allow_preview=False,
                                                          elem_id=f"compare-{n}"))
                            c_maps.append(MapView(map_value(app.layer_urls.get(n), height=340, showlegend=False,
                                                            title_text=f"{n} map"), height=340,
                                                  elem_id=f"compare-map-{n}"))
                c_out = [*c_galleries, *c_maps, *c_notes, agreement, c_state]
                c_button.click(site.compare, [c_image, c_k, known, *ctx], c_out, api_name="compare")
                c_image.upload(lambda: "", None, known, **private).then(
                    site.compare, [c_image, c_k, known, *ctx], c_out, **private)
                if examples:
                    c_ex.load_input_event.then(site.compare, [c_image, c_k, known, *ctx], c_out, **private)
                for n, g in zip(names, c_galleries):
                    g.select(site.brusher(n), [c_state, *ctx], [*c_maps, c_selected, c_path], **private)
                c_again.click(site.compare_gallery_photo, [c_path, c_k, *ctx], [*c_out, c_image], **private)

            with gr.Tab("Your photos", id="mine-tab"):
                gr.Markdown(mine_intro(), elem_id="mine-intro")
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        files = gr.File(file_count="multiple", label="Photos or a zip", height=260,
                                        file_types=["image", ".zip", ".heic", ".heif", ".avif"], elem_id="mine-files")
                        build = gr.Button("Build my gallery", variant="primary", elem_id="mine-build")
                        status = gr.Markdown(elem_id="mine-status")
                    with gr.Column(scale=2):
                        mine_map = MapView(map_value(None, message="Your gallery's map appears here"),
                                           elem_id="mine-map")
                build.click(site.my_gallery, [files, mine], [status, mine], api_name="my_gallery",
                            show_progress_on=[mine_map],
                            concurrency_limit=config.MY_GALLERY.build_concurrency,
                            concurrency_id="my_gallery").success(
                    site.built, [status, mine], [pick, files, mine_map, status], **private)

            with gr.Tab("How it works", id="how-tab"):
                gr.Markdown(HOW_IT_WORKS)
                reliable = app.reliability_plot()
                if reliable is not None:
                    gr.Plot(reliable, label="Reliability of the match confidence", elem_id="reliability")
                    gr.Dataframe(value=app.metrics_table(), headers=METRIC_COLUMNS, interactive=False,
                                 label="Closed-set retrieval, then the open-set figures (landmarks left out)",
                                 elem_id="open-set-table")
                curve = app.calibration_plot()
                if curve is not None:
                    gr.Plot(curve, label="Distance-only calibration curves (the fallback)", elem_id="calibration")
                elif reliable is None:
                    gr.Markdown("_No encoder is calibrated yet: `scripts/evaluate.py` fits the curves._")
        pick.change(site.switch, [pick, mine, image, encoder, top_k],
                    [source, encoder, info, *outputs, *c_galleries, *c_maps, *c_notes, agreement, c_state],
                    **private).then(lambda s: s, source, pick, **private)
        demo.unload(site.tab_closed)
    demo.site = site  # launch() guards the private galleries' files with it
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
is placed at the distance-weighted mean of its nearest neighbours, and the top-k hits are ringed. Hover a point to see
its photo; click it (or a result, then *Search with this photo*) to search from that photo by its stored vector.

**Match confidence** ("94% same landmark") answers "does this hit show my photo's landmark?", and often the honest
answer is that the gallery does not hold it. So it is fitted with landmarks *left out*: the landmarks are split into
three folds, each fold's test photos are searched against a gallery without that fold (scratch and transfer with
models trained without it too), and a logistic regression learns P(same landmark) from a hit's distance, its margin
to the nearest hit of another landmark, how many of the top 10 show its landmark and, for transfer, the distance in
its ImageNet trunk's own space. Its figures are cross-validated over the folds: AUROC separating right top hits from
absent landmarks, the share of absent landmarks called a match, GAP. Each encoder calls a match only above its own
threshold: the P (at least 50%) above which no more than 5% of absent landmarks came, chosen on held-out folds too.
Below it, the page says the landmark does not seem to be in the gallery; an encoder whose AUROC is under 0.75 says
its percentages cannot be trusted. The reliability diagram below shows, per encoder, what it said against how often it was right.

**Why similar?** For a selected result, the similarity of the two embeddings is differentiated with respect to each
photo's last convolutional feature map; channels weighted by their mean gradient (Grad-CAM) show which regions raise
the similarity. The result's side is computed from its thumbnail.

**Metrics**: test-split photos are used as queries against the train-split gallery; P@k is the share of the top k
that show the same landmark, mAP@10 rewards putting the right landmark first.

**Your photos**: the same encoders index photos you drop into a private gallery (thumbnails, vectors, a t-SNE map
coloured by sub-folder); the *Gallery* radio switches every view to it. Nothing there is labelled, so there is no
calibrated confidence: captions show the raw distance.

**For programs and AI assistants**: the API (`search`, `search_json`, `similar_to`, `explain`, `compare`; see "Use via
API" below; `my_gallery` and `search_mine` for your own photos) is also an MCP server at `/gradio_api/mcp/`.
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
    p.add_argument("--gallery", type=Path, default=None,
                   help="any folder of photos (flat, class sub-folders, or train/test): index it with every available "
                        "encoder (reusing indexes that are current) and serve it")
    p.add_argument("--share", action="store_true")
    return p.parse_args()


def launch(engine: SearchEngine, host: str, port: int, share: bool = False,
           data_dir: Path = config.DEFAULT_DATA_DIR, work_dir: Path = config.APP_WORK_DIR,
           mcp_server: bool = config.MCP_SERVER, **kw) -> gr.Blocks:
    """Build, queue and start the app (with its MCP server unless turned off); returns the running Blocks."""
    demo = build_demo(engine, data_dir, work_dir)
    demo.queue(default_concurrency_limit=2, max_size=64)
    allowed = [str(thumbs_dir(engine.index_root).resolve()), str((engine.index_root / config.EXAMPLES_DIRNAME).resolve()),
               str((Path(work_dir) / "maps").resolve()), *allowed_files()]
    galleries = demo.site.galleries
    # Private galleries are neither static nor allowed for Gradio, and blocked outright (no route of Gradio's serves,
    # copies or accepts their files); the app's own /private/ route serves them to their owner only.
    blocked = sorted({os.path.abspath(galleries.root), os.path.realpath(galleries.root)})
    guard = Middleware(PrivateFiles, root=galleries.root, owner_of=galleries.owner_of)
    demo.launch(server_name=host, server_port=port, share=share,
                max_file_size=f"{config.MY_GALLERY.max_upload_bytes // 2**20}mb", allowed_paths=allowed,
                blocked_paths=blocked, show_error=True, mcp_server=mcp_server, app_kwargs={"middleware": [guard]},
                **kw)
    return demo


if __name__ == "__main__":
    args = get_args()
    if args.gallery is not None:
        from search.cli import run
        from search.demo import gallery_index_dir, prepare_gallery, summary_table

        def index_gallery() -> None:
            if args.index_dir == config.INDEX_DIR:
                args.index_dir = gallery_index_dir(args.gallery)
            print(summary_table(prepare_gallery(args.gallery, args.index_dir, args.checkpoint_dir, args.weights)))

        try:
            run(index_gallery)
        except SystemExit as exc:
            if exc.code:
                raise
    launch(SearchEngine(args.index_dir, args.checkpoint_dir, args.weights), args.host, args.port, args.share,
           args.data_dir)
