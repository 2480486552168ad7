"""Encode a dataset split with one encoder into indexes/<encoder>/ (vectors, metadata, t-SNE, thumbnails)."""

import argparse
import json

from search import config
from search.indexing.runner import ENGINES, build_index
from search.models.encoders import EncoderStore
from search.pipeline.cli import add_data_dir, add_encoder, add_index_dir, add_model_args, run, use_encoders_of


def main(argv: list[str] | None = None) -> None:
    use_encoders_of(argv)
    p = argparse.ArgumentParser(description=__doc__)
    add_encoder(p)
    add_data_dir(p)
    p.add_argument("--split", choices=["train", "test", "all"], default="train")
    add_index_dir(p, "--out-dir")
    p.add_argument("--float16", action="store_true", help="store embeddings as float16 (half the size)")
    p.add_argument("--batch-size", type=int, default=config.ENCODE_BATCH_SIZE)
    p.add_argument("--workers", type=int, default=None,
                   help="local: DataLoader decoding workers; ray: encoder actors (default: half the cluster's CPUs)")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: one process (small galleries); ray: Ray Data, on this machine or a cluster")
    p.add_argument("--ray-address", default=None, help="a Ray cluster's address (default: start Ray locally)")
    p.add_argument("--num-gpus-per-worker", type=float, default=0.0, help="GPUs per encoder actor (ray)")
    add_model_args(p)
    a = p.parse_args(argv)
    encoder = EncoderStore(a.checkpoint_dir, a.weights).load(a.encoder, trunk=a.trunk)
    cfg = config.BuildConfig(float16=a.float16, batch_size=a.batch_size, workers=a.workers, engine=a.engine,
                             ray_address=a.ray_address, num_gpus_per_worker=a.num_gpus_per_worker)
    index = build_index(encoder, a.data_dir, a.split, a.index_dir, cfg)
    m = index.manifest
    print(json.dumps({k: m[k] for k in ("encoder", "label", "trunk", "count", "dim", "skipped", "build_seconds")}
                     | {"path": str(index.path)}))


if __name__ == "__main__":
    run(main)
