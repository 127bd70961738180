"""Tasks, dependency conditions, autostart, stop control and ordered shutdown, end to
end: a real manager and real tiny services that write down when things happen."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.support import wait_for, write_script

PY = sys.executable
pytestmark = pytest.mark.timeout(90)


def stamps(path: Path) -> dict[str, float]:
    """`event time` lines written by the services, as a dict."""
    found: dict[str, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            event, _, when = line.partition(" ")
            found.setdefault(event, float(when))
    return found


def stamp(event: str, then: str = "") -> str:
    """A shell command that appends `event <time>` to ../stamps, then runs `then`."""
    command = f'echo "{event} $(date +%s.%N)" >> stamps'
    return f"{command}; {then}" if then else command


SIGNALLED = """
    import signal, sys, time
    name, handled, pause = sys.argv[1], getattr(signal, sys.argv[2]), float(sys.argv[3])
    if handled != signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    def bye(*_):
        time.sleep(pause)
        open("stamps", "a").write(f"{name} {time.time()}\\n")
        sys.exit(0)
    signal.signal(handled, bye)
    print("up", flush=True)
    while True:
        time.sleep(0.05)
"""


def signalled(tmp_path: Path, name: str, handled: str = "SIGTERM", pause: float = 0) -> str:
    """A command whose process notes `name <time>` in ./stamps when `handled` arrives
    (ignoring SIGTERM if that is not it), `pause` s later, then exits 0."""
    write_script(tmp_path, "signalled.py", SIGNALLED)
    return f"exec {PY} signalled.py {name} {handled} {pause}"


def test_a_task_completes_before_its_dependant_starts(manager, tmp_path: Path) -> None:
    m = manager(f"""
        services:
          migrate:
            command: {stamp("migrate-start", "sleep 0.7")}; {stamp("migrate-end")}
            restart_policy: never
          api:
            command: {stamp("api-start", "sleep 60")}
            depends_on:
              migrate: {{condition: completed_successfully}}
    """)
    m.wait_output("api waiting for migrate (completed successfully)")
    m.wait_status("api", "running")
    migrate = m.status("migrate")
    assert (migrate["status"], migrate["last_exit_code"], migrate["completed"]) == (
        "stopped", 0, True)
    assert migrate["status_reason"] == "completed: exited with code 0"
    wait_for(lambda: "api-start" in stamps(tmp_path / "stamps"))
    seen = stamps(tmp_path / "stamps")
    assert seen["migrate-start"] + 0.6 < seen["migrate-end"] <= seen["api-start"]
    assert m.status("api")["conditions"] == {"migrate": "completed_successfully"}


def test_a_failing_task_blocks_its_dependant_with_the_reason(manager, tmp_path: Path) -> None:
    m = manager("""
        services:
          migrate:
            command: echo cannot migrate; exit 4
            restart_policy: never
          api:
            command: touch api-ran; sleep 60
            depends_on:
              migrate: {condition: completed_successfully}
          web:
            command: sleep 60
            depends_on: {api: {condition: started}}
    """)
    api = m.wait_status("api", "failed")
    assert api["status_reason"] == "dependency migrate exited with code 4"
    web = m.wait_status("web", "failed")
    assert web["status_reason"] == (
        "dependency api failed (dependency migrate exited with code 4)")
    assert m.status("migrate")["status_reason"] == "exited with code 4"
    assert not (tmp_path / "api-ran").exists()
    m.wait_output("api not started: dependency migrate exited with code 4")


def test_autostart_false_waits_and_starting_it_starts_its_dependencies(manager) -> None:
    m = manager("""
        services:
          db:
            command: sleep 60
            autostart: false
          docs:
            command: sleep 60
            autostart: false
            depends_on: [db]
          api:
            command: sleep 60
    """)
    m.wait_status("api", "running")
    for name in ("db", "docs"):
        doc = m.status(name)
        assert (doc["status"], doc["autostart"]) == ("stopped", False)
        assert doc["status_reason"] == "autostart: false; start it by hand"
    result = m.cli("start", "docs", check=True)
    assert "docs: running" in result.stdout
    assert m.wait_status("db", "running")["status_reason"] is None


def test_an_autostart_service_brings_up_a_manual_dependency(manager) -> None:
    m = manager("""
        services:
          db:
            command: sleep 60
            autostart: false
          api:
            command: sleep 60
            depends_on: [db]
    """)
    m.wait_status("api", "running")
    assert m.status("db")["status"] == "running"


def test_stop_signal_int_reaches_a_service_that_only_handles_int(manager,
                                                                  tmp_path: Path) -> None:
    m = manager(f"""
        services:
          worker:
            command: {signalled(tmp_path, "worker", "SIGINT")}
            stop_signal: INT
            stop_timeout: 10
    """)
    m.wait_lines("worker", ["up"])
    began = time.monotonic()
    m.cli("stop", "worker", check=True)
    assert time.monotonic() - began < 5           # not the 10 s of stop_timeout
    assert "worker" in stamps(tmp_path / "stamps")
    assert "SIGKILL" not in m.output()


def test_stop_command_runs_before_the_signal(manager, tmp_path: Path) -> None:
    m = manager(f"""
        services:
          db:
            command: {signalled(tmp_path, "signal")}
            stop_command: {stamp("stop-command", "sleep 0.3")}; echo stopping db now
    """)
    m.wait_lines("db", ["up"])
    m.cli("stop", "db", check=True)
    seen = stamps(tmp_path / "stamps")
    assert seen["stop-command"] + 0.25 < seen["signal"]
    assert "stopping db now" in m.lines("db")


def test_shutdown_stops_dependants_before_their_dependencies(manager,
                                                             tmp_path: Path) -> None:
    m = manager(f"""
        services:
          db:
            command: {signalled(tmp_path, "db", pause=0.2)}
          api:
            command: {signalled(tmp_path, "api", pause=0.2)}
            depends_on: [db]
          web:
            command: {signalled(tmp_path, "web", pause=0.2)}
            depends_on: {{api: {{condition: started}}}}
          other:
            command: {signalled(tmp_path, "other", pause=0.2)}
    """)
    for name in ("db", "api", "web", "other"):
        m.wait_status(name, "running")
    m.cli("stop", check=True)
    seen = stamps(tmp_path / "stamps")
    assert seen["web"] < seen["api"] < seen["db"]
    assert seen["other"] < seen["api"]           # independent: stopped with the first wave
