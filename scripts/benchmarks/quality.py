"""Retrieval quality next to its cost, for each prepared index."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm.auto import tqdm

from scripts.benchmarks.report import row


def bench_quality(index_dir: Path) -> None:
    """Row 7: retrieval quality next to its cost, for each prepared index (from evaluate.py's eval.json)."""
    from search.index import EMBEDDINGS, read_manifest
    from search.models.encoders import REGISTRY

    base = None
    for name in REGISTRY:
        path = index_dir / name
        try:
            manifest = read_manifest(path)
            report = json.loads((path / "eval.json").read_text())
        except Exception:
            tqdm.write(f"quality {name}: no evaluated index in {path} (run scripts/prepare_demo.py)")
            continue
        size_mb = (path / EMBEDDINGS).stat().st_size / 2 ** 20
        base = base or report["ms_per_query"]
        row(f"quality {manifest['label']}", report["ms_per_query"], base, "ms/q",
            f"P@1 {report['precision@1']:.3f}, mAP@10 {report['mAP@10']:.3f}, {report['queries']} queries, "
            f"index {size_mb:.1f} MiB ({manifest['count']} x {manifest['dim']})")


PARTS = {"quality": lambda ctx: bench_quality(ctx.args.index_dir)}
