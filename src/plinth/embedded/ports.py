"""Loopback ports for embedded servers: reuse the last one, else any free one."""

from __future__ import annotations

import socket

__all__ = ["HOST", "free_port", "pick_port"]

HOST = "127.0.0.1"
"""Embedded servers listen on loopback only."""


def pick_port(recorded: int | None) -> int:
    """`recorded` if it is still free (clients keep their URL), else a free port."""
    if recorded is not None and _port_free(recorded):
        return recorded
    return free_port()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel has just found free on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port
