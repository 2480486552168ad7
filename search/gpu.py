"""Hugging Face ZeroGPU support: a GPU is attached only while a `spaces.GPU`-decorated call runs.

`gpu_task` marks every call that runs a model: search and compare (`SearchEngine.embed_with_trunk`), the
explanations' backward pass, and a private gallery's build (`sessions.build_on_gpu`, for a duration that grows with
its photos). On a ZeroGPU Space (the `spaces` package present and `SPACES_ZERO_GPU` set) it wraps them in
`spaces.GPU`; everywhere else it changes nothing, so the same code runs on CPU. Models are put on
`config.device()` once, when they are loaded at start (CUDA on ZeroGPU, which emulates it outside a call, as its
docs ask); `SearchEngine.on_device` moves them only if the device changes.
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


def gpu_task(fn: F | None = None, *, duration: int | Callable[..., int] = GPU_SECONDS):
    """Run `fn` under `spaces.GPU` on ZeroGPU; a plain call elsewhere. Marks it with `runs_on_gpu`. `duration` is
    the seconds the call may hold the GPU, or a function of the call's own arguments that says it (ZeroGPU's
    dynamic duration). Use as `@gpu_task` or `@gpu_task(duration=...)`."""
    if fn is None:
        return lambda f: gpu_task(f, duration=duration)
    wrapped = fn
    if on_zero_gpu():
        import spaces

        wrapped = spaces.GPU(duration=duration)(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return wrapped(*args, **kwargs)

    call.runs_on_gpu = True  # type: ignore[attr-defined]
    call.zero_gpu = wrapped is not fn  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]
