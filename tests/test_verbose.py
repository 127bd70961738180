"""`promenade start -v` shows the manager's decisions; the status table does not mislead."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import Manager, free_port, wait_for
from tests.support.hostsd import ORIGINAL, Hostsd

pytestmark = pytest.mark.timeout(90)

CONFIG = """
    manager: {{hosts_management: auto, config_poll_interval: 0.2}}
    services:
      api:
        command: sleep 60
        port: {port}
        hostname: api.verbose.test
        ready_check: {{type: tcp, interval: 0.1, timeout: 0.5}}
"""


def run(manager, tmp_path: Path, args: tuple[str, ...]) -> Manager:
    """A manager whose service never answers its probe, with hostsd and a reload."""
    root = Path(tempfile.mkdtemp(prefix="hostsd-"))
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)
    hostsd = Hostsd(root, hosts, root / "hostsd.sock", tmp_path / "hostsd-state",
                    ["--timeout", "2"])
    hostsd.start()
    try:
        m: Manager = manager(CONFIG.format(port=free_port()), args=args, start=False)
        m.env["PROMENADE_HOSTSD_SOCKET"] = str(hostsd.socket)
        m.start()
        wait_for(lambda: "api.verbose.test" in hosts.read_text(), 20, "api to be mapped")
        m.wait_status("api", "running")
        m.wait_output("api is not healthy after 0.5 s", 20)  # so probes have failed
        m.path.write_text(m.path.read_text().replace("sleep 60", "sleep 61"))
        m.wait_output("reload: restarted api (command changed)", 20)
        m.wait_status("api", "running")
        m.wait_output("api started (pid", 20)
        assert m.request("shutdown") is not None
        m.wait_exit(30)
    finally:
        hostsd.kill()
        shutil.rmtree(root, ignore_errors=True)
    return m


def test_verbose_shows_probe_failures_spawns_hostsd_traffic_and_reload_plans(
        manager, tmp_path: Path) -> None:
    """`-v` added one debug message in the whole code base: nothing told why a service
    stayed unhealthy, what was spawned, what hostsd was asked or what a reload decided."""
    out = run(manager, tmp_path, ("--no-ui", "-v")).output()
    assert "api: health probe failed: tcp port" in out and "connection refused" in out
    assert "api spawned: argv ['/bin/sh', '-c', 'sleep 60'], cwd " in out
    spawned = r"api spawned: .*, pid (\d+), pgid \1(, cgroup \S+)?, output on pipes"
    assert re.search(spawned, out), out
    assert 'hostsd <- {"op": "add", "service": "api", "hostname": "api.verbose.test"}' in out
    assert 'hostsd -> {"ok": true' in out
    assert "reload plan: restart api (command changed)" in out


def test_without_verbose_debug_messages_stay_out(manager, tmp_path: Path) -> None:
    """Debug messages reach neither the terminal nor the bus without `-v`."""
    out = run(manager, tmp_path, ("--no-ui",)).output()
    for debug in ("health probe failed", "spawned: argv", "hostsd <-", "reload plan"):
        assert debug not in out


def test_status_table_hides_the_previous_runs_exit_while_running(manager) -> None:
    """After `restart`, the table showed `EXIT -15` next to the running service, as if
    the current process had been killed."""
    m: Manager = manager("""
        services:
          api: {command: sleep 60}
    """)
    m.wait_status("api", "running")
    assert m.cli("restart", "api").returncode == 0
    assert m.wait_status("api", "running")["last_exit_code"] == -15  # the object keeps it
    table = m.cli("status").stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert row[header.index("EXIT")] == "-", table
    assert m.cli("stop", "api").returncode == 0
    row = m.cli("status").stdout.splitlines()[1].split()
    assert row[header.index("EXIT")] == "-15", row
