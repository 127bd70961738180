"""The CLI end to end: real commands against a real manager."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from promenade_core import runtime
from tests.support import PROMENADE, Manager, cli_imports, isolated_env, wait_for

pytestmark = pytest.mark.timeout(90)

CONFIG = """
    manager: {hosts_management: disabled}
    services:
      api: {command: "echo api says hi; echo oops >&2; sleep 60"}
      worker: {command: "sleep 60"}
"""


def test_version_and_help() -> None:
    out = subprocess.run([*PROMENADE, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and re.search(r"promenade, version \d", out.stdout)
    helped = subprocess.run([*PROMENADE, "--help"], capture_output=True, text=True)
    for cmd in ("start", "stop", "restart", "status", "logs", "config", "hosts", "reload"):
        assert cmd in helped.stdout


def test_config_check_and_path(tmp_path: Path) -> None:
    m = Manager(tmp_path, CONFIG)
    ok = m.cli("config", "check")
    assert ok.returncode == 0 and "ok (2 services)" in ok.stdout
    assert m.cli("config", "path").stdout.strip() == str(m.path)
    m.path.write_text("services:\n  api: {commnd: x}\n")
    bad = m.cli("config", "check")
    assert bad.returncode == 2
    assert "promenade.yaml:2: services.api" in bad.stderr and "did you mean 'command'" in bad.stderr


def test_lookup_uses_the_current_folder(tmp_path: Path) -> None:
    (tmp_path / "promenade.yaml").write_text("services:\n  a: {command: x}\n")
    out = subprocess.run([*PROMENADE, "config", "path"], cwd=tmp_path, capture_output=True,
                         text=True, env={**os.environ, "HOME": str(tmp_path / "home")})
    assert out.stdout.strip() == str(tmp_path / "promenade.yaml")


def test_control_commands_without_a_manager_exit_3(tmp_path: Path) -> None:
    m = Manager(tmp_path, CONFIG)
    for args in (["status"], ["stop"], ["restart", "api"], ["logs"], ["wait"],
                 ["reload"]):
        out = m.cli(*args)
        assert out.returncode == 3, args
        assert f"no Promenade manager is running for {m.path}" in out.stderr


def test_status_table_and_json(manager) -> None:
    m = manager(CONFIG)
    m.wait_status("worker", "running")
    table = m.cli("status")
    assert table.returncode == 0
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "HEALTH", "PID", "PORT", "URL", "UPTIME",
                              "RESTARTS", "EXIT", "REASON"]
    assert rows[0].split()[:3] == ["api", "running", "unknown"]
    doc = json.loads(m.cli("status", "--json").stdout)
    assert doc["services"]["worker"]["status"] == "running"


def test_service_commands_and_unknown_service(manager) -> None:
    m = manager(CONFIG)
    m.wait_status("worker", "running")
    assert m.cli("stop", "worker").stdout.strip() == "worker: stopped"
    assert m.cli("start", "worker").stdout.startswith("worker: running (pid ")
    assert m.cli("restart", "worker").stdout.startswith("worker: running (pid ")
    out = m.cli("restart")
    assert out.returncode == 0 and out.stdout.strip() == "restarted api, worker"
    bad = m.cli("stop", "wrker")
    assert bad.returncode == 2 and "unknown service 'wrker' (known: api, worker)" in bad.stderr
    bad_logs = m.cli("logs", "wrker")
    assert bad_logs.returncode == 2 and "known: api, worker" in bad_logs.stderr


#: Packages the commands people type most must not load: the config loader's YAML and
#: marshmallow cost ~25 ms of a ~60 ms `promenade status`, and gevent and flask are the
#: manager's and the dashboard's.
DIET = ("gevent", "flask", "yaml", "marshmallow")


def test_status_logs_and_stop_against_a_manager_import_no_heavy_package(manager) -> None:
    """The import diet of issue 16, guarded where it matters: with a manager running,
    `status`, `logs -n 10` and `stop SERVICE` do their whole work (bus requests, the
    log files, the stop) without any of DIET. A module that imports one at its top,
    anywhere on these paths, fails here with the command that loaded it."""
    m = manager(CONFIG)
    m.wait_status("worker", "running")
    wait_for(lambda: len(m.lines("api")) == 2, what="api's lines")
    commands = [[*args, "-c", str(m.path)]
                for args in (["status"], ["logs", "-n", "10"], ["stop", "worker"])]
    report, done = cli_imports(commands, DIET, m.tmp, m.env)
    assert report["codes"] == [0, 0, 0], done.stdout + done.stderr
    assert "[api] api says hi" in done.stdout and "worker: stopped" in done.stdout
    assert m.status("worker")["status"] == "stopped"
    assert report["loaded"] == {" ".join(c): [] for c in commands}, report["loaded"]


def test_logs_tail_and_streams(manager) -> None:
    m = manager(CONFIG)
    wait_for(lambda: len(m.lines("api")) == 2, what="api's lines")
    out = m.cli("logs", "api", "-n", "5").stdout.splitlines()
    # two streams: their relative order is the reader's, so compare as a set
    assert {re.sub(r"^\S+ ", "", line) for line in out} == {
        "[api] api says hi", "[api] [stderr] oops"}
    assert len(m.cli("logs", "-n", "1").stdout.splitlines()) == 1


def test_logs_follow_has_no_gap_and_no_duplicate(manager, tmp_path: Path) -> None:
    (tmp_path / "count.py").write_text(
        "import time\nfor i in range(400):\n    print(i, flush=True)\n    time.sleep(0.005)\n"
        "time.sleep(60)\n")
    m = manager(f"""
        services:
          count: {{command: {sys.executable} count.py}}
    """)
    wait_for(lambda: len(m.lines("count")) >= 50, what="some lines")
    proc = subprocess.Popen([*PROMENADE, "logs", "count", "-f", "-n", "1000", "-c", str(m.path)],
                            env=m.env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        got: list[int] = []
        assert proc.stdout is not None
        while len(got) < 400:
            line = proc.stdout.readline()
            assert line, "logs -f ended early"
            got.append(int(line.rsplit(" ", 1)[1]))
        assert got == list(range(400))
    finally:
        # SIGTERM, not SIGINT: a runner started in the background (as CI may be) hands
        # its children SIGINT ignored, and Python then never turns it into Ctrl-C.
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _follow_logs(m: Manager) -> subprocess.Popen[str]:
    # the services' lines only: the manager's events (`promenade`) come first otherwise
    proc = subprocess.Popen([*PROMENADE, "logs", "api", "worker", "-f", "-c", str(m.path)],
                            env=m.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    assert "[api]" in proc.stdout.readline()   # joined: the backlog came
    return proc


def _ended(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("logs -f kept running after its manager stopped") from None
    return proc.returncode, err


def test_logs_follow_exits_when_the_manager_stops(manager) -> None:
    """`promenade logs -f` never exited when the manager stopped: it sat on a silent
    feed for ever. It must end with exit 0 and a one-line notice."""
    m = manager(CONFIG)
    m.wait_status("worker", "running")
    proc = _follow_logs(m)
    assert m.cli("stop").returncode == 0
    code, err = _ended(proc)
    assert code == 0, err
    notice = err.strip().splitlines()[-1]
    assert notice.startswith(f"[promenade] the manager (pid {m.proc.pid}) has "), err
    assert notice.endswith("; no more lines"), err


def test_logs_follow_exits_when_the_manager_dies_without_a_word(manager) -> None:
    """With the `stopping` event lost (a SIGKILLed manager sends none), `logs -f` still
    notices that its manager is gone and ends."""
    m = manager(CONFIG)
    m.wait_status("worker", "running")
    proc = _follow_logs(m)
    os.kill(m.proc.pid, signal.SIGKILL)
    code, err = _ended(proc)
    assert code == 0 and "has exited; no more lines" in err, err


def test_second_start_says_already_running(manager) -> None:
    m = manager(CONFIG)
    again = m.cli("start", "--no-ui")
    assert again.returncode == 1
    assert f"already running for {m.path} (pid {m.proc.pid}" in again.stderr


def test_daemon_start_and_stop(tmp_path: Path) -> None:
    m = Manager(tmp_path, CONFIG)
    try:
        out = m.cli("start", "--daemon", "--no-ui")
        assert out.returncode == 0, out.stderr
        assert "running in the background" in out.stdout
        logs_line = next(line for line in out.stdout.splitlines() if line.startswith("logs: "))
        folder = Path(logs_line[6:].split(" (")[0])
        assert str(tmp_path / "state") in str(folder)
        wait_for(lambda: m.request("status")["services"]["worker"]["status"] == "running",
                 what="worker running")
        wait_for(lambda: "worker started" in (folder / "promenade.log").read_text(),
                 what="the manager's events in promenade.log")
        # its terminal output goes nowhere: only its stderr is kept, in daemon.out
        assert (folder.parent / "daemon.out").read_text() == ""
        stopped = m.cli("stop")
        assert stopped.returncode == 0 and "Promenade stopped" in stopped.stdout
        assert m.cli("status").returncode == 3
    finally:
        m.cleanup()


def test_stale_manager_json_is_cleaned_up(tmp_path: Path) -> None:
    m = Manager(tmp_path, CONFIG)
    env = isolated_env(tmp_path)
    m.env = env
    folder = Path(env["XDG_RUNTIME_DIR"]) / "promenade" / runtime.instance_id(m.path)
    folder.mkdir(parents=True, mode=0o700)
    (folder / "manager.json").write_text(json.dumps({
        "pid": 999999, "version": "0", "config_path": str(m.path),
        "events": "ipc:///nonexistent/e", "control": "ipc:///nonexistent/c",
        "dashboard_url": None, "started_at": "x"}))
    out = m.cli("status")
    assert out.returncode == 3 and not (folder / "manager.json").exists()


def test_foreground_output_prefixes_and_messages(manager) -> None:
    m = manager(CONFIG)
    m.wait_output("[api] api says hi")
    out = m.output()
    assert f"[promenade] config {m.path}" in out
    assert re.search(r"\[promenade\] api started \(pid \d+\)", out)
    assert "[api] [stderr] oops" in out
    m.signal(signal.SIGINT)
    assert m.wait_exit() == 0
    final = m.output()
    assert "stopping api" in final and "api stopped" in final


def test_reload_cli_dry_run(manager) -> None:
    m = manager(CONFIG)
    m.wait_status("worker", "running")
    m.path.write_text(m.path.read_text().replace('worker: {command: "sleep 60"}',
                                                 'worker: {command: "sleep 61"}'))
    out = m.cli("reload", "--dry-run")
    assert out.returncode == 0
    assert out.stdout.strip() == "would apply: reload: restarted worker (command changed)"
    time.sleep(0.2)
    assert m.status("worker")["restart_count"] == 0


def test_status_of_named_services_from_a_subfolder(manager, tmp_path: Path) -> None:
    """Without -c, a command run deep inside the project finds its promenade.yaml (and
    so its manager) in a parent folder; `status SERVICE…` shows only those."""
    m = manager(CONFIG)
    m.wait_status("worker", "running")
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)

    def status(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*PROMENADE, "status", *args], cwd=nested, env=m.env,
                              capture_output=True, text=True, timeout=60)

    table = status("worker")
    assert table.returncode == 0, table.stderr
    assert [row.split()[0] for row in table.stdout.splitlines()] == ["NAME", "worker"]
    doc = json.loads(status("worker", "api", "--json").stdout)
    assert list(doc["services"]) == ["worker", "api"]
    unknown = status("apii")
    assert (unknown.returncode, unknown.stderr) == (
        2, "Error: unknown service 'apii' (known: api, worker)\n")
