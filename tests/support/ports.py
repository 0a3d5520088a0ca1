"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now.

    The kernel picks it (bind to port 0); the socket is closed before returning,
    so there is a small window in which another process could take it. Tests
    that need a port nothing will ever listen on should use :func:`dead_port`.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DeadPort:
    """A loopback port that is bound but never listened on.

    Connecting to it is refused (ECONNREFUSED) for as long as this object is
    open, and no other process can take the port meanwhile.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> DeadPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dead_port() -> DeadPort:
    return DeadPort()
