"""The app's own Gradio components: a photo input with the library's validation, an image that shows URLs as-is."""

from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr
from gradio import route_utils
from gradio.data_classes import FileData, ImageData, ListFiles
from PIL import Image

from search import config
from search.errors import BadImageError
from search.photos.images import open_image
from search.photos.web import WebPhotoRules, fetch_photo
from ui import api


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


def photo_url_box(elem_id: str, compact: bool = False) -> gr.Textbox:
    """The field beside a photo box that takes a photo's web address instead of a file (`compact`: the label
    inside the field, where the first screen is short of height)."""
    label = "…or a photo's web address"
    return gr.Textbox(label=label, show_label=not compact, max_lines=1, submit_btn="Fetch", elem_id=elem_id,
                      placeholder=f"{label} (https://…)" if compact else "https://…/photo.jpg")


async def photo_from_url(rules: WebPhotoRules, url: str) -> Image.Image:
    """A photo box's new value, fetched from the address in its field (by the server, within `rules`)."""
    try:
        return await fetch_photo(url, rules)
    except BadImageError as exc:
        raise gr.Error(str(exc)) from exc


def on_photo_url(box: gr.Textbox, image: gr.Image, rules: WebPhotoRules):
    """The field's Enter or Fetch puts the photo at its address into the photo box; chain the search with .success."""
    return box.submit(functools.partial(photo_from_url, rules), box, image, show_progress="minimal", **api.UI_ONLY)


class UrlImage(gr.Image):
    """gr.Image that shows an http(s) URL as it is, for the browser to fetch with its cookie (a private gallery's
    file), instead of Gradio downloading it into its shared cache; anything else is shown as gr.Image shows it."""

    def get_block_name(self) -> str:
        return "image"

    def postprocess(self, value):
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return ImageData(path=value, url=value, orig_name=value.rsplit("/", 1)[-1])
        return super().postprocess(value)


class UrlFiles(gr.File):
    """gr.File of several files that hands http(s) URLs to the browser as they are (a private gallery's files,
    fetched with the visitor's cookie) instead of downloading them into Gradio's shared cache."""

    def get_block_name(self) -> str:
        return "file"

    def postprocess(self, value):
        if isinstance(value, list) and value and all(str(v).startswith(("http://", "https://")) for v in value):
            return ListFiles(root=[FileData(path=v, url=v, orig_name=v.rsplit("/", 1)[-1]) for v in value])
        return super().postprocess(value or None)


def public_root(request: gr.Request | None) -> str:
    """The app's URL as this request's browser reaches it (through a proxy too), without a trailing slash."""
    req = getattr(request, "request", None)
    if req is None:
        return ""
    return route_utils.get_root_url(req, route_utils.get_api_call_path(req), getattr(req.app, "root_path", None))
