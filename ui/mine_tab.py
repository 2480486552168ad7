"""The Your photos tab: build a private gallery from a visitor's photos or zips, then switch every view to it."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from search import config
from search.errors import LandmarkError
from search.private.uploads import discard
from search.private.visitor import visitor_of
from ui import api, text
from ui.components import public_root
from ui.figures import map_value
from ui.mapview import MapView
from ui.site import MINE, Site
from ui.tab import Shared, Tab


def my_gallery(site: Site, files: list[str] | None, mine: str | None, request: gr.Request,
               progress: gr.Progress = gr.Progress()):
    """Build your own private gallery from photos or zips (sub-folders name groups), with every available encoder.

    Args:
        files: photos (JPEG, PNG, WebP, HEIC, AVIF, ...) and/or zip files of them.
    Returns:
        a short status: how many photos, groups and encoders, and how long the build took
    """
    owner = visitor_of(request.headers if request is not None else None)
    try:
        gallery = site.galleries.build(owner, [f for f in files or [] if f], lambda f, what: progress(f, desc=what),
                                       session=getattr(request, "session_hash", None) or "")
    except LandmarkError as exc:
        raise gr.Error(str(exc)) from exc
    finally:  # built or not, the originals do not stay in Gradio's upload folder (thumbnails serve the app)
        discard(files or [], Path(gr.utils.get_upload_folder()))
    if mine and mine != gallery.token:
        site.forget(mine)
    site.open_view(gallery, public_root(request))
    return gallery.summary(), gallery.token


def built(site: Site, status: str, mine: str | None):
    """After a build, in the tab: switch the Gallery radio to it, clear the upload list, show the map of its first
    encoder and the status with where to go next."""
    view = site.view(MINE, mine)
    note = text.built_note(status, len(view.engine.backends) > 1, site.unavailable)
    return MINE, None, map_value(next(iter(view.layer_urls.values()), None)), note


def build(shared: Shared) -> Tab:
    """Lay out the Your photos tab and wire its build."""
    site = shared.site
    with gr.Tab("Your photos", id="mine-tab"):
        gr.Markdown(text.mine_intro(), elem_id="mine-intro")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                files = gr.File(file_count="multiple", label="Photos or a zip", height=260,
                                file_types=["image", ".zip", ".heic", ".heif", ".avif"], elem_id="mine-files")
                button = gr.Button("Build my gallery", variant="primary", elem_id="mine-build")
                status = gr.Markdown(elem_id="mine-status")
            with gr.Column(scale=2):
                the_map = MapView(map_value(None, message="Your gallery's map appears here"), elem_id="mine-map")

    button.click(site.bind(my_gallery), [files, shared.mine], [status, shared.mine], api_name=api.MY_GALLERY,
                 show_progress_on=[the_map], concurrency_limit=config.MY_GALLERY.build_concurrency,
                 concurrency_id=api.MY_GALLERY).success(
        site.bind(built), [status, shared.mine], [shared.pick, files, the_map, status], **api.UI_ONLY)
    return Tab()
