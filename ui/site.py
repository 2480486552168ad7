"""The whole app's galleries: the landmark gallery, each visitor's private one, and the routing of every event to
the gallery its session is looking at."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from search import config
from search.errors import LandmarkError
from search.models.encoders import REGISTRY, Encoder
from search.private.galleries import PrivateGalleries, PrivateGallery
from search.serving.engine import SearchEngine
from ui import text
from ui.view import GalleryView

LANDMARKS, MINE = "landmarks", "mine"  # the two galleries every view can search


def _is_special(param: inspect.Parameter, hints: dict) -> bool:
    """A parameter Gradio fills itself (event data, the request, a progress tracker), not from an input."""
    hint = hints.get(param.name)
    return (isinstance(param.default, gr.Progress)
            or (isinstance(hint, type) and issubclass(hint, (gr.EventData, gr.Request))))


class Site:
    """The landmark gallery's view and each visitor's private gallery with the same views.

    A tab's handler takes the `GalleryView` first, then its inputs. `route` turns it into a Gradio function whose
    inputs are followed by two session states: which gallery is shown (`source`) and the token of the session's
    private gallery (`mine`). API callers never set `source`, so the landmark gallery's endpoints search it.
    """

    def __init__(self, engine: SearchEngine, work_dir: Path = config.APP_WORK_DIR):
        self.landmarks = GalleryView(engine, work_dir)
        self.galleries = PrivateGalleries(Path(work_dir) / config.SESSIONS_DIRNAME, self.encoders)
        self._encoders: dict[str, Encoder] | None = None
        self.unavailable: dict[str, str] = {}  # why an encoder cannot index private galleries
        self._views: dict[str, GalleryView] = {}
        self.encoders()  # at start: ZeroGPU's worker only knows the models loaded before it forks

    def encoders(self) -> dict[str, Encoder]:
        """Every encoder this machine can load, shared with the landmark gallery (loaded once)."""
        if self._encoders is None:
            engine = self.landmarks.engine
            loaded = {n: b.encoder for n, b in engine.backends.items()}
            # the default trunk as the landmark gallery resolved it: from an encoder without a trunk of its own
            trunk = next((e.trunk_name for n, e in loaded.items() if e.trunk is not None and REGISTRY[n].trunk is None),
                         None)
            for name in REGISTRY:
                if name not in loaded:
                    try:
                        loaded[name] = engine.store.load(name, trunk=trunk)
                    except LandmarkError as exc:
                        self.unavailable[name] = str(exc)
            self._encoders = {n: loaded[n] for n in REGISTRY if n in loaded}
        return self._encoders

    def view(self, source: str | None, mine: str | None) -> GalleryView:
        """The view of the gallery a session is looking at."""
        if source != MINE:
            return self.landmarks
        gallery = self.galleries.get(mine)
        if gallery is None:
            self._views.pop(mine or "", None)
            raise gr.Error(text.no_gallery_yet())
        return self._views.get(mine) or self.open_view(gallery)

    def open_view(self, gallery: PrivateGallery, base_url: str = "") -> GalleryView:
        """The view of a private gallery, its files linked under `base_url` (the app's URL as its owner reaches it)."""
        gallery.engine.unavailable.update(self.unavailable)  # its engine only knows the encoders it was given
        self._views[gallery.token] = GalleryView(gallery.engine, gallery.folder, private=True,
                                                 private_root=self.galleries.root, base_url=base_url)
        return self._views[gallery.token]

    def forget(self, mine: str | None) -> None:
        """A session ended or its gallery expired: delete its gallery."""
        self._views.pop(mine or "", None)
        self.galleries.drop(mine)

    def tab_closed(self, request: gr.Request) -> None:
        """The visitor closed or reloaded the tab: its gallery goes now (Gradio keeps a closed session's state an
        hour)."""
        for token in self.galleries.drop_session(getattr(request, "session_hash", None) or ""):
            self._views.pop(token, None)

    def route(self, handler: Callable, source: str | None = None, **bound) -> Callable:
        """`handler(view, *inputs, **bound)` as a Gradio function of `(*inputs, source, mine)` over the session's
        gallery, or of `(*inputs, mine)` when `source` fixes the gallery."""
        states = (("source",) if source is None else ()) + ("mine",)
        return _forwarder(handler, states, lambda v: self.view(v.pop("source", source), v.pop("mine")), bound)

    def bind(self, handler: Callable) -> Callable:
        """`handler(site, *inputs)` as a Gradio function of its inputs (for what works on the site, not a view)."""
        return _forwarder(handler, (), lambda _values: self, {})


def _forwarder(handler: Callable, states: tuple, first: Callable[[dict], object], bound: dict) -> Callable:
    """A function of the handler's inputs (its first parameter and `bound` dropped), then `states`, all required,
    that calls it with `first(arguments)` first. Gradio's own parameters (event data, request, progress) stay last,
    where Gradio finds them by the signature and type hints; the docstring stays the handler's (the API's and MCP's)."""
    signature = inspect.signature(handler)
    hints = gr.utils.get_type_hints(handler)
    params = [p for p in list(signature.parameters.values())[1:] if p.name not in bound]
    inputs = [p.replace(default=inspect.Parameter.empty) for p in params if not _is_special(p, hints)]
    special = [p for p in params if _is_special(p, hints)]
    extra = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in states]

    @functools.wraps(handler)
    def forward(*args, **kwargs):
        values = dict(forward.__signature__.bind(*args, **kwargs).arguments)
        head = first(values)
        return handler(head, **values, **bound)

    forward.__signature__ = signature.replace(parameters=[*inputs, *extra, *special])
    forward.__annotations__ = {k: v for k, v in handler.__annotations__.items()
                               if k in {p.name for p in params} or k == "return"}
    return forward
