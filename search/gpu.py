"""Hugging Face ZeroGPU support: a GPU is attached only while a `spaces.GPU`-decorated call runs.

`gpu_task` marks the calls that run the encoders. On a ZeroGPU Space (the `spaces` package present and
`SPACES_ZERO_GPU` set) it wraps them in `spaces.GPU`; everywhere else it changes nothing, so the same code
runs on CPU. Inside the call, `SearchEngine` moves its models to `config.device()` (CUDA there), as ZeroGPU
requires: outside a decorated call no GPU exists.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)

ZERO_GPU_ENV = "SPACES_ZERO_GPU"
GPU_SECONDS = 60  # longest a decorated call may hold the GPU (an explanation of VGG16 takes well under 1 s)


def on_zero_gpu() -> bool:
    """Whether this process is a ZeroGPU Space with the `spaces` package available."""
    return bool(os.environ.get(ZERO_GPU_ENV)) and importlib.util.find_spec("spaces") is not None


def gpu_task(fn: F) -> F:
    """Run `fn` under `spaces.GPU` on ZeroGPU; a plain call elsewhere. Marks it with `runs_on_gpu`."""
    wrapped = fn
    if on_zero_gpu():
        import spaces

        wrapped = spaces.GPU(duration=GPU_SECONDS)(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return wrapped(*args, **kwargs)

    call.runs_on_gpu = True  # type: ignore[attr-defined]
    call.zero_gpu = wrapped is not fn  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]
