"""`port: auto`: which free loopback port a service gets at each start.

The decision (`pick`) is pure: the previous run's port when it is still free, else the
first candidate that is free and not claimed. Keeping the last port is for the people
and tools that remember it (a bookmark, a browser tab reconnecting its HMR socket, a
curl in the shell history); it holds for as long as the manager runs and nobody else
took the port meanwhile. A named URL (the router) is what stays stable beyond that.

The I/O sits in the two defaults. Candidates come from the kernel: binding
127.0.0.1:0 hands out a port no socket is bound to, which is then closed for the
service to take. "Free" is the port preflight's own test (`ports.port_in_use`: a bind
of 0.0.0.0 and [::], so the port is free on 127.0.0.1 and ::1 both, and on every other
address a dev server started with `--host` would take). Like the preflight it sets
SO_REUSEADDR, so a port whose only traces are TIME_WAIT connections of the last run
(those a probe leaves) still counts as free: dev servers set SO_REUSEADDR too.

Between the pick and the service's own bind another program may take the port; the
service then fails as with any taken port and its restart policy's next start picks
again. Standard library only.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Collection, Iterable, Iterator

from promenade_core.config.model import Config
from promenade_core.supervise import ports

#: Candidates tried before giving up (each is one bind and one preflight).
ATTEMPTS = 20


def pick(previous: int | None, claimed: Collection[int],
         is_free: Callable[[int], bool] | None = None,
         candidates: Iterable[int] | None = None) -> int | None:
    """The port for this start: `previous` when free and unclaimed, else the first free
    unclaimed candidate among ATTEMPTS; None when none is (the start fails)."""
    is_free = available if is_free is None else is_free
    if previous is not None and previous not in claimed and is_free(previous):
        return previous
    for port in itertools.islice(kernel_ports() if candidates is None else candidates,
                                 ATTEMPTS):
        if port not in claimed and is_free(port):
            return port
    return None


def available(port: int) -> bool:
    """Free on every address, as the port preflight judges it."""
    return not ports.port_in_use(port)


def kernel_ports() -> Iterator[int]:
    """Ports the kernel hands out for 127.0.0.1:0, one bind each; ends when it cannot
    bind at all (out of descriptors)."""
    while True:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
        except OSError:
            return
        yield port


def claimed_ports(config: Config) -> set[int]:
    """Every port the config names (the dashboard, the TCP bus, fixed service ports,
    CORS proxies): never handed to an auto service, even while its owner is stopped."""
    found = {config.manager.port}
    if config.manager.bus_tcp:
        found.add(int(config.manager.bus_tcp.rpartition(":")[2]))
    for svc in config.services.values():
        found.update(p for p in (svc.port, svc.cors_proxy_port) if p is not None)
    return found
