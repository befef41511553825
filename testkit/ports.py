"""Free TCP ports on the loopback interface, for the servers and ops endpoints a test starts."""

from __future__ import annotations

import socket


def _bind(port: int) -> int | None:
    """The port bound (0: any free one) and released again, or None when it is taken."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
        return int(sock.getsockname()[1])


def free_port(*, with_next: bool = False) -> int:
    """A port free now; with ``with_next``, one whose next port is free too (Kafka's controller listens
    there)."""
    while True:
        port = _bind(0)
        assert port is not None
        if not with_next or _bind(port + 1) is not None:
            return port
