"""Landmark Lens: drop a landmark photo, pick an encoder, see the most similar gallery photos and where
your photo lands on the gallery's t-SNE map. The entry point: arguments, engine, launch; the UI is in `ui/`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from search import config
from search.errors import LandmarkError
from search.models.encoder_file import ENV as ENCODERS_ENV
from search.models.encoders import use_encoders
from search.pipeline.assets import fetch as fetch_assets
from search.serving.engine import SearchEngine
from ui.server import launch


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
    p.add_argument("--assets", default=os.environ.get(config.ASSETS_ENV) or None, metavar="OWNER/NAME[@REV]",
                   help="fetch the prepared indexes and checkpoints from this Hub model repo "
                        f"(env {config.ASSETS_ENV})")
    p.add_argument("--encoders", type=Path, default=None, metavar="FILE",
                   help=f"the encoders to compare, a TOML file (default: ${ENCODERS_ENV}, else encoders.toml)")
    p.add_argument("--share", action="store_true")
    return p.parse_args()


def assets_dirs(spec: str, index_dir: Path, checkpoint_dir: Path, **fetch_kw) -> tuple[Path, Path]:
    """The prepared demo's folders fetched from the Hub repo `spec`; when it cannot be had, one line saying why and
    the folders given (the app starts and its banner says what is missing)."""
    try:
        return fetch_assets(spec, **fetch_kw)
    except LandmarkError as exc:
        print(f"assets: {exc}", flush=True)
        return index_dir, checkpoint_dir


if __name__ == "__main__":
    args = get_args()
    try:
        use_encoders(args.encoders)
    except LandmarkError as exc:  # a file that cannot be used: one line, no app
        raise SystemExit(f"error: {exc}") from None
    if args.gallery is not None:
        from search.pipeline.cli import run
        from search.pipeline.prepare import gallery_index_dir, prepare_gallery, summary_table

        def index_gallery() -> None:
            if args.index_dir == config.INDEX_DIR:
                args.index_dir = gallery_index_dir(args.gallery)
            print(summary_table(prepare_gallery(args.gallery, args.index_dir, args.checkpoint_dir, args.weights)))

        try:
            run(index_gallery)
        except SystemExit as exc:
            if exc.code:
                raise
    if args.assets:
        args.index_dir, args.checkpoint_dir = assets_dirs(args.assets, args.index_dir, args.checkpoint_dir)
    launch(SearchEngine(args.index_dir, args.checkpoint_dir, args.weights), args.host, args.port, args.data_dir,
           share=args.share)
