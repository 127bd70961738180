"""Listening sockets on loopback ports 443 and 80, handed to a user over SCM_RIGHTS.

Only root may bind below 1024, and the router runs as the user: hostsd binds, listens
and passes the descriptor. Nothing else: two ports, two addresses, options set here
before the bind, and the socket leased to the connection that asked. Ending the lease
shuts the socket down, which stops it listening in every process holding a copy (they
share one open file description), so a copy leaked to a child cannot keep the port.
"""

from __future__ import annotations

import contextlib
import socket
from typing import NamedTuple

PORTS = (443, 80)
ADDRESSES = ("127.0.0.1", "::1")


class Held(NamedTuple):
    """hostsd's copy of a socket it handed out, and who holds it (pid None off Linux)."""

    sock: socket.socket
    lease: int | None  # never None: `listen` takes no `persist`
    pid: int | None
    uid: int


def listen_problem(port: object, address: object) -> tuple[str, str] | None:
    """(code, message) for what hostsd will not bind, or None."""
    if type(port) is not int or port not in PORTS:
        return "invalid_port", f"port {port!r} is not 443 or 80: hostsd binds nothing else"
    if address not in ADDRESSES:
        return "invalid_address", f"address {address!r} is not 127.0.0.1 or ::1 (loopback)"
    return None


def open_listener(address: str, port: int) -> socket.socket:
    """Python creates it close-on-exec (PEP 446); `::1` is IPv6 only, never dual-stack."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def release(held: Held, revoke: bool) -> None:
    """Close our copy; `revoke` first stops it listening everywhere (Linux: shutdown)."""
    if revoke:
        with contextlib.suppress(OSError):
            held.sock.shutdown(socket.SHUT_RDWR)
    held.sock.close()
