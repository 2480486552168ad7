"""A stand-in for Hugging Face's `spaces` package (0.51) in tests that keeps its process boundary.

On ZeroGPU, `spaces.GPU` runs the function in a forked worker: the call's `(args, kwargs)` go to it, and its result
comes back, through a multiprocessing queue, so both are pickled (`spaces/zero/wrappers.py`: `arg_queue.put(((args,
kwargs), ...))`, `res_queue.put(OkResult(res))`, each a `SimpleQueue` of the fork context). Here both are pickled
with the same pickler (multiprocessing's ForkingPickler) and unpickled in this process, because a forked CPU worker
deadlocks in torch's OpenMP pool. As there, an argument that cannot be pickled raises `PicklingError` to the caller,
and an exception inside the call reaches the caller as a `gr.Error` naming only its class ("ZeroGPU worker error"),
unless it is a `gr.Error` itself. `inside_gpu()` says whether this thread is inside a call; `calls` records each call
with the duration it asked for.
"""

from __future__ import annotations

import functools
import pickle
import threading
from multiprocessing.reduction import ForkingPickler

_state = threading.local()
calls: list[tuple[str, int]] = []


def _across(obj):
    """`obj` as the other side of ZeroGPU's queue receives it (the queue's put: errors naming pickle are a
    PicklingError)."""
    try:
        data = ForkingPickler.dumps(obj)
    except pickle.PicklingError:
        raise
    except Exception as exc:
        if "pickle" not in str(exc):
            raise
        raise pickle.PicklingError(str(exc)) from exc
    return pickle.loads(data)


def GPU(fn=None, duration=60):  # noqa: N802  (the spaces API)
    def wrap(f):
        @functools.wraps(f)
        def on_gpu(*args, **kwargs):
            seconds = duration(*args, **kwargs) if callable(duration) else duration
            calls.append((f.__name__, int(seconds.total_seconds() if hasattr(seconds, "total_seconds") else seconds)))
            args, kwargs = _across((args, kwargs))
            _state.depth = getattr(_state, "depth", 0) + 1
            try:
                result = _across(f(*args, **kwargs))  # a result that cannot be pickled fails in the worker
            except Exception as exc:
                import gradio as gr

                if isinstance(exc, gr.Error):
                    raise _across(exc) from None
                raise gr.Error(type(exc).__name__, title="ZeroGPU worker error", print_exception=False) from None
            finally:
                _state.depth -= 1
            return result
        return on_gpu
    return wrap(fn) if fn is not None else wrap


def inside_gpu() -> bool:
    """Whether this thread is inside a `GPU`-decorated call."""
    return getattr(_state, "depth", 0) > 0
