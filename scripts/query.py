"""Search one image against an encoder's index; prints one JSON line per hit."""

import argparse
import json
from pathlib import Path

from search import config
from search.photos.images import open_image
from search.pipeline.cli import add_encoder, add_index_dir, add_model_args, run, use_encoders_of
from search.serving.engine import SearchEngine


def main(argv: list[str] | None = None) -> None:
    use_encoders_of(argv)
    p = argparse.ArgumentParser(description=__doc__)
    add_index_dir(p)
    add_encoder(p)
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--top-k", type=int, default=config.TOP_K_DEFAULT)
    add_model_args(p, trunk=False)
    a = p.parse_args(argv)
    image = open_image(a.image)
    engine = SearchEngine(a.index_dir, a.checkpoint_dir, a.weights, names=(a.encoder,))
    for hit in engine.search(a.encoder, image, a.top_k):
        print(json.dumps({"rank": hit.rank, "path": hit.path, "class": hit.class_name,
                          "distance": round(hit.distance, 4)}))


if __name__ == "__main__":
    run(main)
