"""The link of a search: `?photo=<gallery path>&encoder=<name>[&tab=compare]`, and the script of the button that
copies it (ui/links.py opens such a link)."""

from __future__ import annotations

import json
import os
from urllib.parse import urlencode

COMPARE = "compare"
# The page's own address (on a Space: the app's *.hf.space address) with the shown search's query string, copied.
NO_LINK = ("An uploaded photo has no link here. Open a gallery photo (click a result, then 'Search with this photo') "
           "to get one; on a Space, 'Share via Link' links an uploaded photo too.")
COPY_LINK = ("(query) => {\n  if (!query) { alert(" + json.dumps(NO_LINK) + "); return []; }\n"
             "  const url = new URL(window.location.href); url.search = query; url.hash = '';\n"
             "  navigator.clipboard.writeText(url.toString()); return [];\n}")


def on_public_url() -> bool:
    """Whether the app runs where Gradio's own deep links work: a Space (SPACE_ID is set there)."""
    return bool(os.environ.get("SPACE_ID"))


def link_query(encoder: str, query_path: str, tab: str = "") -> str:
    """The query string of a link that reopens a search from a gallery photo ('' for an uploaded photo)."""
    if not query_path:
        return ""
    return "?" + urlencode({"photo": query_path, "encoder": encoder, **({"tab": tab} if tab else {})})
