"""Scale: Promenade with 20, 100 and 200 services, so that the growth of each step shows.

For each size N, one manager runs N services: N - h sleepers (`svcbin/up`: announce
themselves on a FIFO, then sleep) and h tiny HTTP servers with an `http` ready_check
(h = 10, fewer when N is small). On that one run, in order:

- start-all: launch of `promenade start` → `promenade wait` answers that every service
  is up (running; the HTTP ones healthy). `wait` polls every 50 ms inside the manager,
  so this is up to 50 ms late; `spawn_s` (launch → every sleeper's own code ran) is
  exact. The checks probe every 0.2 s: the default 2 s would hide the growth under
  the wait for the second probe.
- status: `promenade status` (the table a user reads), its wall time (median of
  STATUS_RUNS runs, interpreter start included) and how many services it lists running.
- idle: CPU % of the manager processes over a window after settling (each thread's
  schedstat, as scen_idle) and their PSS.
- stop-all: SIGTERM to the manager → it exited; then the service processes left (0).

A step that grows faster than N shows as a curve in `scale.png` (charts.py).

The router is off (PROMENADE_ROUTER=0, as `manager.router: false`): it is the user's,
shared by every project, and each run's fresh XDG_RUNTIME_DIR would otherwise launch
one of its own (counted as a manager process) or, with another router holding its
port, hold the stop for seconds.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import procs
from peers import Launch, Manager, Service, Tools, free_port
from runner import Context, ManagerRun, SpawnWatch, wait_for
from scen_idle import _cpu

START_LIMIT_S = 60.0
STOP_LIMIT_S = 30.0
STATUS_RUNS = 5
#: At most this many of the services are HTTP servers with a ready_check.
HTTP_SERVICES = 10
HTTP_READY = "{type: http, interval: 0.2}"
#: `promenade wait` exits 3 while no manager answers (before it is up).
NO_MANAGER = 3


def http_count(count: int) -> int:
    """How many of `count` services are HTTP servers: 10, one per ten below 100."""
    return min(HTTP_SERVICES, max(1, count // 10))


def _services(ctx: Context, watch: SpawnWatch, count: int) -> list[Service]:
    web = http_count(count)
    ports: set[int] = set()
    while len(ports) < web:
        ports.add(free_port())
    sleepers = [Service(f"s{i:03d}", ctx.up(f"s{i:03d}", watch.path))
                for i in range(count - web)]
    servers = [Service(f"web{i:02d}", ctx.py("http", port), port=port, ready=HTTP_READY)
               for i, port in enumerate(sorted(ports))]
    return sleepers + servers


def without_router(manager: Manager) -> Manager:
    """`manager` launched with PROMENADE_ROUTER=0 (`manager.router: false`)."""

    def build(services: Sequence[Service], folder: Path, tools: Tools) -> Launch:
        launch = manager.build(services, folder, tools)
        return replace(launch, env={**launch.env, "PROMENADE_ROUTER": "0"})

    return replace(manager, build=build)


def _cli(ctx: Context, run: ManagerRun, *args: str) -> subprocess.CompletedProcess[str]:
    """One `promenade` command against the run's manager (its XDG_RUNTIME_DIR; without
    the run's token, so a CLI alive during a measurement never counts as the manager's)."""
    assert ctx.tools.promenade is not None and run.launch.config is not None
    env = {k: v for k, v in run.env.items() if k != "BENCH_RUN"}
    argv = [*ctx.tools.promenade, *args, "-c", str(run.launch.config)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=START_LIMIT_S)


def _announced(run: ManagerRun) -> bool:
    """manager.json is written once the bus answers: `wait` can connect from then on."""
    return any(Path(folder).rglob("manager.json") for folder in run.launch.scratch)


def _start_all(ctx: Context, run: ManagerRun) -> tuple[float | None, str]:
    """Launch → `promenade wait` said every service is up; (None, why) otherwise."""
    deadline = run.t0 + START_LIMIT_S
    wait_for(lambda: _announced(run) or run.exited(), START_LIMIT_S, step=0.01)
    while time.monotonic() < deadline and not run.exited():
        left = max(1.0, deadline - time.monotonic())
        done = _cli(ctx, run, "wait", "--timeout", f"{left:.0f}")
        if done.returncode == 0:
            return time.monotonic() - run.t0, ""
        if done.returncode != NO_MANAGER:
            return None, (done.stderr or done.stdout)[-300:]
        time.sleep(0.02)
    return None, f"not up within {START_LIMIT_S:g} s: {run.stderr_tail(300)}"


def status_rows(text: str) -> list[list[str]]:
    """The rows of `promenade status`'s table (after its NAME header), split on blanks."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("NAME")), None)
    if start is None:
        return []
    return [line.split() for line in lines[start + 1:] if line.strip()]


def _status(ctx: Context, run: ManagerRun) -> dict[str, Any]:
    walls, rows = [], []
    for _ in range(STATUS_RUNS):
        started = time.monotonic()
        done = _cli(ctx, run, "status")
        walls.append(time.monotonic() - started)
        if done.returncode != 0:
            return {"error": f"promenade status exited {done.returncode}: {done.stderr[-300:]}"}
        rows = status_rows(done.stdout)
    return {"status_s": statistics.median(walls), "status_listed": len(rows),
            "status_running": sum(1 for row in rows if row[1:2] == ["running"])}


def _idle(run: ManagerRun, seconds: float, settle: float) -> dict[str, Any]:
    time.sleep(settle)
    before = _cpu(run)
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    after = _cpu(run)
    used = sum(ns - before.get(pid, 0) for pid, ns in after.items())
    pids = tuple(after)
    return {"idle_cpu_pct": 100.0 * used / (elapsed * 1e9),
            "pss_mb": procs.total_pss_mb(pids), "processes": len(pids)}


def _stop_all(run: ManagerRun) -> dict[str, Any]:
    stop_s = run.stop(STOP_LIMIT_S)
    if stop_s is None:
        run.send(signal.SIGKILL)
        return {"error": f"the manager did not exit within {STOP_LIMIT_S:g} s of SIGTERM"}
    left = lambda: len(run.processes().service)  # noqa: E731
    gone = wait_for(lambda: left() == 0, 2.0, step=0.05)
    return {"stop_s": stop_s, "left_behind": 0 if gone else left()}


def one_size(ctx: Context, manager: Manager, count: int, idle_s: float,
             settle: float) -> dict[str, Any]:
    """Every step for `count` services, on one manager run."""
    watch = SpawnWatch(ctx.scratch(f"scale{count}") / "up.fifo")
    services = _services(ctx, watch, count)
    sleepers = count - http_count(count)
    # the FIFO is read while the CLI waits, so each sleeper's arrival is stamped as it comes
    spawned = threading.Thread(target=watch.wait, args=(sleepers, START_LIMIT_S), daemon=True)
    try:
        with ManagerRun(ctx, without_router(manager), services, f"scale{count}") as run:
            run.drain()
            spawned.start()
            start_s, why = _start_all(ctx, run)
            spawned.join(START_LIMIT_S)
            if start_s is None:
                return {"error": f"start of {count} services: {why}"}
            last = max(watch.seen.values()) if len(watch.seen) == sleepers else None
            result: dict[str, Any] = {
                "services": count, "http": count - sleepers, "start_s": start_s,
                "spawn_s": None if last is None else last - run.t0}
            result.update(_status(ctx, run))
            if "error" not in result:
                result.update(_idle(run, idle_s, settle))
                result.update(_stop_all(run))
            return result
    finally:
        if spawned.is_alive():
            spawned.join(START_LIMIT_S)
        watch.close()


def scale(ctx: Context, manager: Manager, sizes: Sequence[int], idle_s: float,
          settle: float) -> dict[str, Any]:
    """`{"20": {...}, "100": {...}, ...}`; an `error` at the top names any size that
    failed, or listed fewer running services than it has, or left a process behind."""
    result: dict[str, Any] = {}
    problems = []
    for count in sizes:
        one = one_size(ctx, manager, count, idle_s, settle)
        result[str(count)] = one
        problems += _problems(count, one)
    if problems:
        result["error"] = "; ".join(problems)
    return result


def _problems(count: int, one: dict[str, Any]) -> list[str]:
    if "error" in one:
        return [f"{count}: {one['error']}"]
    found = []
    if one.get("status_running") != count:
        found.append(f"{count}: status listed {one.get('status_running')} running")
    if one.get("left_behind"):
        found.append(f"{count}: {one['left_behind']} service processes left after the stop")
    return found


if __name__ == "__main__":  # one size by hand: python scen_scale.py N [IDLE_S]
    import shutil
    import sys

    from bench import _tools, parse
    from peers import MANAGERS
    from runner import make_svcbin

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    idle = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    venv = Path(__file__).resolve().parents[2] / ".venv" / "bin"
    args = parse(["--promenade", str(venv / "promenade"),
                  "--observer-python", str(venv / "python")])
    work = Path(__file__).resolve().parent / ".work" / f"scale-{os.getpid()}"
    context = Context(work, _tools(args), None)
    make_svcbin(context)
    try:
        print(one_size(context, MANAGERS["promenade"], count, idle, 2.0))
    finally:
        shutil.rmtree(work, ignore_errors=True)
