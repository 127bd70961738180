"""Which processes belong to which service when no cgroup can say (the fallback).

Without a cgroup, a child that calls `setsid` leaves the service's process group, so
signalling the group misses it. The manager is a child subreaper, so such a process
stays reachable: while its parent lives it is a descendant of the service's `/bin/sh`,
and once its parent exits it becomes a direct child of the manager. Scans of /proc (a
few times a second while services run, and again right before a stop) follow both:
every process seen in a service's tree is remembered by (pid, start time), its process
group is given to the reaper (`+PGID`), and what it starts later is followed from it.

What this cannot do (the README says so too): attribute to a service an orphan whose
every ancestor in the service exited between two scans and that dropped
PROMENADE_SERVICE from its environment (it is killed at shutdown, not by `stop`); and
after a SIGKILL of the manager, the reaper knows only the groups seen by the last scan.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping

from promenade_core.supervise.procstats import (
    ProcStat,
    children_of,
    group_members,
    scan_proc,
    tree_members,
)

#: The pseudo-service of orphans whose origin is unknown (pid 0 is never a process).
STRAYS = 0
#: Seconds between two scans while services run.
SCAN_INTERVAL = 0.5
#: A scan this recent serves a stop's signal (`ProcessOps.signal_tree`): a shutdown
#: signals every service within a few ms, and a scan per service made stopping 200
#: services without cgroups take 200 scans of /proc (1.1 s, growing as N x processes).
#: A process that leaves its group in this window is still followed by the stop's
#: next scan (`tree_alive`) and killed at the end of the grace, as one that leaves it
#: between a scan and the signal always was.
SIGNAL_SCAN_AGE = 0.05

ENV_INSTANCE = "PROMENADE_INSTANCE"
ENV_SERVICE = "PROMENADE_SERVICE"


def follow(table: Mapping[int, ProcStat], seeds: Iterable[int],
           maps: tuple[Mapping[int, list[int]], Mapping[int, list[int]]] | None = None,
           ) -> set[int]:
    """The seeds still alive, their descendants and the groups they lead.

    `maps` (children_of, group_members of `table`) lets one scan serve every tree.
    """
    children, groups = maps if maps is not None else (children_of(table), group_members(table))
    members: set[int] = set()
    for seed in seeds:
        if seed in table and seed not in members:
            members |= tree_members(seed, table, children, groups)
    return members


def orphans(table: Mapping[int, ProcStat], me: int, accounted: set[int]) -> list[int]:
    """Our direct children that nothing accounts for: reparented to us, the subreaper."""
    return [pid for pid, st in table.items() if st.ppid == me and pid not in accounted]


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _identity(pid: int) -> tuple[int, str] | None:
    """(start time, state) of a live pid, None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b")", 1)[1].split()
        return int(rest[19]), rest[0].decode()
    except (OSError, IndexError, ValueError):
        return None


class Descendants:
    """Every service's processes as the scans saw them, keyed by the service's root pid."""

    def __init__(self, me: int, instance: str, register: Callable[[int, bool], None],
                 scan: Callable[[], dict[int, ProcStat]] = scan_proc,
                 notify: Callable[[str], None] = lambda message: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._me = me
        self._instance = instance
        self._register = register
        self._scan = scan
        self._names: dict[int, str] = {STRAYS: ""}
        self._seen: dict[int, dict[int, int]] = {STRAYS: {}}   # root -> {pid: start time}
        self._groups: dict[int, set[int]] = {STRAYS: set()}    # root -> pgids told the reaper
        #: direct children that are no service's: the reaper, the dashboard, and whatever
        #: was our child before we started (a private hostsd)
        self._ignored = {pid for pid, st in scan().items() if st.ppid == me}
        #: each process followed, for `-v`
        self.notify = notify
        self._clock = clock
        self._scanned = float("-inf")

    def ignore(self, pid: int) -> None:
        self._ignored.add(pid)

    def unignore(self, pid: int) -> None:
        """Undo `ignore` once that child has exited: its number may be reused."""
        self._ignored.discard(pid)

    def add(self, root: int, name: str) -> None:
        self._names[root] = name
        self._seen[root] = {}
        self._groups[root] = set()

    def remove(self, root: int) -> None:
        for pgid in self._groups.pop(root, set()):
            self._register(pgid, False)
        self._seen.pop(root, None)
        self._names.pop(root, None)

    def refresh(self, max_age: float = 0.0) -> None:
        """One scan of /proc: follow every tree and tell the reaper of new groups.

        With `max_age`, a scan that recent is taken as good enough (polling loops).
        """
        now = self._clock()
        if max_age and now - self._scanned < max_age:
            return
        self._scanned = now
        table = {pid: st for pid, st in self._scan().items() if st.state != "Z"}
        maps = (children_of(table), group_members(table))
        found = self._trees(table, maps)
        accounted = set().union(*found.values()) | self._ignored | set(self._names)
        for pid in orphans(table, self._me, accounted):
            found[self._origin(pid)] |= follow(table, [pid], maps)
        for root, members in found.items():
            self._update(root, members, table)

    def _trees(self, table: Mapping[int, ProcStat],
               maps: tuple[Mapping[int, list[int]], Mapping[int, list[int]]],
               ) -> dict[int, set[int]]:
        found: dict[int, set[int]] = {}
        for root, seen in self._seen.items():
            seeds = [p for p, start in seen.items() if p in table and table[p].starttime == start]
            if root != STRAYS:
                seeds.append(root)
            found[root] = follow(table, seeds, maps)
        return found

    def _origin(self, pid: int) -> int:
        """The service an unknown orphan came from, by its environment if it kept it."""
        env = _environ(pid)
        if env.get(ENV_INSTANCE) == self._instance:
            for root, name in self._names.items():
                if root != STRAYS and name == env.get(ENV_SERVICE):
                    return root
        return STRAYS

    def _update(self, root: int, members: set[int], table: Mapping[int, ProcStat]) -> None:
        """Remember new members; give the reaper the groups that appeared and take back
        the ones no member is in any more (a recorded pgid must not outlive its group:
        the reaper would kill whoever reuses the number)."""
        seen = self._seen[root]
        for pid in members - set(seen):
            seen[pid] = table[pid].starttime
            if table[pid].pgrp != root:
                self.notify(f"{self._names[root] or 'an unknown service'}: following pid {pid}, "
                            f"which left the service's process group (group {table[pid].pgrp})")
        for pid in set(seen) - members:
            del seen[pid]
        live_groups = {table[pid].pgrp for pid in members} - {root, 0, 1}
        groups = self._groups[root]
        for pgid in sorted(live_groups - groups):
            self._register(pgid, True)
        for pgid in sorted(groups - live_groups):
            self._register(pgid, False)
        self._groups[root] = live_groups

    def groups(self, root: int) -> set[int]:
        return set(self._groups.get(root, ()))

    def pids(self, root: int) -> list[int]:
        """The processes of a tree that are alive, as of the last scan and now."""
        out = []
        for pid, start in self._seen.get(root, {}).items():
            now = _identity(pid)
            if now is not None and now[0] == start and now[1] != "Z":
                out.append(pid)
        return out

    def alive(self, root: int) -> bool:
        return bool(self.pids(root))

    def kill(self, root: int, sig: int) -> bool:
        """Signal every group and pid of a tree; False when none was left."""
        hit = False
        for pgid in self.groups(root):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
                hit = True
        for pid in self.pids(root):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                hit = True
        return hit
