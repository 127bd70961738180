"""Finding, measuring and killing the processes of one benchmark run through /proc.

Every manager is launched with `BENCH_RUN=<token>` in its environment, which every
process it starts inherits (helpers, daemons that double-fork, services), so a run's
processes are found by reading `/proc/PID/environ` rather than by walking a tree that
a daemonising manager would escape. A process is a *service* process when its
environment carries `BENCH_SVC=1` (set by the service wrappers), when it runs a
program from the benchmark's service folder (`svcbin`: the marked `sleep`), when it
is a shell running such a command, or when it descends from one of those;
everything else with the token is a *manager* process: supervisor, web process,
helpers, per-child reader processes.
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


SHELLS = ("sh", "dash", "bash")


def _is_service(pid: int) -> bool:
    """Marked by the wrappers' env, or running a svcbin program, or a shell running one.

    Only argv[0] and a shell's script or `-c` text count: a manager's own command line
    (concurrently's, the relay's) lists the service commands as arguments too.
    """
    if SERVICE_ENV in _environ(pid):
        return True
    argv = (_read(f"/proc/{pid}/cmdline") or b"").split(b"\0")
    marker = SERVICE_DIR.encode()
    if marker in argv[0]:
        return True
    return os.path.basename(argv[0]).decode(errors="replace") in SHELLS and any(
        marker in arg for arg in argv[1:3]
    )


def _parents() -> dict[int, int]:
    parents = {}
    for pid in all_pids():
        stat = _read(f"/proc/{pid}/stat")
        if stat:
            parents[pid] = int(stat[stat.rfind(b")") + 2 :].split()[1])
    return parents


def _descendants(root: int, parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def run_processes(token: str, root: int | None = None) -> RunProcesses:
    """The run's processes: those with its token, plus `root`'s tree.

    The tree covers programs whose /proc environ no longer shows the token (Node
    rewrites that memory when it sets its process title); the token covers daemons
    and orphans that left the tree.
    """
    marker = f"BENCH_RUN={token}".encode()
    parents = _parents()
    family = {pid for pid in parents if marker in _environ(pid)}
    if root is not None and root in parents:
        family |= _descendants(root, parents)
    service_roots = {pid for pid in family if _is_service(pid)}
    manager: list[int] = []
    service: list[int] = []
    for pid in sorted(family):
        if _is_zombie(pid):
            continue
        ancestor, in_service = pid, False
        while ancestor in family:
            if ancestor in service_roots:
                in_service = True
                break
            ancestor = parents.get(ancestor, 0)
        (service if in_service else manager).append(pid)
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


def kill_run(token: str, root: int | None = None, grace: float = 3.0) -> int:
    """SIGKILL every process of a run until none is left; returns how many were seen."""
    seen: set[int] = set()
    deadline = time.monotonic() + grace
    while True:
        procs = run_processes(token, root)
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
