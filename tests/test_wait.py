"""`promenade wait`, `promenade start SERVICE…`, `start -d --wait` and GET /api/wait,
against real managers running real tiny processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import PROMENADE, Manager, free_port, wait_for, write_script
from tests.support.web import start_dashboard

PY = sys.executable
pytestmark = pytest.mark.timeout(90)

SLEEPER = f'{PY} -c "import time; time.sleep(600)"'

#: Listens on argv[1] after argv[2] seconds: healthy (tcp check) only then.
LATE_LISTENER = """
import socket, sys, time
time.sleep(float(sys.argv[2]))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
while True:
    s.accept()[0].close()
"""

SERVICES = f"""
services:
  db: {{command: '{SLEEPER}'}}
  api: {{command: '{SLEEPER}', depends_on: [db]}}
  web: {{command: '{SLEEPER}'}}
  tool: {{command: '{SLEEPER}', autostart: false}}
  crasher:
    command: {PY} -c "raise SystemExit(3)"
    restart_policy: never
    autostart: false
    # never up, even in the moment it runs: a wait must see it fail, not run
    ready_check: {{type: exec, command: "false", interval: 0.2}}
  flapper:
    command: {PY} -c "raise SystemExit(4)"
    restart_policy: always
    autostart: false
"""
SUBSET = "manager: {hosts_management: disabled}" + SERVICES


@contextlib.contextmanager
def daemon_cleanup(m: Manager) -> Iterator[None]:
    """A daemon is no child of the test: stop it, and kill it if the stop did not."""
    try:
        yield
    finally:
        info = m.info() if m.path.exists() else None
        if info is not None:
            m.cli("stop", timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
        m.cleanup()


def statuses(m: Manager) -> dict[str, str]:
    return {n: s["status"] for n, s in m.request("status")["services"].items()}


# --------------------------------------------------------------------------- wait

def test_wait_exits_0_once_every_autostart_service_is_up(manager, tmp_path: Path) -> None:
    port = free_port()
    write_script(tmp_path, "late.py", LATE_LISTENER)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          db:
            command: {PY} late.py {port} 1.5
            port: {port}
            ready_check: {{type: tcp, interval: 0.1}}
          api: {{command: '{SLEEPER}', depends_on: [db]}}
          tool: {{command: '{SLEEPER}', autostart: false}}
    """)
    began = time.monotonic()
    out = m.cli("wait", "-t", "30")
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - began >= 1.0   # it waited for db's health
    lines = sorted(out.stdout.splitlines())
    assert lines[0].startswith("api: running (pid ") and lines[1].startswith("db: running ("), lines
    assert "healthy" in lines[1]
    assert m.status("db")["health"] == "healthy"
    assert not any(line.startswith("tool") for line in lines)   # autostart: false


def test_wait_counts_a_task_that_exited_0_as_up(manager) -> None:
    m = manager(f"""
        services:
          migrate: {{command: '{PY} -c "print(1)"', restart_policy: never}}
          api: {{command: '{SLEEPER}'}}
    """)
    out = m.cli("wait", "-t", "30")
    assert out.returncode == 0, out.stderr
    assert "migrate: stopped (" in out.stdout


def test_wait_exits_1_as_soon_as_a_service_fails(manager) -> None:
    """crasher is never up (its port never listens), so only its failure ends the wait."""
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          ok: {{command: '{SLEEPER}'}}
          crasher:
            command: {PY} -c "import time; time.sleep(1); raise SystemExit(3)"
            restart_policy: never
            port: {free_port()}
            ready_check: {{type: tcp, interval: 0.1}}
    """)
    began = time.monotonic()
    out = m.cli("wait", "--timeout", "60")
    assert out.returncode == 1, out
    assert time.monotonic() - began < 20   # not the timeout
    assert out.stderr.startswith("Error: not every service can come up:\n")
    assert "  crasher: failed" in out.stderr and "ok:" not in out.stderr


def test_wait_exits_1_at_the_timeout_naming_what_is_not_up(manager) -> None:
    port = free_port()   # nothing ever listens there
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          api:
            command: '{SLEEPER}'
            port: {port}
            ready_check: {{type: tcp, interval: 0.1}}
          db: {{command: '{SLEEPER}'}}
    """)
    began = time.monotonic()
    waiter = subprocess.Popen([*PROMENADE, "wait", "api", "db", "-t", "1.5", "-c", str(m.path)],
                              env=m.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        # the wait blocks in its own greenlet on the manager: others are answered meanwhile
        for _ in range(5):
            m.request("status", timeout=1)
        assert waiter.poll() is None and time.monotonic() - began < 1.5
        _, err = waiter.communicate(timeout=20)
    finally:
        waiter.kill()
        waiter.wait(5)
    took = time.monotonic() - began
    assert waiter.returncode == 1, err
    assert 1.5 <= took < 10
    assert err.startswith("Error: still not up after 1.5 s:\n  api: running"), err
    assert "db" not in err


def test_wait_for_a_service_never_started_fails_at_once_saying_how_to_start_it(
        manager) -> None:
    m = manager(SUBSET)
    out = m.cli("wait", "tool", "-t", "60")
    assert out.returncode == 1, out
    assert "  tool: stopped (" in out.stderr
    assert "start it with `promenade start tool`" in out.stderr


def test_wait_for_an_unknown_service_is_a_usage_error(manager) -> None:
    m = manager(SUBSET)
    out = m.cli("wait", "apii")
    assert out.returncode == 2
    assert "unknown service 'apii' (known: db, api, web, tool, crasher, flapper)" in out.stderr


def test_wait_without_a_manager_exits_3(tmp_path: Path) -> None:
    m = Manager(tmp_path, SUBSET)
    out = m.cli("wait", "api")
    assert out.returncode == 3
    assert f"no Promenade manager is running for {m.path}" in out.stderr


# --------------------------------------------------------------------------- start a subset

def test_start_services_with_no_manager_starts_only_them_and_their_dependencies(
        manager) -> None:
    m = manager(SUBSET, args=("--no-ui", "api"))
    m.wait_status("api", "running")
    m.wait_status("db", "running")
    assert statuses(m) == {"db": "running", "api": "running", "web": "stopped",
                           "tool": "stopped", "crasher": "stopped", "flapper": "stopped"}
    # the rest can be started later
    out = m.cli("start", "web", "tool")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("web: running (pid ") and lines[1].startswith("tool: running")
    assert m.cli("wait", "-t", "10").returncode == 0   # every autostart service now


def test_start_with_a_manager_exits_1_when_the_service_fails(manager) -> None:
    m = manager(SUBSET)
    out = m.cli("start", "crasher")
    assert out.returncode == 1, out
    assert out.stdout.startswith("crasher: failed")


def test_start_with_a_manager_exits_1_when_the_service_is_retrying(manager) -> None:
    """Today's bug: `start` printed "running" for a service that died a second later."""
    m = manager(SUBSET)
    out = m.cli("start", "flapper")
    assert out.returncode == 1, out
    assert out.stdout.startswith(("flapper: retrying", "flapper: failed")), out.stdout


# --------------------------------------------------------------------------- start -d --wait

def test_start_daemon_wait_returns_once_the_services_are_up(tmp_path: Path) -> None:
    m = Manager(tmp_path, SUBSET)
    with daemon_cleanup(m):
        out = m.cli("start", "-d", "--no-ui", "--wait", "--timeout", "30", "api")
        assert out.returncode == 0, out.stderr
        assert "running in the background" in out.stdout
        assert "api: running (pid " in out.stdout
        assert statuses(m)["web"] == "stopped"


def test_start_daemon_wait_exits_1_when_a_target_fails(tmp_path: Path) -> None:
    m = Manager(tmp_path, SUBSET)
    with daemon_cleanup(m):
        out = m.cli("start", "-d", "--no-ui", "--wait", "crasher")
        assert out.returncode == 1, out
        assert "  crasher: failed" in out.stderr
        assert m.info() is not None   # the manager itself keeps running


# --------------------------------------------------------------------------- REST

def test_rest_wait_outlasts_the_quick_request_timeout(tmp_path: Path) -> None:
    """The web process's bus pool gives quick commands 5 s: a wait gets its own
    timeout plus a margin, so a service healthy after 6 s is a 200, not a 504."""
    api_port, port = free_port(), free_port()
    write_script(tmp_path, "late.py", LATE_LISTENER)
    dash = start_dashboard(tmp_path, f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          api:
            command: {PY} late.py {api_port} 6
            port: {api_port}
            ready_check: {{type: tcp, interval: 0.1}}
    """, port=port)
    try:
        reply = dash.get("/api/wait?services=api&timeout=30", timeout=40)
        assert reply.status == 200, reply.raw
        assert reply.body["ok"] is True
        assert reply.body["services"]["api"]["health"] == "healthy"
        again = dash.get("/api/wait?services=api,api&timeout=0.2")
        assert again.status == 200   # up already: nothing to wait for
        bad = dash.get("/api/wait?timeout=0")
        assert bad.status == 400 and bad.body["error"]["code"] == "bad_request"
    finally:
        dash.manager.cleanup()


def test_rest_wait_not_up_is_a_409(tmp_path: Path) -> None:
    port = free_port()
    dash = start_dashboard(tmp_path, f"manager: {{port: {port}, hosts_management: disabled}}"
                           + SERVICES, port=port)
    try:
        wait_for(lambda: dash.service("api")["status"] == "running", 15, "api running")
        reply = dash.get("/api/wait?services=tool")
        assert reply.status == 409, reply.raw
        assert reply.body["failed"][0]["verdict"] == "not_started"
        unknown = dash.get("/api/wait?services=apii")
        assert unknown.status == 404 and unknown.body["error"]["code"] == "unknown_service"
    finally:
        dash.manager.cleanup()
