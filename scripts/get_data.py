"""Download (or copy) the landmark dataset into ImageFolder layout and verify it. Safe to re-run."""

import argparse
import json
from pathlib import Path

from search import config
from search.photos.download import get_data
from search.pipeline.cli import run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=config.DEFAULT_DATA_DIR, help="dataset root to create")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from-zip", type=Path, help="use a local copy of landmark_images.zip")
    src.add_argument("--from-dir", type=Path, help="use a local folder with train/ and test/")
    p.add_argument("--url", default=config.DATASET_URL)
    a = p.parse_args(argv)
    counts = get_data(a.out, a.url, a.from_zip, a.from_dir)
    print(json.dumps({"out": str(a.out), **counts}))


if __name__ == "__main__":
    run(main)
