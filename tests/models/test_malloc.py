"""The C allocator keeps freed memory for the next training step instead of faulting it in again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_CYCLES = """
import resource, sys, torch
from search.models.malloc import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def step():  # two 40 MB blocks alive at once, written, then freed: what a training step does with its activations
    a, b = torch.ones(40 << 20, dtype=torch.uint8), torch.ones(40 << 20, dtype=torch.uint8)
    del a, b
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _CYCLES, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    default, kept = _page_faults("default"), _page_faults("keep")
    assert default > 10 * 20_480 * 0.5  # each 40 MB block is 10,240 fresh pages by default
    assert kept < default / 2
