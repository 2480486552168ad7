"""Serving the page: the Blocks built over a loaded engine, queued, launched with the folders Gradio may serve and
the guard that keeps private galleries private (app.py parses the arguments and calls this)."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from search import config
from search.index import thumbs_dir
from search.photos.web import WebPhotoRules
from search.private.visitor import PrivateFiles
from search.serving.engine import SearchEngine
from ui.mapview import allowed_files
from ui.root import PAGE_CSS, build_demo


def launch(engine: SearchEngine, host: str, port: int, data_dir: Path = config.DEFAULT_DATA_DIR,
           work_dir: Path = config.APP_WORK_DIR, web: WebPhotoRules = WebPhotoRules(), **kw) -> gr.Blocks:
    """Build, queue and start the app (with its MCP server unless `mcp_server=False`); returns the running Blocks.
    `kw` goes to Gradio's launch (share, quiet, prevent_thread_lock ...)."""
    kw.setdefault("mcp_server", config.MCP_SERVER)
    demo = build_demo(engine, data_dir, work_dir, web)
    demo.queue(default_concurrency_limit=2, max_size=64)
    allowed = [str(thumbs_dir(engine.index_root).resolve()),
               str((engine.index_root / config.EXAMPLES_DIRNAME).resolve()),
               str((Path(work_dir) / "maps").resolve()), str((Path(work_dir) / "downloads").resolve()),
               *allowed_files()]
    galleries = demo.site.galleries
    # Private galleries are neither static nor allowed for Gradio, and blocked outright (no route of Gradio's serves,
    # copies or accepts their files); the app's own private route serves them to their owner only. No static file
    # workers (num_workers=0): behind the SSR proxy they would serve Gradio's file routes without this guard.
    blocked = sorted({os.path.abspath(galleries.root), os.path.realpath(galleries.root)})
    guard = Middleware(PrivateFiles, root=galleries.root, owner_of=galleries.owner_of)
    demo.launch(server_name=host, server_port=port,
                max_file_size=f"{config.MY_GALLERY.max_upload_bytes // 2**20}mb", allowed_paths=allowed,
                blocked_paths=blocked, show_error=True, app_kwargs={"middleware": [guard]},
                num_workers=0, css=PAGE_CSS, **kw)
    return demo
