"""Pure parts of service containment: finding the cgroup v2 tree, following trees."""

from __future__ import annotations

import os
from pathlib import Path

from promenade_core.supervise import cgroups
from promenade_core.supervise.descendants import STRAYS, Descendants, follow
from promenade_core.supervise.procstats import ProcStat

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
"""
PURE = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_v2_mount_is_found_in_a_hybrid_layout_not_assumed() -> None:
    assert cgroups.v2_mount(HYBRID) == ("/", "/sys/fs/cgroup/unified")
    assert cgroups.v2_mount(PURE) == ("/", "/sys/fs/cgroup")
    assert cgroups.v2_mount(HYBRID.splitlines()[0]) is None


def test_mount_points_with_spaces_are_unescaped() -> None:
    line = "41 31 0:38 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n"
    assert cgroups.v2_mount(line) == ("/", "/mnt/my cgroups")


def test_own_folder_joins_the_mount_and_our_path() -> None:
    user = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service\n"
    assert cgroups.own_folder(PURE, user) == Path(
        "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/x.service")
    assert cgroups.own_folder(HYBRID, "9:name=systemd:/\n0::/\n") == Path(
        "/sys/fs/cgroup/unified")


def test_own_folder_refuses_what_the_mount_does_not_show() -> None:
    sub = "41 31 0:38 /other /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    assert cgroups.own_folder(sub, "0::/mine\n") is None
    assert cgroups.own_folder(PURE, "1:cpu:/\n") is None     # v1 only
    assert cgroups.own_folder(PURE, "0::/a/../../etc\n") is None


def _stat(pid: int, ppid: int, pgrp: int, start: int = 1, state: str = "S") -> ProcStat:
    return ProcStat(pid=pid, ppid=ppid, pgrp=pgrp, ticks=0, starttime=start, rss_pages=0,
                    state=state)


def test_follow_takes_descendants_that_left_the_group() -> None:
    table = {s.pid: s for s in [
        _stat(10, 1, 10), _stat(11, 10, 11), _stat(12, 11, 11), _stat(20, 1, 20)]}
    assert follow(table, [10]) == {10, 11, 12}
    assert follow(table, [99]) == set()


class FakeProc:
    """A process table the test edits between scans."""

    def __init__(self, me: int) -> None:
        self.table: dict[int, ProcStat] = {}
        self.me = me

    def put(self, *stats: ProcStat) -> None:
        for s in stats:
            self.table[s.pid] = s

    def scan(self) -> dict[int, ProcStat]:
        return dict(self.table)


def test_an_escapee_stays_its_services_after_its_parent_exits() -> None:
    """setsid child (pid 11) of service 10; its parent exits and it is reparented to
    the manager (pid 5): it is still service 10's, and its group went to the reaper."""
    proc = FakeProc(me=5)
    told: list[tuple[int, bool]] = []
    tracker = Descendants(5, "inst", lambda pgid, alive: told.append((pgid, alive)),
                          scan=proc.scan)
    tracker.add(10, "api")
    proc.put(_stat(10, 5, 10), _stat(11, 10, 11))
    tracker.refresh()
    assert told == [(11, True)]
    del proc.table[10]
    proc.put(_stat(11, 5, 11))
    tracker.refresh()
    assert tracker.groups(10) == {11}
    assert tracker.groups(STRAYS) == set()
    del proc.table[11]
    tracker.refresh()
    assert told == [(11, True), (11, False)]


def test_a_reused_pid_is_not_taken_for_a_member() -> None:
    proc = FakeProc(me=5)
    tracker = Descendants(5, "inst", lambda pgid, alive: None, scan=proc.scan)
    tracker.add(10, "api")
    proc.put(_stat(10, 5, 10), _stat(11, 10, 11, start=100))
    tracker.refresh()
    proc.put(_stat(11, 1, 11, start=200))   # 11 died; an unrelated process got the pid
    tracker.refresh()
    assert tracker.groups(10) == set()


def test_orphans_of_unknown_origin_are_strays_and_old_children_are_ignored() -> None:
    proc = FakeProc(me=5)
    proc.put(_stat(7, 5, 7))                      # our child before we started
    tracker = Descendants(5, "inst", lambda pgid, alive: None, scan=proc.scan)
    tracker.add(10, "api")
    proc.put(_stat(10, 5, 10), _stat(30, 5, 30), _stat(31, 30, 30))
    tracker.refresh()
    assert tracker.groups(STRAYS) == {30}
    assert tracker.groups(10) == set()


def test_stale_roots_are_this_configs_and_the_empty_ones(tmp_path: Path) -> None:
    """A crash that took the reaper too left cgroup folders behind."""
    dead = 2 ** 22 + 1   # above any pid_max: never a live process
    mine = tmp_path / f"promenade-abc-{dead}"
    other_empty = tmp_path / f"promenade-def-{dead}"
    other_busy = tmp_path / f"promenade-ghi-{dead}"
    live = tmp_path / f"promenade-abc-{os.getpid()}"
    for folder in (mine / "api.1", other_empty / "web.1", other_busy / "db.1", live):
        folder.mkdir(parents=True)
    (other_busy / "db.1" / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    (other_empty / "web.1" / "cgroup.events").write_text("populated 0\nfrozen 0\n")
    assert sorted(cgroups.stale_roots("abc", tmp_path)) == [mine, other_empty]
