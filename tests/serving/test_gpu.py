"""ZeroGPU: the model calls run under spaces.GPU on a ZeroGPU Space and unchanged on CPU elsewhere."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import torch

from search import config
from search.serving import gpu_calls
from search.serving.engine import SearchEngine
from tests.conftest import synthetic_image


def test_encode_paths_are_gpu_tasks_and_plain_calls_on_cpu(built, trained):
    for call in (gpu_calls.embed_image, gpu_calls.embed_batch, gpu_calls.similarity_maps):
        assert call.runs_on_gpu is True and call.zero_gpu is False  # no `spaces` here: a plain call
    engine = SearchEngine(built, trained)
    img = synthetic_image(0, np.random.default_rng(3))
    v = engine.embed("transfer", img)
    assert v.shape == (256,) and engine.backend("transfer").encoder.device == torch.device("cpu")
    many = engine.embed_many(["pretrained", "transfer"], img)
    np.testing.assert_allclose(many["transfer"], v, atol=1e-5)


def test_on_zero_gpu_the_decorator_is_spaces_gpu(monkeypatch):
    calls = []

    def GPU(duration=None):  # noqa: N802  (the spaces API)
        def wrap(fn):
            def on_gpu(*a, **k):
                calls.append(fn.__name__)
                return fn(*a, **k)
            return on_gpu
        return wrap

    spaces = types.SimpleNamespace(GPU=GPU, __spec__=importlib.machinery.ModuleSpec("spaces", None))
    monkeypatch.setitem(sys.modules, "spaces", spaces)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    from search.serving import gpu

    monkeypatch.setattr(gpu.importlib.util, "find_spec", lambda name: object() if name == "spaces" else None)

    @gpu.gpu_task
    def encode(x):
        return x * 2

    assert encode.zero_gpu is True and encode(21) == 42 and calls == ["encode"]


def test_models_move_to_the_device_inside_the_call(built, trained, monkeypatch):
    engine = SearchEngine(built, trained)
    monkeypatch.setattr(config, "device", lambda: torch.device("meta"))  # stands in for the GPU ZeroGPU attaches
    for b in engine.backends.values():
        assert gpu_calls.model(b.model) is b.encoder
        assert all(p.device.type == "meta" for m in b.encoder.modules for p in m.parameters())
