"""The ZeroGPU stand-in's guard: every convolution and linear layer fails when it runs outside a `spaces.GPU` call,
as a model on ZeroGPU would (there is no GPU outside a call). Every encoder here is made of these layers."""

from __future__ import annotations

import spaces
import torch


def install() -> None:
    """Make Conv2d and Linear raise when they run outside a `spaces.GPU` call (this process, from now on)."""

    def guarded(forward):
        def call(self, *args, **kwargs):
            if not spaces.inside_gpu():
                raise RuntimeError(f"{type(self).__name__} ran outside a spaces.GPU call")
            return forward(self, *args, **kwargs)
        return call

    for layer in (torch.nn.Conv2d, torch.nn.Linear):
        layer.forward = guarded(layer.forward)
