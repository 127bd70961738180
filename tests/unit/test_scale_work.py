"""Work that must grow no faster than the number of services (issue 16, 200 services).

Each test counts calls on a fake: N services → a bounded or O(N) number of scans,
events or lookups, never N x N.
"""

from __future__ import annotations

import signal
from typing import Any, cast

import gevent.event

from promenade_core.router.client import RouterLink, held_names
from promenade_core.router.protocol import RouteWire
from promenade_core.supervise.descendants import SIGNAL_SCAN_AGE, Descendants
from promenade_core.supervise.osproc import ProcessOps, Spawned
from promenade_core.supervise.procstats import ProcStat

SERVICES = 200


class _Popen:
    def __init__(self, pid: int) -> None:
        self.pid = pid


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _GoneGroups(ProcessOps):
    """Every process group is already gone (no signal reaches the system)."""

    def _killpg(self, pgid: int, sig: int) -> None:
        raise ProcessLookupError(pgid)


def _spawned(pid: int) -> Spawned:
    return Spawned(cast(Any, _Popen(pid)), -1, -1, gevent.event.AsyncResult())


def test_a_shutdown_without_cgroups_scans_proc_once_not_once_per_service() -> None:
    """Stopping 200 services without cgroups took 200 scans of /proc (each over every
    process: N x N), 1.1 s at N=200: signals sent together share one fresh scan."""
    scans: list[float] = []
    clock = _Clock()

    def scan() -> dict[int, ProcStat]:
        scans.append(clock.now)
        return {}

    tracker = Descendants(5, "inst", lambda pgid, alive: None, scan=scan, clock=clock)
    ops = _GoneGroups(tracker=tracker)
    trees = [_spawned(100 + i) for i in range(SERVICES)]
    for spawned in trees:
        tracker.add(spawned.pid, f"s{spawned.pid}")
    scans.clear()   # the constructor's scan (our children before any service)
    for spawned in trees:
        ops.signal_tree(spawned, signal.SIGTERM)
    assert len(scans) == 1
    clock.now += 2 * SIGNAL_SCAN_AGE   # a later stop sees what escaped meanwhile
    ops.signal_tree(trees[0], signal.SIGKILL)
    assert len(scans) == 2


class _Link(RouterLink):
    """The link without a socket: every request is accepted."""

    def _ask(self, sock: Any, stream: Any, request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}


def _route(i: int, status: str) -> RouteWire:
    return {"name": f"s{i}.app.localhost", "port": 5000 + i, "service": f"s{i}",
            "status": status, "status_reason": None, "tls": True}


def test_route_status_changes_republish_no_url_and_urls_are_looked_up_directly() -> None:
    """Every status change of a routed service changed the held routes, and each change
    republished every service's status (N events, each walking N routes for its URL):
    N routed services starting cost N x N events. Only a change of names does now."""
    statuses = ["starting"] * SERVICES
    changed: list[int] = []
    link = _Link(cast(Any, "/p"), lambda: [_route(i, s) for i, s in enumerate(statuses)],
                 lambda text, level="info": None, lambda: changed.append(1))
    link._info = {"https_port": 7443}
    link._sync(cast(Any, None), None)
    assert len(changed) == 1   # the first routes: every URL is new
    for i in range(SERVICES):
        statuses[i] = "running"
        link._sync(cast(Any, None), None)
    assert len(changed) == 1
    assert link.url_for("s7") == "https://s7.app.localhost:7443"
    assert link.url_for("nope") is None


def test_held_names_keeps_each_services_first_route() -> None:
    first, second = _route(1, "running"), _route(1, "running")
    second["name"] = "other.app.localhost"
    assert held_names([first, second, _route(2, "stopped")]) == {
        "s1": "s1.app.localhost", "s2": "s2.app.localhost"}
