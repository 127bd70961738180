"""Readiness probes: one HTTP or TCP check against a service's port.

Cooperative (gevent sockets) so a hanging service never blocks the supervisor; each
check has its own deadline.
"""

from __future__ import annotations

from gevent import socket

from promenade_core.config import ReadyCheck

HOST = "127.0.0.1"


def check_tcp(port: int, timeout: float) -> bool:
    try:
        conn = socket.create_connection((HOST, port), timeout=timeout)
    except OSError:
        return False
    conn.close()
    return True


def check_http(port: int, path: str, timeout: float) -> bool:
    """GET `path`; a status of 200-399 counts as healthy."""
    try:
        conn = socket.create_connection((HOST, port), timeout=timeout)
    except OSError:
        return False
    try:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: promenade-health"
            f"\r\nAccept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n" not in head and len(head) < 1024:
            chunk = conn.recv(1024)
            if not chunk:
                break
            head += chunk
    except OSError:
        return False
    finally:
        conn.close()
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return False
    return 200 <= int(parts[1]) < 400


def probe(check: ReadyCheck, port: int) -> bool:
    timeout = max(0.2, min(check.interval, 5.0))
    if check.type == "tcp":
        return check_tcp(port, timeout)
    return check_http(port, check.path, timeout)
