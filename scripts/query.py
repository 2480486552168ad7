"""Search one image against an encoder's index; prints one JSON line per hit."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search import config  # noqa: E402
from search.cli import add_encoder, add_index_dir, add_model_args, run  # noqa: E402
from search.engine import SearchEngine  # noqa: E402
from search.images import open_image  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_index_dir(p)
    add_encoder(p)
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--top-k", type=int, default=config.TOP_K_DEFAULT)
    add_model_args(p, trunk=False)
    a = p.parse_args()
    image = open_image(a.image)
    engine = SearchEngine(a.index_dir, a.checkpoint_dir, a.weights, names=(a.encoder,))
    for hit in engine.search(a.encoder, image, a.top_k):
        print(json.dumps({"rank": hit.rank, "path": hit.path, "class": hit.class_name,
                          "distance": round(hit.distance, 4)}))


if __name__ == "__main__":
    run(main)
