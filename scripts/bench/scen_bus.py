"""Promenade-only scenarios: the bus under a flood, and memory with readers that stall.

- `bus_throughput`: one service floods N lines; a subscriber to the whole feed counts
  lines and messages per second and seq gaps (issue 3's events/s).
- `memory_bound`: a 10 s flood with a bus subscriber that joined and never reads and
  a WebSocket client that handshook and never reads (a browser tab in the
  background); the manager processes' PSS must stay within 20 MB of where it began.
"""

from __future__ import annotations

import json
import time
from typing import Any

import procs
from observe import Observer, start_all
from peers import Manager, Service
from runner import Context, ManagerRun, wait_for
from scen_latency import CATCH_UP_S, StdoutCollector

SAMPLE_S = 0.2


def bus_throughput(ctx: Context, manager: Manager, lines: int) -> dict[str, Any]:
    scratch = ctx.scratch("bus")
    go, done = scratch / "go", scratch / "flood.done"
    services = [Service("flood", ctx.py("flood", "F", lines, done, go, "sleep"))]
    with ManagerRun(ctx, manager, services, "bus") as run:
        collector = StdoutCollector(run.fd)
        collector.start()
        watcher = Observer(ctx, run, "bus", "--config", str(run.launch.config))
        try:
            problem = start_all([watcher])
            if problem:
                return {"error": problem}
            go.touch()
            wait_for(done.exists, 120)
            wait_for(lambda: collector.flood_lines >= lines, CATCH_UP_S)
            time.sleep(0.5)
            data = watcher.result()
        finally:
            collector.halt.set()
            collector.join(2)
            watcher.kill()
            run.drain()
    if data is None:
        return {"error": f"no result from the subscriber: {watcher.error()}"}
    span = (data["last_ns"] - data["first_ns"]) / 1e9
    got = int(data["tags"].get("F", 0))
    return {
        "bus_lines": got,
        "bus_lost": lines - got,
        "bus_gaps": data["gaps"],
        "bus_lines_per_s": got / span if span > 0 else None,
        "bus_messages_per_s": data["messages"] / span if span > 0 else None,
        "lines_per_message": got / data["messages"] if data["messages"] else None,
    }


def _pss(run: ManagerRun) -> tuple[float, int]:
    pids = run.processes().manager
    return procs.total_pss_mb(pids), len(pids)


def _role(pid: int) -> str:
    """`web` for the dashboard's process, `router` for the user's router (started by a
    default config: `manager.router`), else `manager` (the reaper is a few KB)."""
    cmd = procs.cmdline(pid)
    if "promenade_web" in cmd:
        return "web"
    return "router" if "promenade_core.router" in cmd else "manager"


def _pss_by_role(run: ManagerRun) -> dict[str, float]:
    """Where a growth goes: the supervisor's queues or the web process's."""
    by_role: dict[str, float] = {}
    for pid in run.processes().manager:
        role = _role(pid)
        by_role[role] = by_role.get(role, 0.0) + procs.pss_kb(pid) / 1024
    return by_role


def memory_bound(ctx: Context, manager: Manager, seconds: float,
                 stalled: bool = True) -> dict[str, Any]:
    """`stalled=False` runs the same flood with no stalled readers (to tell causes apart)."""
    scratch = ctx.scratch("memory")
    go, done = scratch / "go", scratch / "flood.done"
    services = [Service("flood", ctx.py("flood-for", "F", seconds, done, go))]
    with ManagerRun(ctx, manager, services, "memory") as run:
        collector = StdoutCollector(run.fd)
        collector.start()
        # An Observer starts its process at once: build none for `stalled=False`.
        watchers = [Observer(ctx, run, "bus-stall", "--config", str(run.launch.config))
                    ] if stalled else []
        if stalled and run.launch.web_port:
            url = f"ws://127.0.0.1:{run.launch.web_port}/api/logs/stream"
            watchers.append(Observer(ctx, run, "ws-stall", "--url", url))
        try:
            problem = start_all(watchers)
            if problem:
                return {"error": problem}
            time.sleep(1.0)  # the web process and the bus settle after the joins
            start_mb, count = _pss(run)
            start_roles = _pss_by_role(run)
            peak_roles = dict(start_roles)
            go.touch()
            peak_mb = start_mb
            while not done.exists() and time.monotonic() - run.t0 < seconds + 60:
                time.sleep(SAMPLE_S)
                roles = _pss_by_role(run)
                peak_mb = max(peak_mb, sum(roles.values()))
                peak_roles = {r: max(v, roles.get(r, 0.0)) for r, v in peak_roles.items()}
            end_mb = _pss(run)[0]
        finally:
            collector.halt.set()
            collector.join(2)
            for watcher in watchers:
                watcher.kill()
            run.drain()
    flood = json.loads(done.read_text()) if done.exists() else {}
    return {
        "pss_start_mb": start_mb,
        "pss_peak_mb": max(peak_mb, end_mb),
        "growth_mb": max(peak_mb, end_mb) - start_mb,
        "manager_processes": count,
        **{f"growth_{role}_mb": peak_roles[role] - mb for role, mb in start_roles.items()},
        "flood_lines": flood.get("lines"),
        "stdout_lines": collector.flood_lines,
    }
