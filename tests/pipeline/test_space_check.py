"""The app as a ZeroGPU Space runs it (the pickled GPU boundary, the prepared demo from a Hub cache of symlinks
outside the temp dir, server-side rendering), used through the default gradio_client: `scripts/space_check.py`,
as a user types it before publishing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_space_check_passes_every_step(built, trained):
    from search.pipeline.prepare import loadable_indexes
    from search.study.store import ensure

    ensure(built, loadable_indexes(built), log=lambda s: None)  # a published demo carries its study
    r = subprocess.run([sys.executable, "scripts/space_check.py", "--index-dir", str(built), "--checkpoint-dir",
                        str(trained)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(("ok ", "FAILED "))]
    assert r.returncode == 0 and "9 passed, 0 failed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    steps = {ln.split()[1] for ln in lines}
    assert {"search", "compare", "explain", "my_gallery", "search_mine", "another"} <= steps
    assert "behind Gradio's Node proxy" in r.stdout  # SSR was on
