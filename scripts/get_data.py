"""Download (or copy) the landmark dataset into ImageFolder layout and verify it. Safe to re-run."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import config  # noqa: E402
from search.cli import run  # noqa: E402
from search.fetch import get_data  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=config.DEFAULT_DATA_DIR, help="dataset root to create")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from-zip", type=Path, help="use a local copy of landmark_images.zip")
    src.add_argument("--from-dir", type=Path, help="use a local folder with train/ and test/")
    p.add_argument("--url", default=config.DATASET_URL)
    a = p.parse_args()
    counts = get_data(a.out, a.url, a.from_zip, a.from_dir)
    print(json.dumps({"out": str(a.out), **counts}))


if __name__ == "__main__":
    run(main)
