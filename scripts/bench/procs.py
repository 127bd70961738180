"""Finding, measuring and killing the processes of one benchmark run through /proc.

Every manager is launched with `BENCH_RUN=<token>` in its environment, which every
process it starts inherits (helpers, daemons that double-fork, services), so a run's
processes are found by reading `/proc/PID/environ` rather than by walking a tree that
a daemonising manager would escape. A process is a *service* process when its
environment carries `BENCH_SVC=1` (set by the service wrappers) or its command line
names the benchmark's service folder (`svcbin`, for shell trees and the marked
`sleep`); everything else with the token is a *manager* process: supervisor, web
process, helpers, per-child reader processes.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

SERVICE_ENV = b"BENCH_SVC=1"
SERVICE_DIR = "svcbin"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def cmdline(pid: int) -> str:
    raw = _read(f"/proc/{pid}/cmdline") or b""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _environ(pid: int) -> list[bytes]:
    raw = _read(f"/proc/{pid}/environ") or b""
    return raw.split(b"\0")


def _is_zombie(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return True
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


@dataclass(frozen=True)
class RunProcesses:
    """The live processes of one run, split into manager and service processes."""

    manager: tuple[int, ...]
    service: tuple[int, ...]


def run_processes(token: str) -> RunProcesses:
    marker = f"BENCH_RUN={token}".encode()
    manager: list[int] = []
    service: list[int] = []
    for pid in all_pids():
        env = _environ(pid)
        if marker not in env or _is_zombie(pid):
            continue
        if SERVICE_ENV in env or SERVICE_DIR in cmdline(pid):
            service.append(pid)
        else:
            manager.append(pid)
    return RunProcesses(tuple(manager), tuple(service))


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of a process, in ns (schedstat beats 10 ms ticks)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        raw = _read(f"/proc/{pid}/task/{tid}/schedstat")
        if raw:
            total += int(raw.split()[0])
    return total


def pss_kb(pid: int) -> int:
    raw = _read(f"/proc/{pid}/smaps_rollup") or b""
    for line in raw.splitlines():
        if line.startswith(b"Pss:"):
            return int(line.split()[1])
    return 0


def total_pss_mb(pids: tuple[int, ...]) -> float:
    return sum(pss_kb(pid) for pid in pids) / 1024


def marked_alive(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains `marker`."""
    return [pid for pid in all_pids() if marker in cmdline(pid) and not _is_zombie(pid)]


def kill_run(token: str, grace: float = 3.0) -> int:
    """SIGKILL every process of a run until none is left; returns how many were seen."""
    seen: set[int] = set()
    deadline = time.monotonic() + grace
    while True:
        procs = run_processes(token)
        alive = procs.manager + procs.service
        if not alive:
            return len(seen)
        seen.update(alive)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            return len(seen)
        time.sleep(0.02)
