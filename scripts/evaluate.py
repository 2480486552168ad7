"""Test-split photos as queries against the train-split gallery: precision@1/5/10 and mAP@10; then the open-set
evaluation (landmarks left out of the gallery and of training) that fits and scores the match confidence."""

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from search import config
from search.errors import LandmarkError
from search.evaluation.closed_set import evaluate, save_evaluation, share_near_identical
from search.evaluation.open_set import evaluate_open_set, save_open_set
from search.index import EVAL, read_manifest
from search.models.encoders import REGISTRY, EncoderStore
from search.pipeline.cli import add_data_dir, add_encoder, add_index_dir, add_model_args, run, use_encoders_of
from search.pipeline.prepare import study_step
from search.serving.engine import open_backend


def trunk_in_use(index_dir: Path) -> str | None:
    """The trunk the trunk-based indexes next to this one were built with (the scratch CNN has none of its own)."""
    for name in ("pretrained", "transfer"):
        try:
            return read_manifest(index_dir / name).get("trunk")
        except LandmarkError:
            continue
    return None


def figures_only(report: dict) -> dict:
    """The report without the per-query values behind its figures (they stay in eval.json): the JSON line."""
    return {k: figures_only(v) if isinstance(v, dict) else v for k, v in report.items()
            if k not in ("reliability", "out_of_fold", "per_query")}


def main(argv: list[str] | None = None) -> None:
    use_encoders_of(argv)
    p = argparse.ArgumentParser(description=__doc__)
    add_data_dir(p)
    add_index_dir(p)
    add_encoder(p)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--closed-set-only", action="store_true",
                   help="skip the open-set evaluation (folds of landmarks left out; trains a model per fold)")
    add_model_args(p, trunk=False)
    a = p.parse_args(argv)
    store = EncoderStore(a.checkpoint_dir, a.weights)
    backend = open_backend(store, a.index_dir, a.encoder)
    result = evaluate(backend.encoder, backend.index, a.data_dir, workers=a.workers)
    # a trained encoder's list of near-identical test photos comes from an untrained sibling's evaluation
    siblings = {p.parent.name: json.loads(p.read_text()) for p in Path(a.index_dir).glob("*/eval.json")
                if p.parent.name != a.encoder and p.parent.name in REGISTRY and not REGISTRY[p.parent.name].trained}
    share_near_identical({a.encoder: result.report, **{n: r for n, r in siblings.items() if "near_identical" in r}})
    save_evaluation(result, backend.index)
    report = result.report
    if not a.closed_set_only:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the one JSON line (torch hub prints there)
            cfg = dataclasses.replace(config.OPEN_SET, workers=a.workers, trunk=trunk_in_use(a.index_dir))
            opened = evaluate_open_set({a.encoder: (backend.encoder, backend.index)}, a.data_dir, store, cfg,
                                       log=lambda s: print(s, file=sys.stderr))[a.encoder]
        save_open_set(opened, backend.index, backend.index.path / EVAL)
        report = {**report, **opened.report}
    with contextlib.redirect_stdout(sys.stderr):  # the Study tab's figures include this evaluation's
        for note in study_step(a.index_dir, log=lambda s: print(s, file=sys.stderr)):
            print(note, file=sys.stderr)
    print(json.dumps(figures_only(report)))


if __name__ == "__main__":
    run(main)
