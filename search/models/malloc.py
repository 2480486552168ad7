"""The C allocator told to keep freed memory for reuse (glibc's mallopt(3)).

By default glibc hands every large block (above a threshold it raises up to 32 MB) to the kernel when it is freed and
asks for fresh pages when the next one is allocated, so every activation, gradient and augmented batch a training
step creates is faulted in page by page again (measured: 3,318 page faults in each scratch training step, and an
augmentation matrix product 15x slower on a fresh output than on a reused one). With the mmap threshold and the
trim threshold raised, freed blocks stay in the process and the next step reuses them: the process keeps its peak
memory instead of handing it back between steps. This is what the jemalloc / tcmalloc preloads of CPU tuning guides
do, without a preload."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

from search import config

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
_KEEP = 2**31 - 1  # bytes (mallopt takes a C int): far above any block a training step or a batch encode allocates


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse (once per process, when config.KEEP_FREED_MEMORY); whether it did."""
    if not (config.KEEP_FREED_MEMORY and sys.platform.startswith("linux")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, _KEEP)) and bool(libc.mallopt(M_TRIM_THRESHOLD, _KEEP))
    except (OSError, AttributeError):  # another C library (musl has no mallopt): its own defaults stay
        return False
