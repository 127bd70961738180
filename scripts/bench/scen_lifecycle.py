"""Start-up, stop and orphan scenarios: what a manager does around its services' lives.

Services announce their start by writing their name to a FIFO (`svcbin/up`), so
"spawned" is when the service's own code ran, not when the manager says so. Stops are
SIGTERM to the manager's top process; orphans are the service processes (marked by
their `svcbin` path) still alive after the manager is gone.
"""

from __future__ import annotations

import signal
import socket
import time
from typing import Any

from peers import Manager, Service, free_port
from runner import Context, ManagerRun, SpawnWatch, service_processes, wait_for

START_LIMIT_S = 30.0
STOP_LIMIT_S = 15.0
#: Managers mark a service "running" a moment after spawning it; stop after that.
SETTLE_S = 1.0
#: DESIGN.md: every service group is killed within 2 s of the supervisor's SIGKILL.
ORPHAN_WAIT_S = 2.5


def _up_services(ctx: Context, watch: SpawnWatch, count: int, stubborn: int = 0) -> list[Service]:
    return [
        Service(f"s{i:02d}", ctx.up(f"s{i:02d}", watch.path, stubborn=i < stubborn))
        for i in range(count)
    ]


def spawn(ctx: Context, manager: Manager, count: int) -> dict[str, Any]:
    """Launch to every one of `count` idle services running its first command."""
    watch = SpawnWatch(ctx.scratch("spawn") / "up.fifo")
    try:
        with ManagerRun(ctx, manager, _up_services(ctx, watch, count), "spawn") as run:
            run.drain()
            last = watch.wait(count, START_LIMIT_S)
            return {"spawn_s": None if last is None else last - run.t0,
                    "spawned": len(watch.seen)}
    finally:
        watch.close()


def _accepting(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_ready(ctx: Context, manager: Manager, count: int) -> dict[str, Any]:
    """Launch to every one of `count` tiny HTTP services accepting connections."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    services = [
        Service(f"web{i:02d}", ctx.py("http", port), port=port)
        for i, port in enumerate(sorted(ports))
    ]
    with ManagerRun(ctx, manager, services, "http") as run:
        run.drain()
        pending = set(ports)
        deadline = run.t0 + START_LIMIT_S
        while pending and time.monotonic() < deadline:
            pending = {port for port in pending if not _accepting(port)}
            if pending:
                time.sleep(0.002)
        done = time.monotonic()
    return {"http_ready_s": None if pending else done - run.t0, "ready": count - len(pending)}


def _left(run: ManagerRun) -> int:
    return len(run.processes().service)


def stop(ctx: Context, manager: Manager, count: int, stubborn: int = 0) -> dict[str, Any]:
    """SIGTERM to the manager with `count` services up; `stubborn` of them ignore it."""
    watch = SpawnWatch(ctx.scratch("stop") / "up.fifo")
    try:
        services = _up_services(ctx, watch, count, stubborn)
        with ManagerRun(ctx, manager, services, "stop") as run:
            run.drain()
            if watch.wait(count, START_LIMIT_S) is None:
                return {"error": f"only {len(watch.seen)} of {count} services started"}
            time.sleep(SETTLE_S)
            stop_s = run.stop(STOP_LIMIT_S)
            # Whatever a manager leaves behind after exiting is an orphan.
            gone = wait_for(lambda: _left(run) == 0, 1.0)
            return {"stop_s": stop_s, "left_behind": 0 if gone else _left(run)}
    finally:
        watch.close()


def orphans(ctx: Context, manager: Manager, kill: bool) -> dict[str, Any]:
    """`sh -c 'sleep & sleep & wait'`: survivors after a stop, or after SIGKILL."""
    marker = str(ctx.svcbin / "sleep")
    label = "orphans-kill" if kill else "orphans-stop"
    with ManagerRun(ctx, manager, [Service("tree", ctx.sleeper_tree())], label) as run:
        run.drain()
        if not wait_for(lambda: len(service_processes(run, marker)) >= 2, START_LIMIT_S):
            return {"error": "the service tree did not start"}
        time.sleep(SETTLE_S)
        start = time.monotonic()
        if kill:
            run.send(signal.SIGKILL)
            run.wait_exit(5.0)
            limit = ORPHAN_WAIT_S
        else:
            if run.stop(STOP_LIMIT_S) is None:
                return {"error": f"the manager did not stop within {STOP_LIMIT_S:g} s"}
            limit = 1.0
        gone = wait_for(lambda: not service_processes(run, marker), limit)
        survivors = 0 if gone else len(service_processes(run, marker))
        return {"survivors": survivors,
                "cleaned_s": time.monotonic() - start if gone else None}
