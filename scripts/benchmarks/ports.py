"""A free TCP port for an app to bind, for space_check.py, the app benchmark and the tests (no torch imported)."""

from __future__ import annotations

import contextlib
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, nor on the next one (Gradio's SSR proxy takes the
    port and moves Python to the next), drawn below the kernel's ephemeral range: a port from that range may be
    taken by any outgoing connection in the seconds before an app binds it."""
    import random
    import socket

    low = 32768  # Linux's default start of the ephemeral range (macOS and Windows start at 49152)
    with contextlib.suppress(OSError, ValueError, IndexError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    draw = random.SystemRandom()  # not the seedable generator: parallel processes must not draw alike
    for _ in range(200):
        port = draw.randrange(10000, max(low, 10002) - 1)
        try:
            for candidate in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise OSError("No free TCP port below the ephemeral range on 127.0.0.1.")
