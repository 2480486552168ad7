"""Every model call of the app, as module-level functions that cross ZeroGPU's process boundary.

ZeroGPU runs a `spaces.GPU` function in a forked worker and sends it the call's arguments, and sends back its result,
through a multiprocessing queue: both are pickled. So the models never travel: each is loaded once at start and kept
here by a short key (`keep`), which the forked worker inherits with the rest of the process. A call names its models
by key and carries only an image, a batch as a numpy array, or keys; it returns numpy arrays.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from search import config
from search.errors import LandmarkError
from search.models.encoders import Encoder, embed_shared, embed_shared_with_trunk, group_by_input
from search.serving.explain import Explanation
from search.serving.explain import similarity_maps as _similarity_maps
from search.serving.gpu import gpu_task

# Seconds each call may hold the GPU (ZeroGPU serves shorter requests first): the slowest of three runs on 2 CPU
# cores with VGG16, times three or more for a worker's first call (it moves the models to the GPU); a GPU is faster.
SEARCH_SECONDS = 10    # one photo under every encoder (compare): 0.20 s on the CPU
EXPLAIN_SECONDS = 10   # one Grad-CAM backward pass over two photos under VGG16: 0.42 s on the CPU
BATCH_SECONDS = 20     # BUILD_BATCH photos through VGG16 and its heads: 6.35 s on the CPU (the scratch CNN: 0.11 s)
BUILD_BATCH = 32       # photos per GPU call of a private gallery's build (its progress moves once per call)

# Weak: an engine that is dropped takes its models with it.
_models: weakref.WeakValueDictionary[str, Encoder] = weakref.WeakValueDictionary()


def keep(encoder: Encoder) -> str:
    """Keep a loaded encoder for the GPU calls; the key that names it in a call."""
    key = f"{encoder.name}-{id(encoder):x}"
    _models[key] = encoder
    return key


def model(key: str) -> Encoder:
    """The encoder kept under `key`, on the device of this call (on ZeroGPU the GPU exists only inside a call)."""
    encoder = _models.get(key)
    if encoder is None:
        raise LandmarkError(f"The model {key} was not loaded when the app started, so no GPU call can run it.")
    device = config.device()
    if encoder.device != device:
        encoder.to(device)
    return encoder


@gpu_task(duration=SEARCH_SECONDS)
def embed_image(keys: Sequence[str], image: Image.Image) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One RGB photo under several encoders (each shared trunk run once): each key's unit vector, and for the
    trunk-based ones the unit vector of the trunk's own features (what an open-set confidence reads)."""
    out: dict[str, np.ndarray] = {}
    trunk_out: dict[str, np.ndarray] = {}
    encoders = {key: model(key) for key in keys}
    key_of = {id(e): k for k, e in encoders.items()}
    for encs in group_by_input(list(encoders.values())):
        vectors, feats = embed_shared_with_trunk(encs, encs[0].transform(image)[None])
        unit = None if feats is None else torch.nn.functional.normalize(feats.float(), dim=1)[0].cpu().numpy()
        for enc, vec in zip(encs, vectors):
            out[key_of[id(enc)]] = vec[0].numpy()
            if unit is not None:
                trunk_out[key_of[id(enc)]] = unit
    return out, trunk_out


@gpu_task(duration=BATCH_SECONDS)
def embed_batch(keys: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
    """A preprocessed batch (N, 3, H, W) under encoders that take the same input (one trunk pass): (N, dim) each."""
    return [v.numpy() for v in embed_shared([model(k) for k in keys], torch.from_numpy(batch))]


@gpu_task(duration=EXPLAIN_SECONDS)
def similarity_maps(key: str, query: Image.Image, hit: Image.Image) -> Explanation:
    """Grad-CAM of the query-hit similarity under one encoder (`explain.similarity_maps`)."""
    return _similarity_maps(model(key), query, hit)


def batch_embedder(encoders: Sequence[Encoder]):
    """What the encode stage calls per batch to run these encoders through the GPU calls (for a private build)."""
    keys = {id(e): keep(e) for e in encoders}

    def embed(group: Sequence[Encoder], batch: torch.Tensor) -> list[np.ndarray]:
        return embed_batch([keys[id(e)] for e in group], batch.numpy())

    return embed
