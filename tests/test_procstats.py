"""TreeSampler: CPU and RSS of whole service trees, from a real /proc and a written one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promenade_core.supervise.procstats import CACHE_SECONDS, TreeSampler, parse_stat, tree_members

REAL_PROC = Path("/proc/self/stat").exists()
needs_proc = pytest.mark.skipif(not REAL_PROC, reason="needs Linux /proc")


def write_stat(root: Path, pid: int, ppid: int, pgrp: int, ticks: int, rss: int,
               comm: str = "sh", start: int = 100) -> None:
    """A /proc/PID/stat line with utime=ticks, the other times 0."""
    fields = ["S", ppid, pgrp, pgrp, 0, 0, 0, 0, 0, 0, 0, ticks, 0, 0, 0, 20, 0, 1, 0,
              start, 0, rss]
    folder = root / str(pid)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stat").write_text(f"{pid} ({comm}) " + " ".join(map(str, fields)) + "\n")


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    (root / "self").mkdir(parents=True)
    (root / "self" / "stat").write_text("1 (x) S 0 1 1\n")
    (root / "uptime").write_text("1000.00 0.00\n")
    return root


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_parse_stat_survives_parentheses_and_spaces_in_the_command_name():
    text = "42 (we) (ird name) S 7 42 42 0 -1 0 0 0 0 0 5 6 7 8 20 0 1 0 999 0 321\n"
    stat = parse_stat(42, text)
    assert stat is not None
    assert (stat.ppid, stat.pgrp, stat.ticks, stat.starttime, stat.rss_pages) == (
        7, 42, 26, 999, 321)
    assert parse_stat(42, "garbage") is None
    assert parse_stat(42, "42 (x) S 1") is None


def test_tree_is_descendants_plus_group_members(fake_proc: Path):
    from promenade_core.supervise.procstats import scan_proc

    write_stat(fake_proc, 10, 1, 10, 0, 1)       # service root (sh), group leader
    write_stat(fake_proc, 11, 10, 10, 0, 1)      # child
    write_stat(fake_proc, 12, 11, 12, 0, 1)      # grandchild in its own group
    write_stat(fake_proc, 13, 1, 10, 0, 1)       # orphaned group member (reparented)
    write_stat(fake_proc, 20, 1, 20, 0, 1)       # another service
    table = scan_proc(fake_proc)
    assert tree_members(10, table) == {10, 11, 12, 13}
    assert tree_members(20, table) == {20}
    assert tree_members(99, table) == set()


def test_cpu_is_the_tree_delta_over_wall_time_and_rss_the_tree_sum(fake_proc: Path):
    hz = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    clock = FakeClock()
    write_stat(fake_proc, 10, 1, 10, 0, 100)
    write_stat(fake_proc, 11, 10, 10, 0, 300)
    sampler = TreeSampler(proc_root=fake_proc, clock=clock)
    sampler.sample({"api": 10})
    # one second later the child used half a core and the root a quarter
    write_stat(fake_proc, 10, 1, 10, hz // 4, 100)
    write_stat(fake_proc, 11, 10, 10, hz // 2, 300)
    clock.now += 1.0
    cpu, rss = sampler.sample({"api": 10})["api"]
    assert cpu == pytest.approx(75.0, abs=1.0)
    assert rss == 400 * page


def test_a_child_reaped_inside_the_tree_does_not_count_twice(fake_proc: Path):
    """Its time moves into the parent's cutime: the tree's total must not jump."""
    hz = os.sysconf("SC_CLK_TCK")
    clock = FakeClock()
    write_stat(fake_proc, 10, 1, 10, 0, 1)
    write_stat(fake_proc, 11, 10, 10, 10 * hz, 1)
    sampler = TreeSampler(proc_root=fake_proc, clock=clock)
    sampler.sample({"api": 10})
    (fake_proc / "11" / "stat").unlink()
    (fake_proc / "11").rmdir()
    write_stat(fake_proc, 10, 1, 10, 10 * hz, 1)  # child's 10 s now in the parent's total
    clock.now += 1.0
    cpu, _ = sampler.sample({"api": 10})["api"]
    assert cpu == 0.0


def test_first_sample_averages_since_the_process_started(fake_proc: Path):
    hz = os.sysconf("SC_CLK_TCK")
    # started at uptime 900 s (100 s ago) and used 10 s of CPU: 10 %
    write_stat(fake_proc, 10, 1, 10, 10 * hz, 1, start=900 * hz)
    cpu, _ = TreeSampler(proc_root=fake_proc, clock=FakeClock()).sample({"api": 10})["api"]
    assert cpu == pytest.approx(10.0, abs=0.5)


def test_calls_within_the_cache_window_return_the_cached_values(fake_proc: Path):
    hz = os.sysconf("SC_CLK_TCK")
    clock = FakeClock()
    write_stat(fake_proc, 10, 1, 10, 0, 1)
    sampler = TreeSampler(proc_root=fake_proc, clock=clock)
    first = sampler.sample({"api": 10})
    write_stat(fake_proc, 10, 1, 10, 5 * hz, 7)
    clock.now += CACHE_SECONDS / 2
    assert sampler.sample({"api": 10}) == first
    clock.now += CACHE_SECONDS
    assert sampler.sample({"api": 10}) != first


def test_unknown_or_missing_pids_give_none(fake_proc: Path):
    sampler = TreeSampler(proc_root=fake_proc, clock=FakeClock())
    assert sampler.sample({"stopped": None, "gone": 4242}) == {
        "stopped": (None, None), "gone": (None, None)}


def test_without_proc_every_value_is_none(tmp_path: Path):
    """macOS has no /proc: the dashboard shows dashes, nothing raises."""
    sampler = TreeSampler(proc_root=tmp_path / "no-proc")
    assert sampler.sample({"api": os.getpid()}) == {"api": (None, None)}


BUSY_TREE = """
import subprocess, sys
child = '''
import time
ballast = bytearray(64 * 1024 * 1024)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
print("ready", flush=True)
end = time.time() + 30
while time.time() < end:
    pass
'''
subprocess.run([sys.executable, "-c", child])
"""


@needs_proc
@pytest.mark.timeout(30)
def test_a_busy_grandchild_shows_in_its_services_cpu_and_memory(tmp_path: Path):
    script = tmp_path / "tree.py"
    script.write_text(BUSY_TREE)
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f"{sys.executable} {script}"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        sampler = TreeSampler()
        sampler.sample({"busy": proc.pid, "me": os.getpid()})
        deadline = time.monotonic() + 10
        seen: tuple[float | None, int | None] = (None, None)
        while time.monotonic() < deadline:
            time.sleep(CACHE_SECONDS + 0.1)
            seen = sampler.sample({"busy": proc.pid, "me": os.getpid()})["busy"]
            if seen[0] is not None and seen[0] > 50:
                break
        cpu, rss = seen
        assert cpu is not None and cpu > 50, f"busy grandchild's tree used {cpu} % CPU"
        assert rss is not None and rss > 64 * 1024 * 1024, f"tree RSS {rss}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
