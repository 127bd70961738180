"""The supervisor end to end: real manager, real tiny services."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.support import free_port, stubborn_manager, wait_for, write_script, write_toggle_server

PY = sys.executable
pytestmark = pytest.mark.timeout(60)


def test_dependency_waits_for_healthy_then_starts(manager, tmp_path: Path) -> None:
    port = free_port()
    write_script(tmp_path, "slow_http.py", f"""
        import time, http.server
        time.sleep(0.5)
        http.server.HTTPServer(("127.0.0.1", {port}), http.server.SimpleHTTPRequestHandler
                               ).serve_forever()
    """)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          api:
            command: {PY} slow_http.py
            port: {port}
            ready_check: {{type: http, path: /, interval: 0.1}}
          web:
            command: {PY} -c "print('web up', flush=True); import time; time.sleep(60)"
            depends_on: [api]
    """)
    m.wait_output("web waiting for api (healthy)")
    m.wait_status("web", "running")
    api = m.status("api")
    assert api["health"] == "healthy"
    out = m.output()
    assert out.index("web waiting for api (healthy)") < out.index("web started")
    assert api["url"] == f"http://localhost:{port}"


def test_dependency_timeout_starts_anyway_with_warning(manager) -> None:
    port = free_port()
    m = manager(f"""
        manager: {{hosts_management: disabled, dependency_timeout: 0.5}}
        services:
          api:
            command: sleep 60
            port: {port}
            ready_check: {{type: tcp, interval: 0.1}}
          web:
            command: sleep 60
            depends_on: [api]
    """)
    m.wait_status("web", "running")
    m.wait_output("web: api is not healthy after 0.5 s; starting anyway")


def test_policy_never_fails_without_retry(manager) -> None:
    m = manager("""
        services:
          bad: {command: "exit 3", restart_policy: never}
    """)
    s = m.wait_status("bad", "failed")
    assert s["last_exit_code"] == 3 and s["restart_count"] == 0
    time.sleep(1.3)  # a retry would come after 1 s; show that none does
    assert m.status("bad")["status"] == "failed"


def test_policy_once_retries_once_then_gives_up(manager) -> None:
    m = manager("""
        services:
          bad: {command: "echo trying; exit 1"}
    """)
    s = m.wait_status("bad", "gave_up")
    assert s["restart_count"] == 1
    assert m.lines("bad") == ["trying", "trying"]
    out = m.output()
    assert "bad exited with code 1; retrying in 1 s" in out
    assert "bad exited with code 1; gave up after 1 retry" in out


def test_policy_always_backs_off(manager) -> None:
    m = manager("""
        services:
          flappy: {command: "exit 2", restart_policy: always}
    """)
    m.wait_output("flappy exited with code 2; retrying in 1 s")
    m.wait_output("flappy exited with code 2; retrying in 2 s")
    assert m.status("flappy")["restart_count"] >= 1


def test_clean_exit_is_not_a_failure(manager) -> None:
    m = manager("""
        services:
          job: {command: "echo done"}
    """)
    s = m.wait_status("job", "stopped")
    assert s["last_exit_code"] == 0 and s["restart_count"] == 0


def test_missing_command_gives_up_and_manager_keeps_running(manager) -> None:
    m = manager("""
        services:
          ghost: {command: no-such-command-promenade}
          fine: {command: sleep 60}
    """)
    m.wait_status("ghost", "gave_up")
    assert any("no-such-command-promenade" in line and "not found" in line
               for line in m.lines("ghost"))
    assert m.request("ping")["pid"] == m.proc.pid
    assert m.status("fine")["status"] == "running"


def test_stop_kills_a_term_ignoring_service_after_5_s(manager, tmp_path: Path) -> None:
    m = stubborn_manager(manager, tmp_path)
    began = time.monotonic()
    s = m.request("stop", service="stubborn")
    took = time.monotonic() - began
    assert s["status"] == "stopped" and s["pid"] is None
    assert 4.5 <= took < 9, took
    assert "stubborn did not stop within 5 s of SIGTERM; sending SIGKILL" in m.output()


@pytest.mark.timeout(120)
def test_health_becomes_unhealthy_while_running(manager, tmp_path: Path) -> None:
    port = free_port()
    flag = tmp_path / "sick"
    write_toggle_server(tmp_path, port, flag)
    m = manager(f"""
        services:
          api:
            command: {PY} toggle.py
            port: {port}
            ready_check: {{type: http, path: /health, interval: 0.1, timeout: 5}}
    """)
    wait_for(lambda: m.status("api")["health"] == "healthy", what="healthy")
    flag.touch()
    # Healthy probes space out (up to 30 s apart), so the change may take a while.
    wait_for(lambda: m.status("api")["health"] == "unhealthy", 45, what="unhealthy")
    assert m.status("api")["status"] == "running"
    flag.unlink()
    wait_for(lambda: m.status("api")["health"] == "healthy", what="healthy again")


def test_health_waiting_then_unhealthy_after_timeout(manager) -> None:
    port = free_port()
    m = manager(f"""
        services:
          api:
            command: sleep 60
            port: {port}
            ready_check: {{type: tcp, interval: 0.1, timeout: 0.5}}
    """)
    assert m.wait_status("api", "running")["health"] in ("waiting", "unhealthy")
    wait_for(lambda: m.status("api")["health"] == "unhealthy", what="unhealthy")
    m.wait_output("api is not healthy after 0.5 s")


def test_port_in_use_fails_the_service_naming_the_holder(manager) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        m = manager(f"""
            services:
              api: {{command: sleep 60, port: {port}, restart_policy: never}}
              other: {{command: sleep 60}}
        """)
        m.wait_status("api", "failed")
        expected = f"port {port} is already in use by pid {os.getpid()}"
        assert any(expected in line for line in m.lines("api"))
        assert expected in m.output()
        m.wait_status("other", "running")
    finally:
        holder.close()


def test_env_merge_order(manager, tmp_path: Path) -> None:
    (tmp_path / "svc.env").write_text("FROM_FILE=file\nOVERRIDE_ME=file\nFROM_BOTH=file\n")
    write_script(tmp_path, "show.py", """
        import os
        keys = ("HOME", "FROM_DEFAULTS", "FROM_FILE", "OVERRIDE_ME", "FROM_BOTH",
                "PROMENADE_SERVICE")
        print(*[os.environ.get(k) for k in keys])
    """)
    m = manager(f"""
        defaults:
          env: {{FROM_DEFAULTS: defaults, OVERRIDE_ME: defaults, FROM_BOTH: defaults}}
        services:
          show:
            command: {PY} show.py
            env_file: svc.env
            env: {{FROM_BOTH: service}}
    """)
    m.wait_status("show", "stopped")
    home = os.environ["HOME"]
    assert m.lines("show") == [f"{home} defaults file file service show"]


def test_directory_is_relative_to_the_config(manager, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    m = manager("""
        services:
          where: {command: pwd, directory: sub}
    """)
    m.wait_status("where", "stopped")
    assert m.lines("where") == [str(tmp_path / "sub")]


def test_manual_start_stop_restart_keep_buffer(manager) -> None:
    m = manager("""
        services:
          tick: {command: "echo started; sleep 60"}
    """)
    first = m.wait_status("tick", "running")
    wait_for(lambda: m.lines("tick") == ["started"], what="first line")
    assert m.request("stop", service="tick")["status"] == "stopped"
    assert m.request("start", service="tick")["status"] == "running"
    m.wait_lines("tick", ["started"] * 2)
    again = m.request("restart", service="tick")
    assert again["status"] == "running" and again["pid"] != first["pid"]
    m.wait_lines("tick", ["started"] * 3)
