"""CPU and memory of each service's whole process tree, read from /proc.

A service is `/bin/sh -c CMD` in its own process group, and the process doing the work
is usually a grandchild (`npm` -> `node`), so the numbers that mean something are the
sums over the tree: every descendant of the service's pid plus every member of its
process group. Standard library only, one scan of /proc per sample for all services,
and a 0.5 s cache so that a dashboard polling `status` cannot make the supervisor spend
its time here. Where /proc is absent (macOS) the values are None.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CACHE_SECONDS = 0.5


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat that tree accounting needs."""

    pid: int
    ppid: int
    pgrp: int
    #: utime + stime + cutime + cstime, in clock ticks. Counting the reaped children's
    #: time keeps a tree's total steady when a short-lived child exits between samples.
    ticks: int
    starttime: int
    rss_pages: int
    #: R, S, D, Z (zombie) ... (field 3)
    state: str = ""


def parse_stat(pid: int, text: str) -> ProcStat | None:
    """Parse one /proc/PID/stat line; the command name may hold spaces and parentheses."""
    close = text.rfind(")")
    if close < 0:
        return None
    rest = text[close + 1 :].split()
    # rest[0] is field 3 (state): field N of proc(5) is rest[N - 3].
    try:
        return ProcStat(
            pid=pid,
            ppid=int(rest[1]),
            pgrp=int(rest[2]),
            ticks=int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14]),
            starttime=int(rest[19]),
            rss_pages=int(rest[21]),
            state=rest[0],
        )
    except (IndexError, ValueError):
        return None


def scan_proc(root: Path = Path("/proc")) -> dict[int, ProcStat]:
    """Every process's stat; processes that exit during the scan are skipped."""
    table: dict[int, ProcStat] = {}
    try:
        names = os.listdir(root)
    except OSError:
        return table
    base = str(root)
    for name in names:
        if not name.isdigit():
            continue
        try:
            # os.open/os.read: a third of the cost of open() in text mode, which counts
            # when the supervisor scans hundreds of processes between two requests.
            fd = os.open(f"{base}/{name}/stat", os.O_RDONLY)
            try:
                data = os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError:
            continue
        stat = parse_stat(int(name), data.decode("utf-8", "replace"))
        if stat is not None:
            table[stat.pid] = stat
    return table


def children_of(table: Mapping[int, ProcStat]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    return children


def group_members(table: Mapping[int, ProcStat]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for stat in table.values():
        groups.setdefault(stat.pgrp, []).append(stat.pid)
    return groups


def tree_members(
    pid: int,
    table: Mapping[int, ProcStat],
    children: Mapping[int, list[int]] | None = None,
    groups: Mapping[int, list[int]] | None = None,
) -> set[int]:
    """`pid`, its descendants, and the members of the process group it leads.

    `children` and `groups` (from children_of / group_members) can be passed in so
    that one scan serves every service.
    """
    children = children if children is not None else children_of(table)
    groups = groups if groups is not None else group_members(table)
    members = set(groups.get(pid, ()))
    if pid in table:
        members.add(pid)
    todo = list(members)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in members:
                members.add(child)
                todo.append(child)
    return members


@dataclass
class _Previous:
    """What the last sample of one service saw, for the next CPU delta."""

    pid: int
    when: float
    ticks: int
    value: tuple[float | None, int | None]


class TreeSampler:
    """One per manager: `sample({service: pid})` -> `{service: (cpu_percent, rss_bytes)}`.

    CPU percent is over the time since this service's previous sample (100 = one full
    core); the first sample of a pid averages since the process started. Called again
    within CACHE_SECONDS with the same pids, it returns the cached values.
    """

    def __init__(
        self, proc_root: Path = Path("/proc"), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._root = proc_root
        self._clock = clock
        self._available = (proc_root / "self" / "stat").exists()
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._previous: dict[str, _Previous] = {}
        self._last_scan = float("-inf")
        self._last_pids: dict[str, int | None] = {}

    def sample(
        self, pids: Mapping[str, int | None]
    ) -> dict[str, tuple[float | None, int | None]]:
        now = self._clock()
        wanted = dict(pids)
        if not self._available:
            return {name: (None, None) for name in wanted}
        if now - self._last_scan < CACHE_SECONDS and wanted == self._last_pids:
            return {name: self._cached(name, pid) for name, pid in wanted.items()}
        table = scan_proc(self._root)
        self._last_scan, self._last_pids = now, wanted
        tree = (children_of(table), group_members(table))
        result = {
            name: self._measure(name, pid, table, tree, now) for name, pid in wanted.items()
        }
        for gone in set(self._previous) - set(wanted):
            del self._previous[gone]
        return result

    def _cached(self, name: str, pid: int | None) -> tuple[float | None, int | None]:
        prev = self._previous.get(name)
        return prev.value if prev is not None and prev.pid == pid else (None, None)

    def _measure(
        self,
        name: str,
        pid: int | None,
        table: Mapping[int, ProcStat],
        tree: tuple[Mapping[int, list[int]], Mapping[int, list[int]]],
        now: float,
    ) -> tuple[float | None, int | None]:
        if pid is None or pid not in table:
            self._previous.pop(name, None)
            return (None, None)
        members = tree_members(pid, table, *tree)
        # Totals, not per-pid deltas: a child reaped inside the tree moves its time into
        # its parent's cutime, so the tree's total stays steady across its exit.
        ticks = sum(table[p].ticks for p in members)
        rss = sum(table[p].rss_pages for p in members) * self._page
        prev = self._previous.get(name)
        if prev is not None and prev.pid == pid and now > prev.when:
            cpu = max(0.0, (ticks - prev.ticks) / self._hz / (now - prev.when) * 100.0)
        else:
            cpu = self._average_since_start(table[pid], ticks)
        value = (round(cpu, 1), rss)
        self._previous[name] = _Previous(pid=pid, when=now, ticks=ticks, value=value)
        return value

    def _average_since_start(self, root: ProcStat, ticks: int) -> float:
        try:
            uptime = float((self._root / "uptime").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        age = uptime - root.starttime / self._hz
        return max(0.0, ticks / self._hz / age * 100.0) if age > 0 else 0.0
