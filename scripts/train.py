"""Train the scratch CNN or the transfer head; best-by-validation checkpoint, resumable, seeded."""

import argparse
import dataclasses
from pathlib import Path

from search import config
from search.models.encoders import EncoderStore, spec, trainable
from search.models.training import train_encoder
from search.pipeline.cli import add_data_dir, add_model_args, run, use_encoders_of


def get_args_parser() -> argparse.ArgumentParser:
    d = config.TrainConfig()
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--encoder", required=True, choices=trainable())
    add_data_dir(p)
    p.add_argument("--epochs", type=int, default=None, help="default: the encoder spec's")
    p.add_argument("--out", type=Path, default=None, help="checkpoint path (default: <checkpoint-dir>/<name>.pt)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--workers", type=int, default=config.decode_workers())
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--fresh", action="store_true", help="ignore saved resume state and start over")
    add_model_args(p)
    return p


def main(argv: list[str] | None = None) -> None:
    use_encoders_of(argv)
    a = get_args_parser().parse_args(argv)
    cfg = dataclasses.replace(config.TrainConfig(), batch_size=a.batch_size, lr=a.lr, decode_workers=a.workers,
                              seed=a.seed, fresh=a.fresh)
    out = a.out or a.checkpoint_dir / spec(a.encoder).checkpoint
    store = EncoderStore(a.checkpoint_dir, a.weights)
    kwargs = {"trunk": a.trunk or spec(a.encoder).trunk} if spec(a.encoder).uses_trunk else {}
    result = train_encoder(a.encoder, a.data_dir, out, a.epochs or spec(a.encoder).epochs, store, cfg, **kwargs)
    print(result.json())


if __name__ == "__main__":
    run(main)
