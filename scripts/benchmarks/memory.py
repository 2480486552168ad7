"""Loading the encoders: resident memory with the three loaded (against two separate VGG16 copies), and the time
to build the VGG16 trunk from its weights file (against torchvision's randomly initialised VGG16 loaded the same)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scripts.benchmarks import common as bench
from scripts.benchmarks.report import row
from search.models.encoders import EncoderStore

MEMORY_SCRIPT = r"""
import sys, json
import torch
from scripts.benchmarks import common as bench
mode, weights, ckpt = sys.argv[1], sys.argv[2], sys.argv[3]
base = bench.rss_mb()
if mode == "ours":
    from search.models.encoders import EncoderStore
    store = EncoderStore(ckpt, weights)
    encs = [store.load(n, trunk="vgg16") for n in ("scratch", "pretrained", "transfer")]
else:
    from torchvision import models
    sd = torch.load(weights, weights_only=True)
    encs = [models.vgg16(), models.vgg16()]
    for m in encs:
        m.load_state_dict(sd)
    del sd
print(json.dumps({{"mb": bench.rss_mb() - base}}))
"""


def bench_memory(weights: Path, tmp: Path) -> None:
    """Row 5: resident memory with all three encoders loaded (one shared VGG16) vs two separate VGG16 copies."""
    ckpt = tmp / "mem-ckpt"
    trunk = EncoderStore(ckpt, weights).trunk("vgg16")
    bench.write_untrained_checkpoints(ckpt, trunk, [f"{i:02d}.C{i}" for i in range(50)])
    code = MEMORY_SCRIPT.format(root=str(Path(__file__).resolve().parents[2]))
    out = {}
    for mode in ("ours", "two-vgg16"):
        r = subprocess.run([sys.executable, "-c", code, mode, str(weights), str(ckpt)], capture_output=True,
                           text=True, check=True)
        out[mode] = json.loads(r.stdout.strip().splitlines()[-1])["mb"]
    row("resident memory, three encoders loaded", out["ours"], out["two-vgg16"], "MiB",
        "vs two separate VGG16 copies (pretrained + transfer without sharing)")


def bench_trunk_load(weights: Path, tmp: Path) -> None:
    """The VGG16 trunk built from its weights file vs torchvision's VGG16 initialised at random, then loaded."""
    import torch
    from torchvision import models

    def random_then_load():
        models.vgg16().load_state_dict(torch.load(weights, weights_only=True))

    ours = bench.median_ms(lambda: EncoderStore(tmp / "load-ckpt", weights).trunk("vgg16"), repeat=3, warmup=1)
    base = bench.median_ms(random_then_load, repeat=3, warmup=1)
    row("VGG16 trunk built from its weights file", ours, base, "ms", "vs torchvision's random init, then the load")


PARTS = {"memory": lambda ctx: bench_memory(ctx.weights, ctx.tmp),
         "load": lambda ctx: bench_trunk_load(ctx.weights, ctx.tmp)}
