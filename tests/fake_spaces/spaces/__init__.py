"""A stand-in for Hugging Face's `spaces` package in tests: `GPU` marks the time inside a decorated call (per
thread, as ZeroGPU attaches a GPU to the call) and records each call with the duration it asked for."""

from __future__ import annotations

import functools
import threading

_state = threading.local()
calls: list[tuple[str, int]] = []


def GPU(fn=None, duration=60):  # noqa: N802  (the spaces API)
    def wrap(f):
        @functools.wraps(f)
        def on_gpu(*args, **kwargs):
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            calls.append((f.__name__, int(seconds)))
            _state.depth = getattr(_state, "depth", 0) + 1
            try:
                return f(*args, **kwargs)
            finally:
                _state.depth -= 1
        return on_gpu
    return wrap(fn) if fn is not None else wrap


def inside_gpu() -> bool:
    """Whether this thread is inside a `GPU`-decorated call."""
    return getattr(_state, "depth", 0) > 0
