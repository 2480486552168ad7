"""The app's own costs: a /search call end to end, the bytes of its map, one "why similar" explanation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from scripts.benchmarks import common as bench
from scripts.benchmarks.ports import free_port
from scripts.benchmarks.report import row
from search import config
from search.index import GalleryIndex
from search.indexing.writer import IndexArrays, write_index
from search.models.encoders import EncoderStore
from search.photos.images import open_image
from ui.server import launch


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
    meta = {"split": "train", "dataset_root": "synthetic", "skipped": 0, "dataset_fingerprint": "synthetic",
            "classes": [f"Landmark {i}" for i in range(50)], "class_folders": classes}
    write_index(root, enc, IndexArrays(emb, coords), items, meta)


def bench_end_to_end(weights: Path, tmp: Path, rng: np.random.Generator, n: int = 10) -> None:
    """Row 3: a /search call through gradio_client vs encoding alone."""
    from gradio_client import Client, handle_file

    from search.serving.engine import SearchEngine
    from ui.search_tab import search
    from ui.view import GalleryView

    root = tmp / "e2e-index"
    store = EncoderStore(tmp / "no-checkpoints", weights)
    synthetic_app_index(root, store, 6000, rng)
    engine = SearchEngine(root, tmp / "no-checkpoints", weights, names=("pretrained",))
    photo = tmp / "query.jpg"
    bench.synthetic_photo(rng).save(photo)
    image = open_image(photo)
    port = free_port()
    demo = launch(engine, "127.0.0.1", port, work_dir=tmp / "work", prevent_thread_lock=True, quiet=True)
    try:
        timings = {}
        for download in (False, True):
            client = Client(f"http://127.0.0.1:{port}/", verbose=False,
                            download_files=str(tmp / "downloads") if download else False)
            timings[download] = bench.median_ms(
                lambda: client.predict(handle_file(str(photo)), "pretrained", 9, api_name="/search"), repeat=n)
        view = GalleryView(engine, tmp / "work")
        server_ms = bench.median_ms(lambda: search(view, image, "pretrained", 9), repeat=n)
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
    from search.serving.engine import Hit
    from ui.figures import GalleryMap, map_value
    from ui.mapview import file_url

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
    from search.serving.explain import overlay, similarity_maps

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


PARTS = {"e2e": lambda ctx: bench_end_to_end(ctx.weights, ctx.tmp, ctx.rng),
         "map": lambda ctx: bench_map_bytes(ctx.rng),
         "explain": lambda ctx: bench_explain(ctx.weights, ctx.tmp, ctx.rng)}
