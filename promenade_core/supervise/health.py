"""Readiness probes: one HTTP or TCP check against a service's port, and their pace.

Cooperative (gevent sockets) so a hanging service never blocks the supervisor; each
check has its own deadline. Checks dial 127.0.0.1 and ::1 (`loopback`), so a server
bound to either is seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from promenade_core.config.model import ReadyCheck
from promenade_core.supervise.loopback import DIALER, LoopbackDialer, url_host

USER_AGENT = "promenade-health"
#: Once healthy, probes space out up to this: Flask, Django and http.server log every
#: request, and a 2 s probe left only probe lines in a 1,000-line buffer after 30 min.
HEALTHY_INTERVAL_MAX = 30.0


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    detail: str  # what was seen, for `-v`: "HTTP 500 from [::1]:5173", "connection refused"


def next_probe_delay(healthy_streak: int, interval: float) -> float:
    """Seconds until the next probe, after `healthy_streak` healthy probes in a row.

    While not healthy (streak 0) probes keep the configured pace; each healthy probe
    doubles the wait, up to HEALTHY_INTERVAL_MAX (never below the configured interval).
    A failure resets the streak, so a service going wrong is re-probed at once at the
    configured pace until it is healthy again.
    """
    if healthy_streak <= 0:
        return interval
    return max(interval, min(HEALTHY_INTERVAL_MAX, interval * 2.0 ** min(healthy_streak, 32)))


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return (exc.strerror or str(exc)).lower()


def check_tcp(port: int, timeout: float, dialer: LoopbackDialer = DIALER) -> ProbeResult:
    try:
        conn, host = dialer.connect(port, timeout)
    except OSError as exc:
        return ProbeResult(False, f"tcp port {port}: {_reason(exc)}, on 127.0.0.1 and ::1")
    conn.close()
    return ProbeResult(True, f"tcp {url_host(host)}:{port} accepted")


def check_http(port: int, path: str, timeout: float,
               dialer: LoopbackDialer = DIALER) -> ProbeResult:
    """GET `path`; a status of 200-399 counts as healthy."""
    try:
        conn, host = dialer.connect(port, timeout)
    except OSError as exc:
        return ProbeResult(False, f"GET {path} on port {port}: {_reason(exc)} "
                                  "on 127.0.0.1 and ::1")
    where = f"GET http://{url_host(host)}:{port}{path}"
    try:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: {USER_AGENT}"
            f"\r\nAccept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n" not in head and len(head) < 1024:
            chunk = conn.recv(1024)
            if not chunk:
                break
            head += chunk
    except OSError as exc:
        return ProbeResult(False, f"{where}: {_reason(exc)}")
    finally:
        conn.close()
    parts = head.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return ProbeResult(False, f"{where}: not an HTTP response ({head[:40]!r})")
    status = int(parts[1])
    return ProbeResult(200 <= status < 400, f"{where}: HTTP {status}")


def probe(check: ReadyCheck, port: int) -> ProbeResult:
    timeout = max(0.2, min(check.interval, 5.0))
    if check.type == "tcp":
        return check_tcp(port, timeout)
    return check_http(port, check.path, timeout)
