"""Hugging Face ZeroGPU support: a GPU is attached only while a `spaces.GPU`-decorated call runs.

`gpu_task` marks every call that runs a model (all of them in `search.serving.gpu_calls`). On a ZeroGPU Space (the
`spaces` package present and `SPACES_ZERO_GPU` set) it wraps them in `spaces.GPU`, which runs them in a forked worker
and pickles their arguments and results; everywhere else it changes nothing, so the same code runs on CPU.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

ZERO_GPU_ENV = "SPACES_ZERO_GPU"
GPU_SECONDS = 60  # ZeroGPU's own default for a call that names no duration


def on_zero_gpu() -> bool:
    """Whether this process is a ZeroGPU Space with the `spaces` package available."""
    return bool(os.environ.get(ZERO_GPU_ENV)) and importlib.util.find_spec("spaces") is not None


def gpu_task(fn: F | None = None, *, duration: int | Callable[..., int] = GPU_SECONDS):
    """Run `fn` under `spaces.GPU` on ZeroGPU; a plain call elsewhere. Marks it with `runs_on_gpu`. `duration` is
    the seconds the call may hold the GPU, or a function of the call's own arguments that says it (ZeroGPU's
    dynamic duration). Use as `@gpu_task` or `@gpu_task(duration=...)` on a module-level function whose arguments
    and result pickle."""
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
