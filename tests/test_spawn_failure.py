"""A spawn that fails for real (the manager out of descriptors) ends in `failed`."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support import ROOT, Manager, wait_for

pytestmark = pytest.mark.timeout(120)


def lowest_free_fd(pid: int) -> int:
    used = {int(name) for name in os.listdir(f"/proc/{pid}/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)


@contextmanager
def out_of_descriptors(pid: int) -> Iterator[None]:
    """The process may open nothing more: its soft limit drops to its lowest free fd
    number (what it has stays open), and comes back afterwards."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free_fd(pid), hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))


def test_spawn_out_of_descriptors_fails_retries_and_keeps_the_queue(manager) -> None:
    """Out of descriptors, a spawn's pipe creation raised OSError: the service stayed
    `starting` for ever, its restart policy never fired, and `promenade start` did
    nothing. It must fail with the reason, retry per policy, and take commands after."""
    m: Manager = manager("""
        services:
          blink: {command: "echo up; sleep 0.3", restart_policy: always}
    """)
    assert m.proc is not None
    m.wait_status("blink", "running", "retrying", "stopped")
    # No bus traffic while the manager is out of descriptors: libzmq aborts when an
    # accept fails (issue 10 point 3); the manager's output file tells what happens.
    with out_of_descriptors(m.proc.pid):
        m.wait_output("blink could not start: spawning", timeout=30)
        out = m.wait_output("Too many open files", timeout=30)
        wait_for(lambda: "blink failed to start; retrying in" in m.output(), 30,
                 "the restart policy to schedule a retry")
    assert "Too many open files" in out
    failed_at = m.output().count("blink could not start")
    # The policy keeps retrying; once descriptors are back the service runs again.
    wait_for(lambda: m.output().count("blink started (pid") >= 2 and
             m.output().rindex("blink started (pid") > m.output().rindex("could not start"),
             40, "a retry to start blink again")
    assert failed_at >= 1
    stopped = m.cli("stop", "blink")
    assert stopped.returncode == 0, stopped.stderr
    assert m.status("blink")["status"] == "stopped"
    started = m.cli("start", "blink")
    assert started.returncode == 0, started.stderr
    m.wait_status("blink", "running", "retrying", "stopped", timeout=30)
    assert m.request("ping")["pid"] == m.proc.pid


LEAK_PROBE = """
import os, resource, sys
from pathlib import Path
from promenade_core.supervise.osproc import ProcessOps

def lowest_free():
    used = {int(n) for n in os.listdir("/proc/self/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)

_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
before = len(os.listdir("/proc/self/fd"))
free = lowest_free()
# Room for exactly one pipe (stdout's), so stderr's cannot be made.
resource.setrlimit(resource.RLIMIT_NOFILE, (free + 2, hard))
try:
    ProcessOps().spawn("true", Path("/"), dict(os.environ), False)
except OSError as exc:
    print("failed", exc.errno)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
print("leaked", len(os.listdir("/proc/self/fd")) - before)
"""


def test_spawn_out_of_descriptors_leaks_no_descriptor() -> None:
    """When stderr's pipe could not be made, stdout's stayed open: each retry of an
    `always` service out of descriptors lost two more, keeping the manager starved."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(LEAK_PROBE)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "failed 24" in out and "leaked 0" in out, out
