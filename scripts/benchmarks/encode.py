"""Query encoding: each trunk's inference variants against plain eager torchvision and the FLOP floor."""

from __future__ import annotations

import numpy as np
import torch
from torchvision import models

from scripts.benchmarks import common as bench
from scripts.benchmarks.report import Context, row
from search.models.encoders import EncoderStore
from search.models.trunks import Trunk
from search.retrieval.rank import top_k


def encode_all(trunk_fn, transform, images, batch: int = 10) -> np.ndarray:
    """Normalised embeddings of PIL images through a trunk-like callable, in fixed-size batches."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = torch.stack([transform(im) for im in images[i:i + batch]])
            out.append(torch.nn.functional.normalize(trunk_fn(x).float(), dim=1).numpy())
    return np.concatenate(out)


def trunk_candidates(trunk: Trunk, compile_: bool) -> dict:
    """Inference variants of one trunk, each a callable on a preprocessed batch."""
    def plain(x):
        return trunk.pooled_features(x)

    def cl(x):
        return trunk.pooled_features(x.contiguous(memory_format=torch.channels_last))

    def cl_bf16(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return cl(x)

    cands = {"fp32 eager": plain, "channels_last": cl, "channels_last + bf16": cl_bf16}
    if compile_:
        compiled = torch.compile(trunk.pooled_features)
        cands["channels_last + torch.compile"] = lambda x: compiled(x.contiguous(memory_format=torch.channels_last))
    return cands


def bench_trunk(trunk: Trunk, baseline_model: torch.nn.Module, gflops_machine: float, compile_: bool,
                n_gallery: int, n_query: int, rounds: int = 5) -> None:
    """Row 1: query encode latency at batch 1 vs plain eager torchvision, FLOP floor, ranking check.

    Variants are timed in interleaved rounds and each keeps its best round, because this machine's speed
    drifts by tens of percent between minutes."""
    trunk.to(memory_format=torch.contiguous_format)
    rng = np.random.default_rng(1)
    images = [bench.synthetic_photo(rng) for _ in range(n_gallery + n_query)]
    x1 = trunk.transform(images[0])[None]
    ref = encode_all(trunk.pooled_features, trunk.transform, images)
    ref_idx, _ = top_k(ref[n_gallery:], ref[:n_gallery], 10)
    flops = bench.model_gflops(trunk.pooled_features, x1)
    floor_ms = 1000 * flops / gflops_machine
    variants = trunk_candidates(trunk, compile_)
    same = {}
    for name, fn in variants.items():
        trunk.to(memory_format=torch.channels_last if "channels_last" in name else torch.contiguous_format)
        emb = encode_all(fn, trunk.transform, images)
        same[name] = bool((top_k(emb[n_gallery:], emb[:n_gallery], 10)[0] == ref_idx).all())
    timed = {"baseline": baseline_model, **variants}
    best = {name: float("inf") for name in timed}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, fn in timed.items():
                trunk.to(memory_format=torch.channels_last if "channels_last" in name else torch.contiguous_format)
                best[name] = min(best[name], bench.median_ms(lambda: fn(x1), repeat=3, warmup=1))
    for name in variants:
        row(f"encode {trunk.label} b=1: {name}", best[name], best["baseline"], "ms",
            f"vs the plain eager model; top-10 {'identical' if same[name] else 'DIFFERS'} on {n_query} queries")
    kept = min((n for n in variants if same[n]), key=lambda n: best[n])
    row(f"encode {trunk.label}: fastest same-ranking variant vs FLOP floor", best[kept], floor_ms, "ms",
        f"{kept}; floor = {flops:.2f} GFLOP / {gflops_machine:.0f} GFLOP/s matmul; ratio = floor / ours")
    trunk.freeze()


def encode(ctx: Context) -> None:
    """Both trunks: VGG16 (the product's) and EfficientNet-Lite0 (this machine's)."""
    from efficientnet_lite_pytorch import EfficientNet

    gf = bench.matmul_gflops()
    store = EncoderStore(ctx.tmp / "none", ctx.weights)
    plain = models.vgg16().eval()
    plain.load_state_dict(torch.load(ctx.weights, weights_only=True))
    bench_trunk(store.trunk("vgg16"), plain, gf, ctx.compile, 60, 10)
    del plain
    lite = store.trunk("efficientnet_lite0")
    plain_lite = EfficientNet.from_name("efficientnet-lite0").eval()
    plain_lite.load_state_dict(lite.net.state_dict())
    bench_trunk(lite, plain_lite, gf, ctx.compile, 200, 20)


PARTS = {"encode": encode}
