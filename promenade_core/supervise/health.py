"""Readiness checks: what their results mean (pure), their pace, and the HTTP and TCP
probes of a service's port.

`judge` turns one check's result into the service's health, the one-time "not healthy
after N s" warning and the `restart_after_failures` decision; the greenlets in
`readiness` only run checks, sleep and do what it says. Probes are cooperative (gevent
sockets) so a hanging service never blocks the supervisor; each has its own deadline.
They dial 127.0.0.1 and ::1 (`loopback`), so a server bound to either is seen. The
exec check's command is `execcheck`'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from promenade_core.config.model import ReadyCheck
from promenade_core.logformat import strip_ansi
from promenade_core.supervise.loopback import DIALER, LoopbackDialer, url_host
from promenade_core.supervise.states import Health

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


def check_delay(check: ReadyCheck, healthy_streak: int) -> float:
    """Seconds from the end of one check to the next.

    HTTP and TCP probes space out once healthy (`next_probe_delay`: servers log each
    request); an exec check runs every `interval`, as docker compose's do: its command
    usually leaves no trace, and `restart_after_failures` then notices a failure within
    one interval.
    """
    if check.needs_port:
        return next_probe_delay(healthy_streak, check.interval)
    return check.interval


@dataclass(frozen=True)
class Tally:
    """What the checks of one run have shown so far."""

    passes: int = 0             # checks passed in a row (the pace of probes)
    failures: int = 0           # checks failed in a row
    was_healthy: bool = False   # a check has passed in this run


@dataclass(frozen=True)
class Verdict:
    """What one check's result means."""

    tally: Tally
    health: Health      # the service's health from now on
    overdue: bool       # say "NAME is not healthy after N s" (once: health leaves WAITING)
    restart: bool       # restart the service (`restart_after_failures` reached)


def judge(tally: Tally, health: Health, passed: bool, past_timeout: bool,
          restart_after: int | None) -> Verdict:
    """The meaning of one check: `health` is the service's health before it,
    `past_timeout` whether the run's `timeout` has passed.

    A pass makes it healthy. A failure makes a healthy service unhealthy at once, and a
    still-waiting one only once `timeout` has passed (reported then, once). A service
    that was healthy in this run is restarted after `restart_after` failures in a row;
    failures before its first pass never restart it (it may just be slow to start;
    `timeout` covers that, by reporting).
    """
    if passed:
        return Verdict(Tally(tally.passes + 1, 0, True), Health.HEALTHY, False, False)
    failures = tally.failures + 1
    overdue = health == Health.WAITING and past_timeout
    if health == Health.HEALTHY or overdue:
        health = Health.UNHEALTHY
    restart = (restart_after is not None and tally.was_healthy
               and failures >= restart_after)
    return Verdict(Tally(0, failures, tally.was_healthy), health, overdue, restart)


def restart_reason(failures: int, detail: str) -> str:
    """Why the service is restarted, as logged: `api restarted (REASON)`."""
    checks = "check" if failures == 1 else "checks in a row"
    return f"unhealthy: {failures} failed {checks} ({detail})"


def first_match(pattern: re.Pattern[str], lines: Iterable[str]) -> str | None:
    """The first line (colour and other escape codes stripped) in which `pattern` is
    found (`re.search`), or None. Tools colour "ready in 312 ms" on a terminal, and a
    pattern is written against the text one sees."""
    for line in lines:
        text = strip_ansi(line)
        if pattern.search(text):
            return text
    return None


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
    """One HTTP or TCP probe (the types that check the port)."""
    timeout = max(0.2, min(check.interval, 5.0))
    if check.type == "tcp":
        return check_tcp(port, timeout)
    return check_http(port, check.path, timeout)
