"""Test-split photos as queries against the train-split gallery: precision@1/5/10 and mAP@10."""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.cli import add_data_dir, add_encoder, add_index_dir, add_model_args, run  # noqa: E402
from search.encoders import EncoderStore  # noqa: E402
from search.engine import open_backend  # noqa: E402
from search.evaluate import evaluate, save_evaluation  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_data_dir(p)
    add_index_dir(p)
    add_encoder(p)
    p.add_argument("--workers", type=int, default=None)
    add_model_args(p, trunk=False)
    a = p.parse_args()
    backend = open_backend(EncoderStore(a.checkpoint_dir, a.weights), a.index_dir, a.encoder)
    result = evaluate(backend.encoder, backend.index, a.data_dir, workers=a.workers)
    save_evaluation(result, backend.index)
    print(json.dumps(result.report))


if __name__ == "__main__":
    run(main)
