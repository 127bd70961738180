"""Dialling a service on this machine: 127.0.0.1, then ::1.

A dev server bound only to `::1` (Vite on a recent Node, where `localhost` resolves to
::1 first) refuses 127.0.0.1, so health checks and the CORS proxy try both, and try
first the address that last answered on that port. A refused connection on loopback
fails at once, so the second try costs nothing for a server on 127.0.0.1.

gevent sockets: the supervisor's hub is not monkey-patched.
"""

from __future__ import annotations

from gevent import socket

LOOPBACK = ("127.0.0.1", "::1")


class LoopbackDialer:
    """Connects to a port on loopback, remembering per port which address answered."""

    def __init__(self) -> None:
        self._answered: dict[int, str] = {}

    def order(self, port: int) -> tuple[str, ...]:
        first = self._answered.get(port, LOOPBACK[0])
        return (first, *(host for host in LOOPBACK if host != first))

    def connect(self, port: int, timeout: float) -> tuple[socket.socket, str]:
        """A connected socket and the address it reached; the first address's error
        when none answers (the IPv4 one, unless ::1 answered here before)."""
        first_error: OSError | None = None
        for host in self.order(port):
            try:
                sock = socket.create_connection((host, port), timeout=timeout)
            except OSError as exc:
                first_error = first_error or exc
                continue
            self._answered[port] = host
            return sock, host
        assert first_error is not None  # LOOPBACK is not empty
        raise first_error


def url_host(host: str) -> str:
    """`127.0.0.1` or `[::1]`, as in a URL."""
    return f"[{host}]" if ":" in host else host


#: Shared by the health checks and the CORS proxies of one supervisor: both dial the
#: service's own port, so what one learnt saves the other a refused connection.
DIALER = LoopbackDialer()
