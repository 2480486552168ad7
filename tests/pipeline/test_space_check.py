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


def test_the_apps_port_is_drawn_where_no_outgoing_connection_can_take_it():
    """space_check.py (and the tests) start an app on a port found free seconds earlier: drawn from the kernel's
    ephemeral range, any outgoing connection may take it meanwhile (the app then fails with 'Port ... is already in
    use'). The port and the next one (Python's behind Gradio's SSR proxy) are free and below that range."""
    import socket
    from pathlib import Path

    from scripts.benchmarks.ports import free_port

    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(20):
        port = free_port()
        assert 1024 < port and port + 1 < low, (port, low)
        for candidate in (port, port + 1):
            with socket.socket() as s:
                s.bind(("127.0.0.1", candidate))
