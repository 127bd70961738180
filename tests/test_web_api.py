"""The REST API against a real manager and its real web process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Manager, free_port, wait_for, write_script
from tests.support.web import Dashboard, children, is_web, start_dashboard, web_pid

PY = sys.executable
pytestmark = pytest.mark.timeout(90)


# --------------------------------------------------------------------------- fixture

CONFIG = """
manager:
  port: {port}
  hosts_management: disabled
  config_poll_interval: 0.3
services:
  api:
    command: {PY} -m http.server {api_port} --bind 127.0.0.1
    port: {api_port}
    hostname: api.test
    env:
      API_TOKEN: hunter2
      DB_PASSWORD: sw0rdfish
      PLAIN_SETTING: visible
      DATABASE_URL: postgres://app:pg-s3cret@db.internal:5432/app
  printer:
    command: {PY} printer.py
  toggler:
    command: STRIPE_SECRET=sk_live_abc123 {PY} -c "import time; time.sleep(600)"
  crasher:
    command: {PY} -c "print('about to fail', flush=True); raise SystemExit(3)"
    restart_policy: never
"""

PRINTER = """
import sys, time
for i in range(5):
    print(f"line {i}", flush=True)
time.sleep(0.3)  # stdout and stderr are separate pipes: keep their order certain
print("oops on stderr", file=sys.stderr, flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    folder = tmp_path_factory.mktemp("webapi")
    write_script(folder, "printer.py", PRINTER)
    port = free_port()
    d = start_dashboard(folder, CONFIG.format(port=port, PY=PY, api_port=free_port()),
                        port=port)
    yield d
    d.manager.cleanup()


# --------------------------------------------------------------------------- tests

STATUS_FIELDS = {"name", "status", "health", "pid", "port", "hostname", "url",
                 "uptime_seconds", "restart_count", "last_exit_code",
                 "cpu_percent", "memory_bytes"}


def test_status_has_every_field_of_the_spec(dash: Dashboard) -> None:
    dash.wait_status("api", "running")
    dash.wait_status("crasher", "failed")
    doc = dash.status()
    assert set(doc["services"]) == {"api", "printer", "toggler", "crasher"}
    for name, svc in doc["services"].items():
        assert set(svc) >= STATUS_FIELDS, f"{name} lacks {STATUS_FIELDS - set(svc)}"
        assert svc["name"] == name
    api = doc["services"]["api"]
    assert isinstance(api["pid"], int) and api["pid"] > 0
    assert api["port"] is not None and api["hostname"] == "api.test"
    assert api["url"] == f"http://localhost:{api['port']}"
    assert api["uptime_seconds"] >= 0 and api["restart_count"] == 0
    assert doc["services"]["crasher"]["last_exit_code"] == 3
    assert doc["config_path"] == str(dash.manager.path)
    assert doc["config_last_modified"].endswith("Z")
    assert doc["manager_uptime_seconds"] >= 0


def test_status_reports_cpu_and_memory_of_running_services(dash: Dashboard) -> None:
    dash.wait_status("api", "running")
    api = wait_for(lambda: (s := dash.service("api"))["memory_bytes"] and s, 10,
                   "api's memory to be sampled")
    assert api["memory_bytes"] > 1_000_000
    assert isinstance(api["cpu_percent"], float) and api["cpu_percent"] >= 0
    crasher = dash.service("crasher")
    assert crasher["cpu_percent"] is None and crasher["memory_bytes"] is None


def test_single_service_and_unknown_service(dash: Dashboard) -> None:
    reply = dash.get("/api/services/printer")
    assert reply.status == 200
    assert reply.body["name"] == "printer" and set(reply.body) >= STATUS_FIELDS
    for method, path in [("GET", "/api/services/nope"), ("POST", "/api/services/nope/stop"),
                         ("POST", "/api/services/nope/start"),
                         ("POST", "/api/services/nope/restart"),
                         ("GET", "/api/services/nope/logs")]:
        reply = dash.call(method, path)
        assert reply.status == 404, (method, path, reply.raw)
        assert reply.body["error"]["code"] == "unknown_service"
        assert "'nope'" in reply.body["error"]["message"]


def test_every_error_is_json_with_a_stable_code(dash: Dashboard) -> None:
    cases = [
        ("GET", "/api/does-not-exist", 404, "not_found"),
        ("GET", "/nothing-here", 404, "not_found"),
        ("POST", "/api/services/api/explode", 404, "not_found"),
        ("DELETE", "/api/status", 405, "method_not_allowed"),
        ("GET", "/api/services/printer/logs?tail=abc", 400, "bad_request"),
        ("GET", "/api/services/printer/logs?since=-1", 400, "bad_request"),
        ("POST", "/api/services/toggler/stop?wait=maybe", 400, "bad_request"),
        ("GET", "/api/logs/stream", 400, "websocket_required"),
    ]
    for method, path, status, code in cases:
        reply = dash.call(method, path)
        assert reply.status == status, (method, path, reply.raw)
        assert reply.headers["content-type"] == "application/json", (path, reply.headers)
        assert reply.body["error"]["code"] == code, (path, reply.body)
        assert reply.body["error"]["message"], path


def test_stop_then_start_changes_the_status(dash: Dashboard) -> None:
    before = dash.wait_status("toggler", "running")
    reply = dash.post("/api/services/toggler/stop")
    assert reply.status == 200, reply.raw
    assert reply.body["name"] == "toggler" and reply.body["status"] == "stopped"
    assert reply.body["pid"] is None
    assert dash.service("toggler")["status"] == "stopped"
    reply = dash.post("/api/services/toggler/start")
    assert reply.status == 200, reply.raw
    assert reply.body["status"] == "running"
    assert reply.body["pid"] not in (None, before["pid"])


def test_restart_gives_a_new_process(dash: Dashboard) -> None:
    before = dash.wait_status("toggler", "running")
    reply = dash.post("/api/services/toggler/restart")
    assert reply.status == 200, reply.raw
    assert reply.body["status"] == "running" and reply.body["pid"] != before["pid"]


def test_control_without_waiting_answers_at_once(dash: Dashboard) -> None:
    dash.wait_status("toggler", "running")
    reply = dash.post("/api/services/toggler/stop?wait=false")
    assert reply.status == 200 and reply.body["name"] == "toggler"
    dash.wait_status("toggler", "stopped")
    assert dash.post("/api/services/toggler/start?wait=0").status == 200
    dash.wait_status("toggler", "running")


def test_logs_tail_since_and_line_fields(dash: Dashboard) -> None:
    def all_lines() -> list[dict[str, Any]]:
        reply = dash.get("/api/services/printer/logs")
        assert reply.status == 200
        return reply.body["lines"]

    lines = wait_for(lambda: len(ls := all_lines()) >= 6 and ls, 10, "printer's 6 lines")
    assert [ln["line"] for ln in lines][:6] == [
        "line 0", "line 1", "line 2", "line 3", "line 4", "oops on stderr"]
    for ln in lines:
        assert set(ln) >= {"seq", "timestamp", "service", "stream", "line"}
        assert ln["service"] == "printer"
    assert lines[5]["stream"] == "stderr" and lines[0]["stream"] == "stdout"
    seqs = [ln["seq"] for ln in lines]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    reply = dash.get("/api/services/printer/logs?tail=2")
    assert [ln["line"] for ln in reply.body["lines"]] == ["line 4", "oops on stderr"]
    assert reply.body["service"] == "printer" and reply.body["seq"] >= seqs[-1]

    reply = dash.get(f"/api/services/printer/logs?since={seqs[2]}")
    assert [ln["seq"] for ln in reply.body["lines"]] == seqs[3:]
    assert dash.get("/api/services/printer/logs?tail=0").body["lines"] == []


def test_service_endpoint_has_the_same_cpu_and_memory_as_status(dash: Dashboard) -> None:
    """Regression: `GET /api/services/{name}` had null cpu_percent and memory_bytes
    where `/api/status` had values for the same running service."""
    dash.wait_status("api", "running")
    listed = dash.service("api")
    one = dash.get("/api/services/api").body
    assert isinstance(listed["memory_bytes"], int) and listed["memory_bytes"] > 0
    assert isinstance(one["memory_bytes"], int) and one["memory_bytes"] > 0
    assert isinstance(one["cpu_percent"], float) and one["cpu_percent"] >= 0
    stopped = dash.get("/api/services/crasher").body
    assert stopped["cpu_percent"] is None and stopped["memory_bytes"] is None


def test_config_masks_secret_looking_env_values(dash: Dashboard) -> None:
    reply = dash.get("/api/config")
    assert reply.status == 200
    assert reply.body["path"] == str(dash.manager.path)
    assert b"hunter2" not in reply.raw and b"sw0rdfish" not in reply.raw
    env = reply.body["config"]["services"]["api"]["env"]
    assert env == {"API_TOKEN": "****", "DB_PASSWORD": "****", "PLAIN_SETTING": "visible",
                   "DATABASE_URL": "postgres://app:****@db.internal:5432/app"}


def test_config_and_status_mask_url_passwords_and_inline_command_secrets(
        dash: Dashboard) -> None:
    """Regression: masking went by env key only. `DATABASE_URL: postgres://app:pw@db`
    and a command `STRIPE_SECRET=sk_live… python …` were shown verbatim by /api/config,
    /api/status, /api/services/NAME, the bus `config` command and `promenade status`."""
    dash.wait_status("toggler", "running")
    shown = {
        "/api/config": dash.get("/api/config").raw,
        "/api/status": dash.get("/api/status").raw,
        "/api/services/toggler": dash.get("/api/services/toggler").raw,
        "bus config": json.dumps(dash.manager.request("config")).encode(),
        "bus status": json.dumps(dash.manager.request("status")).encode(),
        "promenade status --json": dash.manager.cli("status", "--json").stdout.encode(),
    }
    for where, raw in shown.items():
        assert b"sk_live_abc123" not in raw and b"pg-s3cret" not in raw, where
    toggler = dash.service("toggler")
    assert toggler["command"].startswith("STRIPE_SECRET=**** ")
    config = dash.get("/api/config").body["config"]["services"]
    assert config["toggler"]["command"] == toggler["command"]
    assert config["api"]["env"]["DATABASE_URL"] == "postgres://app:****@db.internal:5432/app"


def test_reload_reports_invalid_config_and_recovers(dash: Dashboard) -> None:
    reply = dash.post("/api/reload")
    assert reply.status == 200, reply.raw
    assert reply.body["changed"] is False and reply.body["error"] is None
    good = dash.manager.path.read_text()
    try:
        dash.manager.path.write_text(good + "\n  broken: [\n")
        reply = dash.post("/api/reload")
        assert reply.status == 422, reply.raw
        error = reply.body["error"]
        assert error["code"] == "config_invalid"
        assert error["details"]["file"] == str(dash.manager.path)
        assert wait_for(lambda: dash.status()["config_error"], 5, "config_error in status")
        # the services keep running on the previous config
        assert dash.service("api")["status"] == "running"
    finally:
        dash.manager.path.write_text(good)
    reply = dash.post("/api/reload")
    assert reply.status == 200 and reply.body["error"] is None
    wait_for(lambda: dash.status()["config_error"] is None, 5, "config_error to clear")


def test_restart_all_restarts_every_running_service(dash: Dashboard) -> None:
    before = {n: dash.wait_status(n, "running")["pid"] for n in ("api", "printer", "toggler")}
    reply = dash.post("/api/restart-all")
    assert reply.status == 200, reply.raw
    assert set(reply.body["services"]) == {"api", "printer", "toggler", "crasher"}

    def all_new() -> dict[str, Any] | None:
        now = {n: dash.service(n) for n in before}
        ok = all(s["status"] == "running" and s["pid"] != before[n] for n, s in now.items())
        return now if ok else None

    wait_for(all_new, 20, "every service to run with a new pid")


def test_start_prints_the_dashboard_url_and_honours_manager_port(dash: Dashboard) -> None:
    out = dash.manager.wait_output("dashboard http://")
    assert f"dashboard http://127.0.0.1:{dash.port}" in out


# ----------------------------------------------------------- the web process itself


def web_process(control: str, events: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "promenade_web", "--control", control, "--events", events,
         "--host", "127.0.0.1", "--port", str(port)],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def test_a_taken_port_is_a_clear_error_naming_the_holder(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        proc = web_process(f"ipc://{tmp_path}/c", f"ipc://{tmp_path}/e", port)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 1
        assert f"127.0.0.1:{port}" in err and f"pid {os.getpid()}" in err, err
        assert "--port" in err
    finally:
        holder.close()


def test_manager_refuses_a_taken_dashboard_port(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    m = Manager(tmp_path, "services:\n  a:\n    command: sleep 60\n", ("--port", str(port)))
    try:
        m.start(wait=False)
        assert m.proc is not None
        assert m.proc.wait(20) != 0
        assert f"pid {os.getpid()}" in m.output(), m.output()
    finally:
        holder.close()
        m.cleanup()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _dashboard_and_web(tmp_path: Path) -> tuple[Dashboard, subprocess.Popen[bytes], int]:
    """A manager with its dashboard; returns it, the manager process and the web pid."""
    port = free_port()
    d = start_dashboard(tmp_path, "services:\n  a:\n    command: sleep 60\n", port=port,
                        args=("--port", str(port)))
    manager = d.manager.proc
    assert manager is not None
    return d, manager, web_pid(d)


def test_web_process_exits_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    d, manager, web = _dashboard_and_web(tmp_path)
    try:
        manager.send_signal(signal.SIGKILL)
        manager.wait(5)
        wait_for(lambda: not _alive(web), 10, f"web process {web} to exit")
    finally:
        d.manager.cleanup()


def test_web_process_restarted_by_the_supervisor_after_a_crash(tmp_path: Path) -> None:
    d, manager, web = _dashboard_and_web(tmp_path)
    try:
        os.kill(web, signal.SIGKILL)
        wait_for(lambda: [p for p in children(manager.pid)
                          if is_web(p) and p != web and _alive(p)], 15, "a new web process")
        wait_for(lambda: d.get("/api/status", timeout=2).status == 200, 15,
                 "the new web process to answer")
    finally:
        d.manager.cleanup()


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), 1):
        return True


def test_sigterm_stops_the_web_process_promptly(tmp_path: Path) -> None:
    port = free_port()
    d = start_dashboard(tmp_path, "services:\n  a:\n    command: sleep 60\n", port=port,
                        args=("--port", str(port)))
    try:
        info = d.manager.info()
        assert info is not None
        own = free_port()
        proc = web_process(info.control, info.events, own)
        wait_for(lambda: _accepts(own), 15, "our web process to listen")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert time.monotonic() - started < 3
    finally:
        d.manager.cleanup()
