"""More encoders configured: a search under one of them costs what it did, and a Compare of all runs each trunk once."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from scripts.benchmarks import common as bench
from scripts.benchmarks.report import row


def _engine(index_dir: Path, checkpoint_dir: Path, encoders: Path | None):
    from search.models.encoders import use_encoders
    from search.serving.engine import SearchEngine

    use_encoders(encoders)
    return SearchEngine(index_dir, checkpoint_dir)


def bench_more_encoders(index_dir: Path, checkpoint_dir: Path, encoders: Path | None, other_index_dir: Path | None,
                        rng, name: str = "pretrained", n: int = 20) -> None:
    """A search under `name` with the default encoders vs with another file's (its indexes in `other_index_dir`),
    measured in the same run; then how many trunk passes a Compare of every configured encoder makes."""
    from search.models.encoders import use_encoders

    if encoders is None or other_index_dir is None:
        tqdm.write("encoders: give --encoders-file FILE and --encoders-index-dir DIR (prepared with that file)")
        return
    image = bench.synthetic_photo(rng)
    try:
        few = _engine(index_dir, checkpoint_dir, None)
        many = _engine(other_index_dir, checkpoint_dir, encoders)
        if name not in few.backends or name not in many.backends:
            tqdm.write(f"encoders: {name} is not ready in both index folders (run scripts/prepare_demo.py)")
            return
        base = bench.median_ms(lambda: few.search(name, image, 9), repeat=n)
        ours = bench.median_ms(lambda: many.search(name, image, 9), repeat=n)
        row(f"search under {name}, {len(many.backends)} encoders configured", ours, base, "ms",
            f"vs {len(few.backends)} configured")
        passes = []
        trunks = {id(b.encoder.trunk): b.encoder.trunk for b in many.backends.values() if b.encoder.trunk}
        nets = [b.encoder for b in many.backends.values() if b.encoder.trunk is None]
        hooks = [t.register_forward_hook(lambda *_: passes.append(1)) for t in trunks.values()]
        firsts = [next(m for m in e.modules[0].modules() if isinstance(m, torch.nn.Conv2d)) for e in nets]
        hooks += [m.register_forward_hook(lambda *_: passes.append(1)) for m in firsts]  # once per pass
        try:
            compare_ms = bench.median_ms(lambda: many.embed_many(list(many.backends), image), repeat=3, warmup=0)
        finally:
            for h in hooks:
                h.remove()
        per_compare = len(passes) / 3
        row(f"compare: forward passes for {len(many.backends)} encoders", per_compare, len(many.backends), "passes",
            f"{len(trunks)} shared trunks + {len(nets)} own network(s); {compare_ms:.0f} ms per photo")
    finally:
        use_encoders()


PARTS = {"encoders": lambda ctx: bench_more_encoders(ctx.args.index_dir, ctx.args.checkpoint_dir,
                                                     ctx.args.encoders_file, ctx.args.encoders_index_dir, ctx.rng)}
