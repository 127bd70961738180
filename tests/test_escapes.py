"""Processes that leave their service's process group (`setsid`) and drop the
PROMENADE_* markers from their environment are still stopped: by `promenade stop`, by a
clean shutdown and by the reaper after a SIGKILL of the manager.

Each test runs twice: with a cgroup per service (root here can create them in the
cgroup v2 tree) and with the fallback that follows descendants through /proc
(`PROMENADE_NO_CGROUP=1`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from promenade_core.supervise import cgroups
from tests.support import Manager, wait_for, write_script

pytestmark = pytest.mark.timeout(120)

MARKER = "promenade-escapee-test"

#: The service: one child that calls setsid and stays the service's child (C), and one
#: daemon made by a double fork (B: its parent A calls setsid, forks B, and exits once
#: the test creates the release file, so that B is then reparented to the manager).
#: Both drop every PROMENADE_* variable, as `env -i` or a daemon's clean-up would.
ESCAPE = f"""
    import os, sys, time
    pidfile, release = sys.argv[1], sys.argv[2]
    clean = {{k: v for k, v in os.environ.items() if not k.startswith("PROMENADE_")}}
    sleeper = [sys.executable, "-c", "import time; time.sleep(1000)", "{MARKER}"]

    c = os.fork()
    if c == 0:
        os.setsid()
        os.execve(sys.executable, sleeper, clean)
    r, w = os.pipe()
    a = os.fork()
    if a == 0:
        os.setsid()
        b = os.fork()
        if b == 0:
            os.execve(sys.executable, sleeper, clean)
        os.write(w, str(b).encode())
        while not os.path.exists(release):
            time.sleep(0.02)
        os._exit(0)
    os.close(w)
    b = int(os.read(r, 32))
    with open(pidfile + ".tmp", "w") as f:
        f.write(f"{{c}} {{b}}")
    os.rename(pidfile + ".tmp", pidfile)
    print("ready", flush=True)
    time.sleep(1000)
"""


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().decode().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str) -> bool:
    """Still running (not a zombie) and still the same process (start time)."""
    fields = _stat(pid)
    return fields is not None and fields[19] == start and fields[0] != "Z"


def _zombie_children(parent: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))) and fields[0] == "Z" \
                and int(fields[1]) == parent:
            out.append(int(name))
    return out


def _cgroup_folder(pid: int) -> Path | None:
    with open("/proc/self/mountinfo") as f, open(f"/proc/{pid}/cgroup") as g:
        return cgroups.own_folder(f.read(), g.read())


class Escapees:
    """The two escaped processes of one run of ESCAPE, killed in teardown whatever happens."""

    def __init__(self, tmp: Path) -> None:
        self.pidfile = tmp / "escapees"
        self.release = tmp / "release"
        self.procs: dict[int, str] = {}

    def read(self) -> tuple[int, int]:
        c, b = (int(p) for p in wait_for(self.pidfile.read_text, what="the pid file").split())
        for pid in (c, b):
            fields = _stat(pid)
            assert fields is not None, f"escapee {pid} is already gone"
            self.procs[pid] = fields[19]
        return c, b

    def alive(self) -> list[int]:
        return [pid for pid, start in self.procs.items() if _alive(pid, start)]

    def kill(self) -> None:
        for pid in self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(params=["cgroup", "no-cgroup"])
def mode(request: pytest.FixtureRequest) -> str:
    if request.param == "cgroup":
        probe = cgroups.open_root("probe", {})
        if probe is None:
            pytest.skip("no cgroup v2 tree we may write to")
        probe.close()
    return str(request.param)


@pytest.fixture
def escapees(tmp_path: Path) -> Iterator[Escapees]:
    found = Escapees(tmp_path)
    yield found
    found.kill()


def start_in(m: Manager, mode: str) -> None:
    """Start `m` with a cgroup per service, or forced onto the /proc fallback."""
    if mode == "no-cgroup":
        m.env[cgroups.ENV_DISABLE] = "1"
    m.start()


def _start(tmp_path: Path, manager, mode: str, found: Escapees) -> tuple[Manager, int, int]:
    """A manager running ESCAPE, once both escapees left and the daemon was reparented."""
    write_script(tmp_path, "escape.py", ESCAPE)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          escape: {{command: "{sys.executable} escape.py {found.pidfile} {found.release}"}}
    """, args=("--no-ui", "-v"), start=False)
    start_in(m, mode)
    m.wait_lines("escape", ["ready"], timeout=20)
    c, b = found.read()
    if mode == "no-cgroup":
        # The fallback can only stop what one of its scans has seen.
        m.wait_output(f"following pid {c}")
        m.wait_output(f"following pid {b}")
    else:
        assert _cgroup_folder(c) == _cgroup_folder(b) != _cgroup_folder(os.getpid())
    found.release.touch()
    assert m.proc is not None
    wait_for(lambda: (s := _stat(b)) is not None and int(s[1]) == m.proc.pid,
             what="the daemon to be reparented to the manager (the subreaper)")
    return m, c, b


def test_setsid_child_without_markers_is_stopped_by_stop(manager, tmp_path: Path, mode: str,
                                                         escapees: Escapees) -> None:
    """`promenade stop SERVICE` signalled only the service's process group: a child that
    had called setsid (and dropped PROMENADE_INSTANCE) kept running for ever."""
    m, c, _ = _start(tmp_path, manager, mode, escapees)
    folder = _cgroup_folder(c)
    m.request("stop", service="escape")
    m.wait_status("escape", "stopped")
    wait_for(lambda: escapees.alive() == [], timeout=20, what="the escapees to be stopped")
    assert m.proc is not None
    manager_pid = m.proc.pid
    wait_for(lambda: _zombie_children(manager_pid) == [],
             what="the manager to reap the orphans it killed")
    if mode == "cgroup":
        assert folder is not None
        wait_for(lambda: not folder.exists(), what=f"{folder} to be removed")


def test_setsid_child_without_markers_is_stopped_at_shutdown(manager, tmp_path: Path,
                                                             mode: str,
                                                             escapees: Escapees) -> None:
    """A clean shutdown (SIGTERM) left setsid'd processes of a service running."""
    m, c, _ = _start(tmp_path, manager, mode, escapees)
    folder = _cgroup_folder(c)
    m.signal(signal.SIGTERM)
    assert m.wait_exit(30) == 0
    wait_for(lambda: escapees.alive() == [], timeout=20, what="the escapees to be stopped")
    if mode == "cgroup":
        assert folder is not None
        wait_for(lambda: not folder.parent.exists(), what=f"{folder.parent} to be removed")


def test_setsid_child_without_markers_is_killed_by_the_reaper(manager, tmp_path: Path,
                                                              mode: str,
                                                              escapees: Escapees) -> None:
    """After a SIGKILL of the manager, the reaper killed the recorded process groups
    only: a setsid'd child, in a group of its own, survived it."""
    m, c, _ = _start(tmp_path, manager, mode, escapees)
    folder = _cgroup_folder(c)
    m.signal(signal.SIGKILL)
    m.wait_exit(10)
    wait_for(lambda: escapees.alive() == [], timeout=20, what="the escapees to be killed")
    if mode == "cgroup":
        assert folder is not None
        wait_for(lambda: not folder.parent.exists(), what=f"{folder.parent} to be removed")


#: A daemon made at once: its parent exits straight away, so the fallback may never see
#: it as the service's (it can only find it as an orphan of unknown origin).
DAEMON = f"""
    import os, sys, time
    clean = {{k: v for k, v in os.environ.items() if not k.startswith("PROMENADE_")}}
    r, w = os.pipe()
    a = os.fork()
    if a == 0:
        os.setsid()
        b = os.fork()
        if b == 0:
            os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(1000)",
                                       "{MARKER}"], clean)
        os.write(w, str(b).encode())
        os._exit(0)
    os.waitpid(a, 0)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(f"{{a}} " + os.read(r, 32).decode())
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    print("ready", flush=True)
    time.sleep(1000)
"""


def test_daemon_of_unknown_origin_is_stopped_at_shutdown(manager, tmp_path: Path, mode: str,
                                                         escapees: Escapees) -> None:
    """A double-fork daemon without markers whose parent exited at once was left
    running after the manager stopped."""
    write_script(tmp_path, "daemon.py", DAEMON)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          daemon: {{command: "{sys.executable} daemon.py {escapees.pidfile}"}}
    """, start=False)
    start_in(m, mode)
    m.wait_lines("daemon", ["ready"], timeout=20)
    _, b = (int(p) for p in escapees.pidfile.read_text().split())
    fields = _stat(b)
    assert fields is not None
    escapees.procs[b] = fields[19]
    m.signal(signal.SIGTERM)
    assert m.wait_exit(30) == 0
    wait_for(lambda: escapees.alive() == [], timeout=20, what="the daemon to be stopped")


#: A service that starts a setsid child and then exits on its own (code 0).
LEAVER = f"""
    import os, sys, time
    clean = {{k: v for k, v in os.environ.items() if not k.startswith("PROMENADE_")}}
    c = os.fork()
    if c == 0:
        os.setsid()
        os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(1000)",
                                   "{MARKER}"], clean)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(f"{{c}} {{c}}")
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    print("ready", flush=True)
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.02)
"""


def test_setsid_child_of_a_service_that_exited_is_stopped(manager, tmp_path: Path, mode: str,
                                                          escapees: Escapees) -> None:
    """When a service's main process exited, only its process group was cleaned up:
    a setsid'd child it left kept running while the service showed `stopped`."""
    write_script(tmp_path, "leaver.py", LEAVER)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          leaver:
            command: "{sys.executable} leaver.py {escapees.pidfile} {escapees.release}"
            restart_policy: never
    """, args=("--no-ui", "-v"), start=False)
    start_in(m, mode)
    m.wait_lines("leaver", ["ready"], timeout=20)
    c, _ = escapees.read()
    if mode == "no-cgroup":
        m.wait_output(f"following pid {c}")
    escapees.release.touch()
    m.wait_status("leaver", "stopped", timeout=20)
    wait_for(lambda: escapees.alive() == [], timeout=20, what="the child to be stopped")


def test_a_service_that_cannot_join_its_cgroup_fails_saying_why(tmp_path: Path) -> None:
    """Running the command outside its cgroup would silently bring the escapes back:
    the join refuses to run it and says what to do."""
    missing = tmp_path / "gone"
    done = subprocess.run(["/bin/sh", "-c", cgroups.JOIN, "promenade-join", str(missing),
                           "echo ran"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 126
    assert "ran" not in done.stdout
    assert f"could not join the cgroup {missing}" in done.stderr
    assert "PROMENADE_NO_CGROUP=1" in done.stderr
