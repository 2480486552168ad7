"""Compare the encoders over the whole gallery (the Study tab): k-NN agreement per pair, map faithfulness,
separation, per-landmark figures and confusions from the evaluations; saved next to the indexes."""

import argparse
import time

from search.errors import LandmarkError
from search.pipeline.cli import add_encoders_file, add_index_dir, run, use_encoders_of
from search.pipeline.prepare import loadable_indexes
from search.study import store as study_store


def main(argv: list[str] | None = None) -> int:
    use_encoders_of(argv)
    p = argparse.ArgumentParser(description=__doc__)
    add_index_dir(p)
    add_encoders_file(p)
    p.add_argument("--force", action="store_true", help="recompute even when the saved study is current")
    a = p.parse_args(argv)
    indexes = loadable_indexes(a.index_dir)
    if len(indexes) < 2:
        raise LandmarkError(f"{a.index_dir} holds {len(indexes)} loadable index(es); the study compares at least two: "
                            "run scripts/prepare_demo.py (or build_index.py for two encoders) first.")
    started = time.time()
    if a.force:
        result = study_store.compute(indexes, print)
        study_store.save(a.index_dir, result, study_store.depends(indexes))
    else:
        result = study_store.ensure(a.index_dir, indexes, print)
    print(f"study of {', '.join(indexes)} over {len(result['photos'])} photos ({time.time() - started:.1f} s), "
          f"saved in {study_store.study_dir(a.index_dir)}")
    for pair, agreement in result["agreement"].items():
        print(f"  agreement {pair}: mean Jaccard of the {result['k']}-NN sets {agreement['mean']:.4f}")
    for name, m in result["maps"].items():
        print(f"  map {name}: trustworthiness {m['trustworthiness']:.4f} (on {m['trust_points']} photos), "
              f"10-NN kept {m['knn_preserved']:.4f}")
    for name, s in result["separation"].items():
        print(f"  separation {name}: silhouette {s['silhouette']:.4f}, kNN class accuracy {s['knn_accuracy']:.4f}")
    for sentence in result["findings"]:
        print(f"- {sentence}")
    return 0


if __name__ == "__main__":
    run(main)
