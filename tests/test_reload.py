"""Hot reload against a real manager: what restarts, what does not, what is refused."""

from __future__ import annotations

import itertools
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from promenade_core.bus.client import ControlClient, EventSubscriber, await_subscription
from tests.support import wait_for, write_script

pytestmark = pytest.mark.timeout(60)

BASE = """
manager: {hosts_management: disabled, config_poll_interval: 0.2}
services:
  api: {command: "sleep 60", port: PORT_API, hostname: api.promenade-test}
  worker: {command: "sleep 60"}
"""


@pytest.fixture
def running(manager):
    from tests.support import free_port

    m = manager(BASE.replace("PORT_API", str(free_port())))
    m.wait_status("api", "running")
    m.wait_status("worker", "running")
    return m


def edit(m, old: str, new: str) -> None:
    text = m.path.read_text()
    assert old in text, old
    m.path.write_text(text.replace(old, new))


def pids(m) -> dict[str, int]:
    return {name: s["pid"] for name, s in m.request("status")["services"].items()}


def test_command_change_restarts_only_that_service(running) -> None:
    m = running
    before = pids(m)
    edit(m, 'worker: {command: "sleep 60"}', 'worker: {command: "sleep 61"}')
    m.wait_output("reload: restarted worker (command changed)")
    wait_for(lambda: pids(m)["worker"] not in (None, before["worker"]), what="new worker pid")
    assert pids(m)["api"] == before["api"]


def test_add_and_remove_services(running) -> None:
    m = running
    api_pid = pids(m)["api"]
    edit(m, '  worker: {command: "sleep 60"}', '  worker2: {command: "sleep 62"}')
    m.wait_output("reload:")
    m.wait_status("worker2", "running")
    assert "worker" not in m.request("status")["services"]
    out = m.output()
    assert "started worker2" in out and "stopped worker" in out
    assert pids(m)["api"] == api_pid


def test_hostname_change_applies_in_place(running) -> None:
    m = running
    before = pids(m)
    edit(m, "hostname: api.promenade-test", "hostname: api2.promenade-test")
    m.wait_output("hostname of api updated")
    wait_for(lambda: m.status("api")["hostname"] == "api2.promenade-test", what="hostname")
    assert pids(m) == before


def test_invalid_edit_keeps_everything_running_and_reports(running) -> None:
    m = running
    before = pids(m)
    info = m.info()
    with EventSubscriber(info.events, ("config/",)) as sub, \
            ControlClient(info.control) as bus:
        await_subscription(sub, bus)
        edit(m, 'worker: {command: "sleep 60"}', "worker: {command: sleep 60, depends_on: [apii]}")
        got = sub.recv(timeout=10)
    assert got is not None
    topic, msg = got
    assert topic == "config/" and msg["event"] == "invalid"
    assert "unknown service 'apii'" in msg["error"]["message"]
    assert msg["error"]["line"] == 5 and msg["error"]["file"].endswith("promenade.yaml")
    status = m.request("status")
    assert status["config_error"]["problems"]
    assert pids(m) == before
    assert "config is invalid; still running the previous one" in m.output()
    # fixing it clears the error
    edit(m, "worker: {command: sleep 60, depends_on: [apii]}", 'worker: {command: "sleep 60"}')
    wait_for(lambda: m.request("status")["config_error"] is None, what="error cleared")
    assert pids(m) == before


def test_env_file_edit_restarts_the_service_using_it(manager, tmp_path: Path) -> None:
    (tmp_path / "w.env").write_text("COLOUR=red\n")
    m = manager("""
        manager: {config_poll_interval: 0.2}
        services:
          w: {command: "echo $COLOUR; sleep 60", env_file: w.env}
          other: {command: "sleep 60"}
    """)
    wait_for(lambda: m.lines("w") == ["red"], what="first run")
    other = pids(m)["other"]
    (tmp_path / "w.env").write_text("COLOUR=blue\n")
    wait_for(lambda: m.lines("w") == ["red", "blue"], what="restart with the new env")
    assert "restarted w (env changed: COLOUR)" in m.output()
    assert pids(m)["other"] == other


def test_touch_without_change_does_nothing(running) -> None:
    m = running
    before = pids(m)
    os.utime(m.path, None)
    time.sleep(0.8)  # several polls: show that nothing happens
    assert "reload:" not in m.output()
    assert pids(m) == before


def test_half_written_file_is_retried_before_reporting(running) -> None:
    m = running
    before = pids(m)
    text = m.path.read_text()
    # An editor that truncates, writes half, and completes the write a moment later.
    m.path.write_text(text[: len(text) // 2])
    time.sleep(0.25)
    m.path.write_text(text.replace("sleep 60\"}\n", "sleep 63\"}\n"))
    m.wait_output("reload: restarted worker (command changed)")
    assert "config is invalid" not in m.output()
    assert pids(m)["api"] == before["api"]


def test_manager_settings_needing_a_restart_are_reported(running) -> None:
    m = running
    edit(m, "config_poll_interval: 0.2}", "config_poll_interval: 0.2, port: 9999}")
    m.wait_output("manager.port changed")
    assert "takes effect after a restart of promenade" in m.output()


def test_forced_reload_over_the_bus_and_dry_run(running) -> None:
    m = running
    m.request("stop", service="worker")
    edit(m, 'worker: {command: "sleep 60"}', 'worker: {command: "sleep 64"}')
    dry = m.request("reload", dry_run=True)
    assert dry["changed"] and dry["summary"] == "reload: restarted worker (command changed)"
    real = m.request("reload")
    assert real["changed"] and real["error"] is None
    # a service the user stopped stays stopped under its new command
    assert m.status("worker")["status"] == "stopped"
    assert m.status("worker")["command"] == "sleep 64"


def test_log_buffer_resized_in_place(manager) -> None:
    m = manager("""
        manager: {config_poll_interval: 0.2, log_buffer_lines: 100}
        services:
          w: {command: "for i in 1 2 3 4 5; do echo $i; done; sleep 60"}
    """)
    wait_for(lambda: len(m.lines("w")) == 5, what="5 lines")
    pid = pids(m)["w"]
    edit(m, "log_buffer_lines: 100", "log_buffer_lines: 2")
    wait_for(lambda: m.lines("w") == ["4", "5"], what="buffer trimmed to 2")
    assert pids(m)["w"] == pid


def test_self_merge_edit_is_reported_and_a_later_valid_edit_still_applies(running) -> None:
    """`env: &x {A: "1", <<: *x}` raised a TypeError inside the watcher greenlet: nothing
    was reported and hot reload was dead, so every later valid edit was ignored."""
    m = running
    before = pids(m)
    info = m.info()
    with EventSubscriber(info.events, ("config/",)) as sub, \
            ControlClient(info.control) as bus:
        await_subscription(sub, bus)
        edit(m, 'worker: {command: "sleep 60"}',
             'worker: {command: "sleep 60", env: &x {A: "1", <<: *x}}')
        got = sub.recv(timeout=15)
    assert got is not None, "no config event: the watcher died silently"
    _, msg = got
    assert msg["event"] == "invalid" and "merges a mapping into itself" in msg["error"]["message"]
    assert msg["error"]["line"] == 5
    assert m.request("status")["config_error"]["line"] == 5
    edit(m, 'worker: {command: "sleep 60", env: &x {A: "1", <<: *x}}',
         'worker: {command: "sleep 65"}')
    m.wait_output("reload: restarted worker (command changed)")
    wait_for(lambda: m.request("status")["config_error"] is None, what="error cleared")
    assert pids(m)["api"] == before["api"]


def test_config_replaced_by_a_fifo_does_not_freeze_the_manager(running) -> None:
    """A config replaced by a FIFO made the watcher's read block for good: the whole
    supervisor froze (no `status`, no output). It is refused as not a regular file."""
    m = running
    before = pids(m)
    text = m.path.read_text()
    info = m.info()
    with EventSubscriber(info.events, ("config/",)) as sub, \
            ControlClient(info.control) as bus:
        await_subscription(sub, bus)
        m.path.unlink()
        os.mkfifo(m.path)
        got = sub.recv(timeout=15)
    assert got is not None, "no config event: is the manager frozen on the FIFO?"
    assert got[1]["event"] == "invalid"
    assert "FIFO" in got[1]["error"]["message"], got[1]["error"]
    status = m.request("status", timeout=5)
    assert "FIFO" in status["config_error"]["message"]
    assert pids(m) == before
    m.path.unlink()
    m.path.write_text(text.replace('worker: {command: "sleep 60"}',
                                   'worker: {command: "sleep 66"}'))
    m.wait_output("reload: restarted worker (command changed)")
    wait_for(lambda: m.request("status")["config_error"] is None, what="error cleared")


TICKER = """
manager: {hosts_management: disabled, config_poll_interval: 0.2}
services:
  ticker: {command: PYTHON -u ticker.py, tty: false}
"""


def _stamp(message: dict) -> float:
    return datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00")).timestamp()


def test_large_config_reload_does_not_stall_service_output(manager, tmp_path: Path) -> None:
    """Parsing a 3 MB config in the supervisor's greenlet froze every service's output
    for 1.8 s (here ~4 s for 3.3 MB); the parse runs in a thread now. Measured as the
    largest gap between the read timestamps of a ticker's lines (one every 20 ms), while
    the big file is loaded; the bound is generous for a loaded machine."""
    write_script(tmp_path, "ticker.py", """
        import time
        while True:
            print("tick")
            time.sleep(0.02)
    """)
    m = manager(TICKER.replace("PYTHON", sys.executable))
    m.wait_status("ticker", "running")
    big = "x-big:\n" + "".join(f"  KEY_{i:05d}: {'v' * 40}-{i:05d}\n" for i in range(55_000))
    assert 3_000_000 < len(big) < 4 * 1024 * 1024
    info = m.info()
    stamps: list[float] = []
    with EventSubscriber(info.events, ("log/ticker/", "config/")) as sub, \
            ControlClient(info.control) as bus:
        await_subscription(sub, bus)
        m.path.write_text(m.path.read_text() + '  marker: {command: "sleep 60"}\n' + big)
        deadline = time.monotonic() + 60
        done = None
        while done is None and time.monotonic() < deadline:
            got = sub.recv(timeout=1)
            if got is None:
                continue
            topic, msg = got
            if topic == "config/":
                done = msg
            else:
                stamps.append(_stamp(msg))
        # a few more ticks after the reload, to see a stall that ended with it
        for _ in range(10):
            got = sub.recv(timeout=2)
            if got and got[0].startswith("log/"):
                stamps.append(_stamp(got[1]))
    assert done is not None, "the reload never finished"
    assert done["event"] == "reloaded", done
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) > 10 and max(gaps) < 1.0, f"largest gap {max(gaps):.2f} s"
    m.wait_status("marker", "running")
