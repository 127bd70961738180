"""Idle cost: CPU % and PSS of every manager process with 20 services doing nothing.

All managers run side by side for the same window: an idle manager barely touches
the CPU, so they do not disturb each other, and the 30 s window is paid once per
round instead of once per manager. CPU comes from each thread's schedstat (ns), not
from 10 ms ticks, because the figures are hundredths of a percent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import procs
from peers import Manager
from runner import Context, ManagerRun, SpawnWatch
from scen_lifecycle import START_LIMIT_S, _up_services


def _cpu(run: ManagerRun) -> dict[int, int]:
    return {pid: procs.cpu_ns(pid) for pid in run.processes().manager}


def idle(ctx: Context, managers: Sequence[Manager], count: int, seconds: float,
         settle: float) -> dict[str, dict[str, Any]]:
    """`settle` s pass before measuring: start-up work (imports, first health checks,
    pm2's module loading) is not idling."""
    watches: dict[str, SpawnWatch] = {}
    runs: dict[str, ManagerRun] = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        for manager in managers:
            watch = SpawnWatch(ctx.scratch("idle") / "up.fifo")
            watches[manager.name] = watch
            runs[manager.name] = ManagerRun(ctx, manager, _up_services(ctx, watch, count), "idle")
            runs[manager.name].drain()
        for name, watch in watches.items():
            if watch.wait(count, START_LIMIT_S) is None:
                results[name] = {"error": f"only {len(watch.seen)} of {count} services started"}
        time.sleep(settle)
        live = {name: run for name, run in runs.items() if name not in results}
        before = {name: _cpu(run) for name, run in live.items()}
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        for name, run in live.items():
            after = _cpu(run)
            used = sum(ns - before[name].get(pid, 0) for pid, ns in after.items())
            pids = tuple(after)
            results[name] = {
                "cpu_pct": 100.0 * used / (elapsed * 1e9),
                "pss_mb": procs.total_pss_mb(pids),
                "processes": len(pids),
            }
    finally:
        for run in runs.values():
            run.close()
        for watch in watches.values():
            watch.close()
    return results
