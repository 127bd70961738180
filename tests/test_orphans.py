"""Nothing outlives the manager: Ctrl-C, SIGTERM, even SIGKILL."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support import live_marked, wait_for

pytestmark = pytest.mark.timeout(60)

TREE = """
    manager: {hosts_management: disabled}
    services:
      tree: {command: "sleep 1000 & sleep 1000 & wait"}
      stubborn: {command: "trap '' TERM; sleep 1000 & sleep 1000 & wait"}
"""


def _started(m) -> None:
    m.wait_status("tree", "running")
    m.wait_status("stubborn", "running")
    wait_for(lambda: len(live_marked(m.instance)) >= 6, what="both trees running")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_every_tree(manager, sig: int) -> None:
    m = manager(TREE)
    _started(m)
    m.signal(sig)
    assert m.wait_exit(20) == 0
    assert live_marked(m.instance) == []
    out = m.output()
    assert "stopping tree" in out and "all services stopped" in out


def test_sigkill_of_the_manager_leaves_nothing_within_2_s(manager) -> None:
    m = manager(TREE)
    _started(m)
    m.signal(signal.SIGKILL)
    began = time.monotonic()
    wait_for(lambda: live_marked(m.instance) == [], timeout=2.0,
             what="every service process to be gone")
    assert time.monotonic() - began < 2.0


def test_leftover_from_a_crash_is_named_and_stopped_at_next_start(manager, tmp_path) -> None:
    m = manager("""
        manager: {hosts_management: disabled}
        services:
          tree: {command: "sleep 1000 & wait"}
    """)
    m.wait_status("tree", "running")
    wait_for(lambda: len(live_marked(m.instance)) >= 2, what="the tree")
    # A crash that takes the reaper too (as an OOM kill of the session might):
    # the reaper first, or it would do its job.
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if b"reaper.sh" in cmd and ppid == m.proc.pid:
            os.kill(pid, signal.SIGKILL)
    os.killpg(m.proc.pid, signal.SIGKILL)
    m.wait_exit(5)
    survivors = live_marked(m.instance)
    assert survivors, "the test needs a survivor to find"
    again = m.start()
    again.wait_output(f"found pid {survivors[0][0]}")
    again.wait_output("left over from an earlier run of this config; stopping it")
    wait_for(lambda: {p for p, _, _ in live_marked(m.instance)}.isdisjoint(
        {p for p, _, _ in survivors}), what="the survivors to be gone")

