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


def dial(host: str, port: int, timeout: float) -> socket.socket:
    """A connected socket to `host:port`. An address is dialled as it is: gevent's
    `create_connection` asks its resolver first, a thread-pool round trip per probe
    (and the IDNA codec's import at the first), which at start-up, with a check per
    service, was CPU the services' own start did not get."""
    if not _is_address(host):
        return socket.create_connection((host, port), timeout=timeout)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _is_address(host: str) -> bool:
    """An IPv4 or IPv6 literal (no name to resolve)."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except (OSError, ValueError):
        return False
    return True


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
                sock = dial(host, port, timeout)
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
