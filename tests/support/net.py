"""Ports picked free at run time, so parallel test runs never collide."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port6() -> int:
    """A port free on ::1 and on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
