"""Measured speed against baselines, in one run: every row is (what, ours, baseline, ratio).

Uses random-weight VGG16 where real weights are absent (speed does not depend on weight values), the
packaged EfficientNet-Lite0 weights, and generated images; default settings run in under 10 minutes on 2 cores."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision import models  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from search import bench, config  # noqa: E402
from search.cli import run  # noqa: E402
from search.encoders import EncoderStore  # noqa: E402
from search.images import open_image  # noqa: E402
from search.encode import encode_local  # noqa: E402
from search.index import GalleryIndex  # noqa: E402
from search.writer import write_index  # noqa: E402
from search.rank import Searcher, top_k  # noqa: E402
from search.trunks import Trunk  # noqa: E402

ROWS: list[dict] = []


def row(what: str, ours: float, baseline: float, unit: str, note: str = "", higher_is_better: bool = False) -> None:
    """Record and print one result; ratio > 1 always means ours is better."""
    ratio = (ours / baseline) if higher_is_better else (baseline / ours if ours else float("nan"))
    ROWS.append({"what": what, "ours": round(ours, 3), "baseline": round(baseline, 3), "unit": unit,
                 "ratio": round(ratio, 2), "note": note})
    tqdm.write(f"{what:<64} {ours:>10.2f} {baseline:>10.2f} {unit:<7} {ratio:>6.2f}x  {note}")


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
        return trunk._features(x)

    def cl(x):
        return trunk._features(x.contiguous(memory_format=torch.channels_last))

    def cl_bf16(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return cl(x)

    cands = {"fp32 eager": plain, "channels_last": cl, "channels_last + bf16": cl_bf16}
    if compile_:
        compiled = torch.compile(trunk._features)
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
    ref = encode_all(trunk._features, trunk.transform, images)
    ref_idx, _ = top_k(ref[n_gallery:], ref[:n_gallery], 10)
    flops = bench.model_gflops(trunk._features, x1)
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


def bench_search(rng: np.random.Generator) -> None:
    """Row 2: exact top-10 on the demo-sized gallery vs scikit-learn brute force."""
    from sklearn.neighbors import NearestNeighbors

    for dim in (4096, 256):
        g = bench.clustered_unit_vectors(6000, dim, clusters=50, seed=dim)
        q = g[rng.integers(0, 6000, 20)] + 0.3 / np.sqrt(dim) * rng.standard_normal((20, dim), dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        nn = NearestNeighbors(n_neighbors=10, algorithm="brute").fit(g)
        searcher = Searcher(g)
        ours = bench.median_ms(lambda: [searcher.search(v[None], 10) for v in q], repeat=5) / len(q)
        base = bench.median_ms(lambda: [nn.kneighbors(v[None]) for v in q], repeat=5) / len(q)
        same = all((searcher.search(v[None], 10)[0] == nn.kneighbors(v[None])[1]).all() for v in q)
        row(f"search 6,000 x {dim}, top-10, one query", ours, base, "ms",
            f"vs sklearn brute; top-10 {'identical' if same else 'DIFFERS'} on 20 queries")


def synthetic_app_index(root: Path, store: EncoderStore, n: int, rng: np.random.Generator) -> None:
    """A 6,000-image 'pretrained' index of synthetic vectors (with real thumbnails) bound to the live encoder."""
    enc = store.load("pretrained", trunk="vgg16")
    thumbs = root / config.THUMBNAIL_DIRNAME
    thumbs.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(24):
        name = f"synthetic{i:02d}.jpg"
        bench.synthetic_photo(rng, (256, 192)).save(thumbs / name)
        names.append(name)
    classes = [f"{i:02d}.Landmark_{i}" for i in range(50)]
    items = [{"path": f"train/{classes[i % 50]}/{i}.jpg", "class_id": i % 50, "class_name": f"Landmark {i % 50}",
              "split": "train", "thumb": names[i % len(names)]} for i in range(n)]
    emb = bench.clustered_unit_vectors(n, enc.dim, clusters=50, seed=3)
    coords = (rng.standard_normal((n, 2)) * 20).astype(np.float32)
    write_index(root, enc, emb, items, coords, {"split": "train", "dataset_root": "synthetic", "skipped": 0,
                                                "dataset_fingerprint": "synthetic",
                                                "classes": [f"Landmark {i}" for i in range(50)],
                                                "class_folders": classes})


def bench_end_to_end(weights: Path, tmp: Path, rng: np.random.Generator, n: int = 10) -> None:
    """Row 3: a /search call through gradio_client vs encoding alone."""
    from gradio_client import Client, handle_file

    import app
    from search.engine import SearchEngine

    root = tmp / "e2e-index"
    store = EncoderStore(tmp / "no-checkpoints", weights)
    synthetic_app_index(root, store, 6000, rng)
    engine = SearchEngine(root, tmp / "no-checkpoints", weights, names=("pretrained",))
    photo = tmp / "query.jpg"
    bench.synthetic_photo(rng).save(photo)
    image = open_image(photo)
    port = bench.free_port()
    demo = app.launch(engine, "127.0.0.1", port, work_dir=tmp / "work", prevent_thread_lock=True, quiet=True)
    try:
        timings = {}
        for download in (False, True):
            client = Client(f"http://127.0.0.1:{port}/", verbose=False,
                            download_files=str(tmp / "downloads") if download else False)
            timings[download] = bench.median_ms(
                lambda: client.predict(handle_file(str(photo)), "pretrained", 9, api_name="/search"), repeat=n)
        handler = app.App(engine, tmp / "work")
        server_ms = bench.median_ms(lambda: handler.search(image, "pretrained", 9), repeat=n)
    finally:
        demo.close()
    enc_ms = bench.median_ms(lambda: engine.embed("pretrained", image), repeat=n)
    row("/search handler in-process (encode + search + map)", server_ms, enc_ms, "ms",
        "baseline = encode alone; ratio < 1 is our overhead")
    row("/search via gradio_client (upload, queue, result JSON)", timings[False], enc_ms, "ms",
        "6,000-image VGG16 gallery, k=9; baseline = encode alone")
    row("/search via gradio_client + downloading the 9 thumbnails", timings[True], enc_ms, "ms",
        "what a client that fetches the images waits for")


def _fake_index(n: int, rng: np.random.Generator, classes: int = 50) -> GalleryIndex:
    """A gallery index in memory with n points on the map (the map layers need no vectors)."""
    ids = rng.integers(0, classes, n)
    items = [{"path": f"train/{c:02d}.Landmark_{c}/photo_{i:07d}.jpg", "class_id": int(c),
              "class_name": f"Landmark {c}", "split": "train", "thumb": f"{i:024x}.jpg"} for i, c in enumerate(ids)]
    return GalleryIndex(Path("/srv/indexes/pretrained"), {"classes": [f"Landmark {c}" for c in range(classes)],
                                                          "thumbnails": "thumbnails", "encoder": "pretrained"},
                        np.zeros((n, 1), np.float32), items, (rng.normal(size=(n, 2)) * 30).astype(np.float32))


def bench_map_bytes(rng: np.random.Generator, sizes: tuple[int, ...] = (1_000, 50_000), k: int = 9) -> None:
    """Bytes of one /search response's map: the query layer alone vs the whole figure re-sent (the old gr.Plot)."""
    from search.engine import Hit
    from ui.mapview import file_url
    from search.present import GalleryMap, map_value

    for n in sizes:
        index = _fake_index(n, rng)
        gmap = GalleryMap(index, "map", file_url)
        rows = rng.choice(n, k, replace=False)
        hits = [Hit(r + 1, int(i), index.items[i]["path"], index.items[i]["class_name"], 0.3 + 0.01 * r,
                    Path("/t.jpg"), 0.9) for r, i in enumerate(rows)]
        traces = gmap.query_traces(hits)
        layer = json.loads(gmap.layer_json)
        before = len(json.dumps({"data": layer["data"] + traces, "layout": layer["layout"]}))  # gr.Plot's figure
        after = len(json.dumps(map_value("gradio_api/file=/tmp/landmark-lens/maps/map-0123456789abcdef.json", traces)))
        row(f"/search map bytes, {n:,}-point gallery", after / 1024, before / 1024, "KiB",
            f"query layer only vs whole figure per search; the {len(gmap.layer_json) / 1024:,.0f} KiB gallery "
            "layer is fetched once per encoder")


def bench_explain(weights: Path, tmp: Path, rng: np.random.Generator, n: int = 5) -> None:
    """One "why similar" explanation (two heatmaps) per encoder, against one plain encode of the same photo."""
    from search.explain import overlay, similarity_maps

    query, hit = bench.synthetic_photo(rng, (640, 480)), bench.synthetic_photo(rng, (256, 192))
    for trunk_name in ("vgg16", "efficientnet_lite0"):
        ckpt = tmp / f"explain-{trunk_name}"
        store = EncoderStore(ckpt, weights)
        trunk = store.trunk(trunk_name)
        bench.write_untrained_checkpoints(ckpt, trunk, [f"c{i}" for i in range(50)])
        names = ("scratch", "pretrained", "transfer") if trunk_name == "vgg16" else ("pretrained", "transfer")
        for name in names:
            enc = store.load(name, trunk=trunk_name)

            def explain():
                exp = similarity_maps(enc, query, hit)
                return overlay(query, exp.query_map, enc.transform), overlay(hit, exp.hit_map, enc.transform)

            ours = bench.median_ms(explain, repeat=n, warmup=1)
            base = bench.median_ms(lambda: enc.encode([query]), repeat=n, warmup=1)
            row(f"explain {enc.label}", ours, base, "ms", "two Grad-CAM heatmaps + overlays vs one plain encode")


def bench_build(tmp: Path, rng: np.random.Generator, n: int) -> None:
    """Row 4: index encoding throughput (DataLoader workers, batches) vs a one-image-at-a-time loop."""
    folder = tmp / "build-images"
    folder.mkdir()
    paths = []
    for i in range(n):
        p = folder / f"{i}.jpg"
        bench.synthetic_photo(rng, (400, 300)).save(p, quality=90)
        paths.append(p)
    enc = EncoderStore(tmp / "none").load("pretrained", trunk="efficientnet_lite0")

    def naive() -> None:
        for p in paths:
            enc.embed(enc.transform(open_image(p))[None])

    naive()  # warm-up
    best: dict[str, float] = {}
    for _ in range(3):  # interleaved rounds, best of each: this machine's speed drifts between runs
        for name, fn in (("naive", naive), ("ours", lambda: encode_local(enc, paths, None)),
                         ("ours+thumbs", lambda: encode_local(enc, paths, tmp / "thumbs"))):
            t = time.perf_counter()
            fn()
            best[name] = max(best.get(name, 0.0), n / (time.perf_counter() - t))
    row(f"index build, {n} images, EfficientNet-Lite0", best["ours"], best["naive"], "img/s",
        f"DataLoader ({config.num_workers()} worker) + batches of {config.ENCODE_BATCH_SIZE} vs decode + encode one at "
        "a time", higher_is_better=True)
    row(f"index build, {n} images, EfficientNet-Lite0 + thumbnails", best["ours+thumbs"], best["naive"], "img/s",
        "also writes 256-px thumbnails, which the naive loop does not", higher_is_better=True)


def bench_gallery(tmp: Path, rng: np.random.Generator, checkpoint_dir: Path, folder: Path | None,
                  n: int = 192) -> None:
    """A private gallery's build (every encoder): indexes built together (a shared trunk runs once) vs one by one."""
    from search.build import build_index, build_indexes
    from search.encoders import REGISTRY
    from search.errors import LandmarkError

    if folder is None:
        folder = tmp / "gallery-images"
        folder.mkdir()
        for i in range(n):
            bench.synthetic_photo(rng, (400, 300)).save(folder / f"{i}.jpg", quality=90)
    store = EncoderStore(checkpoint_dir)
    encs = []
    for name in REGISTRY:
        try:
            encs.append(store.load(name, trunk="efficientnet_lite0"))
        except LandmarkError as exc:
            tqdm.write(f"gallery build: {name} skipped ({exc})")
    if sum(e.trunk is not None for e in encs) < 2:
        tqdm.write("gallery build: needs the transfer head (--checkpoint-dir) for a shared trunk; row skipped")
        return
    best: dict[str, float] = {}
    for r in range(2):  # interleaved rounds, best of each
        for way in ("together", "one by one"):
            root, t = tmp / f"gallery-{way}-{r}", time.perf_counter()
            if way == "together":
                count = next(iter(build_indexes(encs, folder, "all", root, workers=0).values())).manifest["count"]
            else:
                count = [build_index(e, folder, "all", root, workers=0) for e in encs][0].manifest["count"]
            best[way] = max(best.get(way, 0.0), count / (time.perf_counter() - t))
    row(f"gallery build, {count} photos, {len(encs)} encoders (EfficientNet-Lite0)", best["together"],
        best["one by one"], "photo/s", "build_indexes (one read per trunk, shared trunk once) vs build_index per "
        "encoder; t-SNE included", higher_is_better=True)


def bench_engines(tmp: Path, rng: np.random.Generator, n: int = 192) -> None:
    """The same index build on Ray Data (started locally, already running) and on the local engine."""
    from search import ray_engine
    from search.build import build_index

    root = tmp / "engine-data"
    for i in range(n):
        c = (i // 4) % 8
        d = root / ("train" if i % 4 else "test") / f"{c:02d}.Place_{c}"
        d.mkdir(parents=True, exist_ok=True)
        bench.synthetic_photo(rng, (400, 300)).save(d / f"{i}.jpg", quality=90)
    enc = EncoderStore(tmp / "none").load("pretrained", trunk="efficientnet_lite0")
    t = time.perf_counter()
    ray_engine.start()
    start_s = time.perf_counter() - t
    rates: dict[str, float] = {}
    for _ in range(2):  # interleaved rounds, best of each
        for engine in ("local", "ray"):
            t = time.perf_counter()
            idx = build_index(enc, root, "all", tmp / f"engine-{engine}", engine=engine,
                              workers=1 if engine == "ray" else None)
            rates[engine] = max(rates.get(engine, 0.0), idx.manifest["count"] / (time.perf_counter() - t))
    row(f"index build, {n} images, --engine ray vs --engine local", rates["ray"], rates["local"], "img/s",
        f"this 2-core machine, 1 encoder actor; Ray itself took {start_s:.0f} s to start; the point is that the same "
        "command scales out", higher_is_better=True)


MEMORY_SCRIPT = r"""
import sys, json
sys.path.insert(0, {root!r})
import torch
from search import bench
mode, weights, ckpt = sys.argv[1], sys.argv[2], sys.argv[3]
base = bench.rss_mb()
if mode == "ours":
    from search.encoders import EncoderStore
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
    code = MEMORY_SCRIPT.format(root=str(Path(__file__).resolve().parents[1]))
    out = {}
    for mode in ("ours", "two-vgg16"):
        r = subprocess.run([sys.executable, "-c", code, mode, str(weights), str(ckpt)], capture_output=True,
                           text=True, check=True)
        out[mode] = json.loads(r.stdout.strip().splitlines()[-1])["mb"]
    row("resident memory, three encoders loaded", out["ours"], out["two-vgg16"], "MiB",
        "vs two separate VGG16 copies (pretrained + transfer without sharing)")


def bench_scale(rng: np.random.Generator, sizes: list[int], n_query: int = 20) -> None:
    """Row 6: exact NumPy / torch search vs FAISS flat and HNSW on large synthetic 256-d galleries."""
    for n in sizes:
        _scale_one(rng, n, n_query)


def _scale_one(rng: np.random.Generator, n: int, n_query: int) -> None:
    """The scale rows for one gallery size (its arrays are freed on return)."""
    g = bench.clustered_unit_vectors(n, 256, clusters=max(100, n // 1000), seed=n)
    # Queries: gallery vectors moved by noise of norm ~0.3, like a re-photographed landmark.
    q = g[rng.integers(0, n, n_query)] + 0.3 / 16 * rng.standard_normal((n_query, 256), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact_idx = top_k(q, g, 10)[0]
    numpy_ms = bench.median_ms(lambda: [top_k(v[None], g, 10) for v in q], repeat=3, warmup=1) / n_query
    gt = torch.from_numpy(g)
    torch_ms = bench.median_ms(lambda: [torch.topk(gt @ torch.from_numpy(v), 10) for v in q],
                               repeat=3, warmup=1) / n_query
    row(f"scale {n:,} x 256: exact torch (matmul + topk)", torch_ms, numpy_ms, "ms",
        "ours below 100k; baseline = exact numpy for every scale row; recall 1.00")
    flat = Searcher(g, backend="faiss-flat")
    flat_ms = bench.median_ms(lambda: [flat.search(v[None], 10) for v in q], repeat=3, warmup=1) / n_query
    flat_rec = bench.recall_at_k(flat.search(q, 10)[0], exact_idx)
    row(f"scale {n:,} x 256: FAISS flat", flat_ms, numpy_ms, "ms", f"recall@10 {flat_rec:.3f}")
    t = time.perf_counter()
    ours = Searcher(g, backend=config.ANN_BACKEND)
    build_s = time.perf_counter() - t
    ours_ms = bench.median_ms(lambda: [ours.search(v[None], 10) for v in q], repeat=3, warmup=1) / n_query
    ours_rec = bench.recall_at_k(ours.search(q, 10)[0], exact_idx)
    row(f"scale {n:,} x 256: {config.ANN_BACKEND} (nprobe={config.IVF_NPROBE}, re-rank {config.ANN_RERANK})",
        ours_ms, numpy_ms, "ms", f"ours past 100k; recall@10 {ours_rec:.3f}; build {build_s:.0f} s")


def _gallery_and_queries(n: int, kind: str, n_query: int, dtype=np.float32, seed: int = 0):
    """A 256-d unit-vector gallery (clustered like real embeddings, or uniform: the worst case) and queries that
    are gallery vectors moved by noise of norm ~0.3, like a re-photographed landmark."""
    rng = np.random.default_rng(seed)
    g = np.empty((n, 256), dtype)
    centres = rng.standard_normal((max(100, n // 1000), 256), dtype=np.float32)
    for start in range(0, n, 500_000):
        m = min(500_000, n - start)
        block = rng.standard_normal((m, 256), dtype=np.float32)
        if kind == "clustered":
            block = centres[rng.integers(0, len(centres), m)] + 0.6 * block
        g[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    q = g[rng.integers(0, n, n_query)].astype(np.float32) + 0.3 / 16 * rng.standard_normal((n_query, 256),
                                                                                          dtype=np.float32)
    return g, q / np.linalg.norm(q, axis=1, keepdims=True)


def _exact_top10(g: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact top-10 by streaming the gallery in blocks (works for float16 galleries larger than RAM as float32)."""
    best_s = np.full((len(q), 10), -np.inf, np.float32)
    best_i = np.zeros((len(q), 10), np.int64)
    for start in range(0, len(g), 1_000_000):
        sims = torch.from_numpy(np.ascontiguousarray(g[start:start + 1_000_000], np.float32)) @ torch.from_numpy(q).T
        s, i = torch.topk(sims.T, 10, dim=1)
        cand_s = np.concatenate([best_s, s.numpy()], axis=1)
        cand_i = np.concatenate([best_i, i.numpy() + start], axis=1)
        order = np.argsort(-cand_s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def bench_ann(sizes: list[int], n_query: int = 50, kinds: tuple[str, ...] = ("clustered", "uniform")) -> None:
    """Approximate search candidates at scale: recall@10 against exact search and the latency of one query."""
    from search import ann

    for n in sizes:
        for kind in kinds:
            big = n > 2_000_000
            g, q = _gallery_and_queries(n, kind, n_query, np.float16 if big else np.float32)
            exact = _exact_top10(g, q)
            exact_ms = bench.median_ms(lambda: _exact_top10(g, q[:1]), repeat=3, warmup=1)
            candidates: list[tuple[str, Callable[[], object], list[tuple[str, Callable[[object], None]]]]] = []
            if not big:  # HNSW keeps full float32 vectors plus its graph: past a few million it does not fit here
                for m in (16, 32):
                    candidates.append((f"HNSW M={m}", lambda m=m: ann.HNSW(g, m=m, ef_search=64),
                                       [(f"ef={ef}", lambda idx, ef=ef: setattr(idx.index.hnsw, "efSearch", ef))
                                        for ef in (64, 128, 256, 512)]))
            candidates.append(("IVF-PQ nlist=4096 m=32 + re-rank" + (" (float16 vectors)" if big else ""),
                               lambda: ann.IVFPQRerank(g, nlist=4096, pq_m=32, nprobe=16, rerank=256),
                               [(f"nprobe={p} rerank={r}", lambda idx, p=p, r=r: (setattr(idx.index, "nprobe", p),
                                                                                  setattr(idx, "rerank", r)))
                                for p in (16, 32, 64) for r in (256, 1024)]))
            for name, build, settings in candidates:
                t = time.perf_counter()
                index = build()
                build_s = time.perf_counter() - t
                for label, apply in settings:
                    apply(index)
                    rec = bench.recall_at_k(index.search(q, 10)[0], exact)
                    ms = bench.median_ms(lambda: [index.search(v[None], 10) for v in q[:20]], repeat=3, warmup=1) / 20
                    row(f"ann {n:,} x 256 {kind}: {name} {label}", ms, exact_ms, "ms",
                        f"recall@10 {rec:.3f}; build {build_s:.0f} s; baseline = exact search of one query")
                index = None  # free it before the next candidate is built
            g = q = None


def bench_quality(index_dir: Path) -> None:
    """Row 7: retrieval quality next to its cost, for each prepared index (from evaluate.py's eval.json)."""
    from search.encoders import REGISTRY
    from search.index import EMBEDDINGS, read_manifest

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    p.add_argument("--weights", type=Path, default=None, help="real VGG16 weights (default: random init)")
    p.add_argument("--index-dir", type=Path, default=config.INDEX_DIR, help="prepared indexes for the quality rows")
    p.add_argument("--scale", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--ann", type=int, nargs="+", default=[1_000_000], help="gallery sizes of the ANN rows")
    p.add_argument("--ann-kinds", nargs="+", default=["clustered", "uniform"], choices=["clustered", "uniform"])
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (saves ~1 min)")
    p.add_argument("--checkpoint-dir", type=Path, default=config.CHECKPOINT_DIR, help="trained encoders (gallery row)")
    p.add_argument("--gallery-dir", type=Path, default=None, help="photo folder of the gallery row (default: 192 "
                                                                      "generated photos)")
    parts = ["encode", "search", "e2e", "map", "explain", "build", "gallery", "engines", "memory", "scale", "ann",
             "quality"]
    p.add_argument("--only", nargs="+", choices=parts)
    a = p.parse_args()
    only = set(a.only or parts)
    rng = np.random.default_rng(0)
    started = time.time()
    import platform
    tqdm.write(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
               f"torch {torch.__version__}")
    tqdm.write(f"{'what':<64} {'ours':>10} {'baseline':>10} {'unit':<7} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        weights = a.weights
        if weights is None:
            torch.manual_seed(0)
            weights = tmp / "vgg16-random.pth"
            torch.save(models.vgg16().state_dict(), weights)
        if "encode" in only:
            gf = bench.matmul_gflops()
            store = EncoderStore(tmp / "none", weights)
            sd = torch.load(weights, weights_only=True)
            plain = models.vgg16().eval()
            plain.load_state_dict(sd)
            bench_trunk(store.trunk("vgg16"), plain, gf, not a.no_compile, 60, 10)
            del plain, sd
            from efficientnet_lite_pytorch import EfficientNet
            lite = store.trunk("efficientnet_lite0")
            plain_lite = EfficientNet.from_name("efficientnet-lite0").eval()
            plain_lite.load_state_dict(lite.net.state_dict())
            bench_trunk(lite, plain_lite, gf, not a.no_compile, 200, 20)
        if "search" in only:
            bench_search(rng)
        if "e2e" in only:
            bench_end_to_end(weights, tmp, rng)
        if "map" in only:
            bench_map_bytes(rng)
        if "explain" in only:
            bench_explain(weights, tmp, rng)
        if "build" in only:
            bench_build(tmp, rng, 192)
        if "gallery" in only:
            bench_gallery(tmp, rng, a.checkpoint_dir, a.gallery_dir)
        if "engines" in only:
            bench_engines(tmp, rng)
        if "memory" in only:
            bench_memory(weights, tmp)
        if "scale" in only:
            bench_scale(rng, a.scale)
        if "ann" in only:
            bench_ann(a.ann, kinds=tuple(a.ann_kinds))
        if "quality" in only:
            bench_quality(a.index_dir)
    tqdm.write(f"total {time.time() - started:.0f} s")
    if a.json:
        from search.storage import write_json
        write_json({"rows": ROWS, "seconds": round(time.time() - started, 1)}, a.json)


if __name__ == "__main__":
    run(main)
