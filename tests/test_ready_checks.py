"""exec and log ready_checks, and `restart_after_failures`, with real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support import free_port, wait_for, write_script, write_toggle_server

PY = sys.executable
pytestmark = pytest.mark.timeout(90)


def gone(pid: int) -> bool:
    """No such process, or only its zombie (dead, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def recorded_pids(path: Path, count: int) -> list[int]:
    """The pids a check wrote to `path`, once it wrote `count` of them."""
    def read() -> list[int] | None:
        pids = [int(p) for p in path.read_text().split()] if path.exists() else []
        return pids if len(pids) >= count else None
    return wait_for(read, 20, f"{count} pids in {path.name}")


def test_exec_check_turns_healthy_in_the_services_folder_and_env(
        manager, tmp_path: Path) -> None:
    """`test -f "$FLAG"`, run in the service's folder with its env, passes once the
    file exists; what the check prints never reaches the service's log, but `-v` shows
    the last stderr line of a failed check."""
    work = tmp_path / "work"
    work.mkdir()
    m = manager("""
        services:
          db:
            command: echo service-line; exec sleep 60
            directory: work
            env: {FLAG: ready.flag}
            ready_check:
              type: exec
              command: 'echo check-stdout; echo "check-stderr: no $FLAG yet" >&2; test -f "$FLAG"'
              interval: 0.1
              timeout: 30
          app:
            command: sleep 60
            depends_on: [db]
    """, args=("--no-ui", "-v"))
    m.wait_output("check-stderr: no ready.flag yet")   # a few checks have failed
    assert m.status("db")["health"] == "waiting"
    assert m.status("app")["status"] == "pending"
    (work / "ready.flag").touch()
    wait_for(lambda: m.status("db")["health"] == "healthy", 20, "db to be healthy")
    m.wait_status("app", "running")
    assert m.lines("db") == ["service-line"]
    assert "exited with code 1: check-stderr: no ready.flag yet" in m.output()
    assert "[db] check-" not in m.output()


def test_hanging_exec_check_is_killed_with_its_children_at_timeout(
        manager, tmp_path: Path) -> None:
    """A check that never ends is killed, whole process group, at `timeout`; the service
    is reported not healthy once, and checks go on (each killed in turn)."""
    m = manager("""
        services:
          db:
            command: sleep 60
            ready_check:
              type: exec
              command: 'echo $$$$ >> checks.pids; sleep 300 & echo $! >> checks.pids; wait'
              interval: 0.1
              timeout: 1
    """)
    first = recorded_pids(m.tmp / "checks.pids", 2)[:2]
    m.wait_output("db is not healthy after 1 s")
    assert m.status("db")["health"] == "unhealthy"
    wait_for(lambda: all(gone(pid) for pid in first), 5, f"check processes {first} to be gone")
    recorded_pids(m.tmp / "checks.pids", 4)   # the next check ran
    assert m.status("db")["status"] == "running"
    assert m.output().count("is not healthy") == 1


def test_exec_check_running_when_the_service_stops_is_killed(manager, tmp_path: Path) -> None:
    """Stopping the service (here: the whole manager) ends a check in flight at once,
    not at its timeout."""
    m = manager("""
        services:
          db:
            command: sleep 60
            ready_check:
              type: exec
              command: 'echo $$$$ >> checks.pids; sleep 300 & echo $! >> checks.pids; wait'
              timeout: 120
    """)
    pids = recorded_pids(m.tmp / "checks.pids", 2)
    m.request("stop", service="db")
    assert m.status("db")["status"] == "stopped"
    wait_for(lambda: all(gone(pid) for pid in pids), 5, f"check processes {pids} to be gone")
    m.request("start", service="db")
    pids = recorded_pids(m.tmp / "checks.pids", 4)[2:]
    m.request("shutdown")
    m.wait_exit(30)
    wait_for(lambda: all(gone(pid) for pid in pids), 5, f"check processes {pids} to be gone")


def test_exec_check_commands_are_not_followed_as_a_services_escaped_processes(
        manager) -> None:
    """Without cgroups the manager follows processes through /proc, and took each
    running check command (its own child, in a group of its own, with the service's
    environment) for a process that had left the service: `-v` said "following pid N"
    at every check and the reaper was told of each check's group."""
    m = manager("""
        services:
          db:
            command: sleep 60
            ready_check: {type: exec, command: "sleep 0.3; false", interval: 0.05}
    """, args=("--no-ui", "-v"), start=False)
    m.env["PROMENADE_NO_CGROUP"] = "1"
    m.start()
    wait_for(lambda: m.output().count("db: health probe failed: exec") >= 5, 20,
             "5 failed checks")   # scans (every 0.5 s) saw checks running
    assert "following services' processes through /proc" in m.output()
    assert "following pid" not in m.output()


def test_exec_check_that_cannot_be_spawned_fails_with_a_reason(
        manager, tmp_path: Path) -> None:
    """The service's folder removed while it runs: the check cannot start. That is a
    failed check saying why, not an exception; the service keeps running."""
    work = tmp_path / "work"
    work.mkdir()
    m = manager("""
        services:
          db:
            command: sleep 60
            directory: work
            ready_check: {type: exec, command: "true", interval: 0.1, timeout: 1}
    """, args=("--no-ui", "-v"))
    m.wait_status("db", "running")
    work.rmdir()
    m.wait_output(f"db: health probe failed: exec 'true': could not run /bin/sh in {work}: "
                  "No such file or directory")
    wait_for(lambda: m.status("db")["health"] == "unhealthy", 20, "db to be unhealthy")
    assert m.status("db")["status"] == "running"
    assert "Traceback" not in m.output() and "internal error" not in m.output()


def test_exec_check_edited_on_reload_applies_in_place(manager, tmp_path: Path) -> None:
    """A ready_check added on reload checks the running process (no restart): `waiting`
    until it passes; removed, it ends, and a check command running then is killed."""
    plain = "{command: sleep 60}"
    checked = ("{command: sleep 60, ready_check: {type: exec, interval: 0.1, timeout: 60, "
               "command: 'test -f flag && exit 0; echo $$$$ >> hanging.pids; exec sleep 300'}}")
    m = manager(f"""
        services:
          db: {plain}
    """)
    pid = m.wait_status("db", "running")["pid"]

    def reload(old: str, new: str) -> None:
        m.path.write_text(m.path.read_text().replace(old, new))
        m.request("reload")

    reload(plain, checked)
    hanging = recorded_pids(m.tmp / "hanging.pids", 1)
    assert m.status("db")["health"] == "waiting"
    reload(checked, plain)
    wait_for(lambda: m.status("db")["health"] == "unknown", 20, "db without a check")
    wait_for(lambda: all(gone(p) for p in hanging), 5, f"check processes {hanging} gone")
    (tmp_path / "flag").touch()
    reload(plain, checked)
    wait_for(lambda: m.status("db")["health"] == "healthy", 20, "db to be healthy")
    assert m.status("db")["pid"] == pid and m.status("db")["restart_count"] == 0


#: Prints lines until `go` exists, then one that matches, with colour codes inside it.
VITE = r"""
    import os, sys, time
    print("\x1b[36mVITE v5.0\x1b[0m  ready in soon ms", flush=True)
    for _ in range(600):
        if os.path.exists("go"):
            break
        time.sleep(0.05)
    print("  \x1b[32mVITE\x1b[0m ready in \x1b[1m312\x1b[22m ms", file=sys.stderr, flush=True)
    time.sleep(60)
"""


def test_log_check_turns_healthy_on_a_matching_line_with_colour_codes(
        manager, tmp_path: Path) -> None:
    """No match within `timeout`: reported not healthy, once; a line that matches once
    escape codes are stripped (on stderr here) then makes it healthy."""
    write_script(tmp_path, "vite.py", VITE)
    write_script(tmp_path, "quick.py", """
        import time
        print("ready in 5 ms", flush=True)   # the first line
        time.sleep(60)
    """)
    m = manager(rf"""
        services:
          vite:
            command: {PY} vite.py
            ready_check: {{type: log, pattern: 'ready in \d+ ms', timeout: 1}}
          quick:
            command: {PY} quick.py
            ready_check: {{type: log, pattern: 'ready in \d+ ms'}}
    """)
    wait_for(lambda: m.status("quick")["health"] == "healthy", 20, "quick to be healthy")
    m.wait_lines("vite", ["\x1b[36mVITE v5.0\x1b[0m  ready in soon ms"])
    m.wait_output(r"vite is not healthy after 1 s (no output line matched 'ready in \d+ ms')")
    assert m.status("vite")["health"] == "unhealthy"
    (tmp_path / "go").touch()
    wait_for(lambda: m.status("vite")["health"] == "healthy", 20, "vite to be healthy")
    assert m.output().count("is not healthy") == 1


def test_restart_after_failures_restarts_a_service_that_turned_unhealthy(
        manager, tmp_path: Path) -> None:
    """Healthy, then 3 failed probes in a row: restarted once (restart_count 1, the
    reason logged). Its next run never becomes healthy while the endpoint fails, and a
    service never healthy in its run is not restarted again."""
    port = free_port()
    sick = tmp_path / "sick"
    write_toggle_server(tmp_path, port, sick)
    m = manager(f"""
        services:
          api:
            command: {PY} toggle.py
            port: {port}
            restart_policy: never
            ready_check:
              type: http
              path: /health
              interval: 0.1
              timeout: 1
              restart_after_failures: 3
    """)
    wait_for(lambda: m.status("api")["health"] == "healthy", 20, "api to be healthy")
    first_pid = m.status("api")["pid"]
    sick.touch()
    reason = ("api restarted (unhealthy: 3 failed checks in a row "
              f"(GET http://127.0.0.1:{port}/health: HTTP 500))")
    m.wait_output(reason, 45)
    status = wait_for(lambda: (s := m.status("api"))["pid"] not in (None, first_pid) and s,
                      20, "api to run again")
    assert status["restart_count"] == 1
    m.wait_output("api is not healthy after 1 s")
    sick.unlink()
    wait_for(lambda: m.status("api")["health"] == "healthy", 20, "api to be healthy again")
    assert m.status("api")["restart_count"] == 1
    assert m.output().count("api restarted (") == 1
