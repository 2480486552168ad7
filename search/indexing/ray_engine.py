"""The Ray Data engine of the offline flow: the same reader, encoder and thumbnail writer as the local engine,
driven as a Ray Data pipeline so that one command scales from this machine to a cluster.

    photo paths (+ positions) --read_photo + encoder.embed + write_thumbnails, per worker actor--> shards
    (Parquet: position, embedding, thumbnail name) --the driver reads them back in order--> the writer

Each actor builds the encoder once from its recipe (checkpoint dir, weights, trunk) and checks that its weights'
fingerprint is the driver's, so every worker embeds with the very same model. A worker that dies is restarted
and its batch retried by Ray. Thumbnails are written by the workers, so on a cluster the index folder must be
on storage they all see.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from search import config
from search.errors import LandmarkError
from search.indexing.encode_stage import Encoded
from search.models.encoders import Encoder, EncoderStore, use_encoders
from search.photos.folders import warn_bad

RETRIES = 3


class EncodeBatch:
    """A Ray Data callable class: one encoder per worker actor, on the worker's GPU when it has one."""

    def __init__(self, recipe: dict, fingerprint: str, thumbs: str, threads: int = 1):
        import torch

        torch.set_num_threads(threads)  # Ray starts workers with one thread; use the CPUs this actor reserved

        use_encoders(recipe.get("encoders"))  # the driver's encoders file
        store = EncoderStore(Path(recipe["checkpoint_dir"]), Path(recipe["weights"]) if recipe["weights"] else None)
        self.encoder = store.load(recipe["name"], trunk=recipe["trunk"])
        if self.encoder.fingerprint != fingerprint:
            raise LandmarkError(f"worker loaded {recipe['name']} with weights {self.encoder.fingerprint}, the driver "
                                f"has {fingerprint}: the checkpoints must be the same files on every node.")
        self.thumbs = Path(thumbs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from search.indexing.writer import write_thumbnails
        from search.photos.reader import read_photo

        t0 = time.perf_counter()
        records = [read_photo(Path(p), self.encoder.transform, with_thumbnail=True) for p in batch["path"]]
        good = [r for r in records if r["image"] is not None]
        t1 = time.perf_counter()
        emb = np.zeros((len(records), self.encoder.dim), np.float32)
        if good:
            import torch

            vecs = self.encoder.embed(torch.stack([r["image"] for r in good])).numpy()
            emb[[i for i, r in enumerate(records) if r["image"] is not None]] = vecs
        t2 = time.perf_counter()
        write_thumbnails([r["thumb_name"] for r in good], [r["thumb_jpeg"] for r in good], self.thumbs)
        t3 = time.perf_counter()
        share = 1.0 / max(len(records), 1)
        return {"position": batch["position"], "embedding": emb,
                "ok": np.array([r["image"] is not None for r in records]),
                "thumb": np.array([r["thumb_name"] or "" for r in records], dtype=object),
                "error": np.array([r["error"] or "" for r in records], dtype=object),
                "read_s": np.full(len(records), (t1 - t0) * share),
                "encode_s": np.full(len(records), (t2 - t1) * share),
                "thumbnails_s": np.full(len(records), (t3 - t2) * share)}


def start(address: str | None = None) -> None:
    """Connect to the Ray cluster at `address`, or start Ray on this machine (its embedded default)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)


def encode_ray(encoder: Encoder, paths: Sequence[Path], thumbs: Path, index_root: Path,
               cfg: config.BuildConfig = config.BuildConfig()):
    """Embed `paths` with Ray Data: positions and order are kept, undecodable photos skipped with a warning."""
    import ray


    if encoder.recipe is None:
        raise LandmarkError("this encoder was not loaded by EncoderStore, so Ray workers cannot rebuild it")
    start(cfg.ray_address)
    batch_size, num_gpus_per_worker = cfg.batch_size, cfg.num_gpus_per_worker
    for stale in Path(index_root).glob(f".{encoder.name}.shards-*"):  # left by a killed build
        shutil.rmtree(stale, ignore_errors=True)
    cpus = int(ray.available_resources().get("CPU", 1))
    actors = cfg.workers or max(1, cpus // 2)
    # Each actor reserves one CPU (the rest stays free for Ray's read and write tasks) but may run torch on its
    # share of the node's cores.
    threads = max(1, cpus // actors) if not num_gpus_per_worker else 1
    shards = Path(tempfile.mkdtemp(dir=index_root, prefix=f".{encoder.name}.shards-"))
    try:
        ds = ray.data.from_items([{"position": i, "path": str(p)} for i, p in enumerate(paths)],
                                 override_num_blocks=max(1, min(len(paths) // batch_size, 64)))
        ds = ds.map_batches(EncodeBatch, batch_size=batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=num_gpus_per_worker or None,
                            fn_constructor_kwargs={"recipe": encoder.recipe, "fingerprint": encoder.fingerprint,
                                                   "thumbs": str(thumbs),
                                                   "threads": threads},
                            max_restarts=RETRIES, max_task_retries=RETRIES)
        ds.write_parquet(str(shards))
        import pyarrow.parquet as pq

        table = pq.read_table(str(shards)).to_pandas().sort_values("position")
    finally:
        shutil.rmtree(shards, ignore_errors=True)
    warn_bad([e for e in table["error"] if e])
    ok = table[table["ok"]]
    emb = np.stack(ok["embedding"].to_numpy()).astype(np.float32) if len(ok) else np.zeros((0, encoder.dim),
                                                                                          np.float32)
    stages = {k: float(table[f"{k}_s"].sum()) for k in ("read", "encode", "thumbnails")}
    return Encoded(emb, ok["position"].astype(int).tolist(), ok["thumb"].tolist(), stages)
