"""One resumable command that prepares the demo: data, trained encoders, one index per configured encoder, examples,
metrics."""

import argparse
from pathlib import Path

from search import config
from search.models.encoders import REGISTRY, trainable
from search.pipeline.cli import add_data_dir, add_index_dir, add_model_args, run, use_encoders_of
from search.pipeline.prepare import DemoSetup, prepare, summary_table


def main(argv: list[str] | None = None) -> int:
    use_encoders_of(argv)
    p = argparse.ArgumentParser(description=__doc__)
    add_data_dir(p)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from-zip", type=Path, help="local copy of landmark_images.zip")
    src.add_argument("--from-dir", type=Path, help="local folder with train/ and test/")
    src.add_argument("--url", default=config.DATASET_URL, help="where to download the dataset zip from")
    add_index_dir(p)
    add_model_args(p)
    for name in trainable():  # --scratch-epochs, --transfer-epochs: defaults from each encoder's spec
        p.add_argument(f"--{name}-epochs", type=int, default=REGISTRY[name].epochs)
    a = p.parse_args(argv)
    results, notes = prepare(DemoSetup(a.data_dir, a.index_dir, a.checkpoint_dir, a.from_zip, a.from_dir, a.url,
                                       a.weights, a.trunk, {n: getattr(a, f"{n}_epochs") for n in trainable()}))
    print()
    print(summary_table(results))
    for note in notes:
        print(f"note: {note}")
    ok = [r for r in results if r.gallery]
    print(f"\n{len(ok)} of {len(results)} encoders ready. Start the app with: python app.py --index-dir {a.index_dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    run(main)
