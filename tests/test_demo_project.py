"""The demo project (scripts/demo-project) is valid and each of its programs runs.

The demo is the first thing a new user tries, so it must not rot: its config passes
`promenade config check`, the ports it names agree between files, and every program
starts and does what the README says. Programs run on free ports picked here; the
whole demo under a real manager is exercised in test_demo_under_manager.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, Manager, free_port, live_marked, wait_for

DEMO = ROOT / "scripts" / "demo-project"
CONFIG = DEMO / "promenade.yaml"
LAUNCHER = ROOT / "scripts" / "demo"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Program:
    """A demo program in its own session, its stdout and stderr collected by threads."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._drain, args=(pipe, sink), daemon=True)
            for pipe, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _drain(pipe: Any, sink: list[str]) -> None:
        for line in pipe:
            sink.append(line.rstrip("\n"))

    def until(self, what: str, test: Callable[[], bool], timeout: float = 10) -> None:
        """Wait for `test`; on timeout also say how the program is doing."""
        try:
            wait_for(test, timeout, what)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; exit code {self.proc.poll()}, "
                f"stdout {self.out[-5:]}, stderr {self.err[-5:]}"
            ) from None

    def terminate(self, timeout: float = 5) -> int:
        """SIGTERM, then its exit status once its readers have seen the pipes close
        (the last lines it printed are read by then, even on a loaded machine)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        code = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        for thread in self._threads:
            thread.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def programs() -> Iterator[Callable[..., Program]]:
    started: list[Program] = []

    def start(args: list[str], cwd: Path = DEMO, env: dict[str, str] | None = None) -> Program:
        program = Program(args, cwd, env)
        started.append(program)
        return program

    yield start
    for program in started:
        program.kill()


def get(url: str) -> tuple[int, Message, str]:
    """Status, headers (case-insensitive) and body; an HTTP error status is returned too."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read().decode()


def answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def demo_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return data


def promenade_cli() -> list[str]:
    script = Path(sys.executable).with_name("promenade")
    return [str(script)] if script.exists() else [sys.executable, "-m", "promenade_cli.main"]


# ---------------------------------------------------------------- config and launcher


def test_demo_config_passes_config_check() -> None:
    result = subprocess.run(
        [*promenade_cli(), "config", "check", "-c", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_config_shows_what_the_readme_promises() -> None:
    config = demo_config()
    services = config["services"]
    assert services["api"]["ready_check"] == {
        "type": "http",
        "path": "/health",
        "timeout": 30,
        "interval": 1,
    }
    assert services["api"]["cors_proxy"] is True
    assert "api" in services["reporter"]["depends_on"]
    assert services["site"]["command"].startswith("python -m http.server")
    assert services["site"]["ready_check"]["type"] == "log"
    assert services["migrate"]["restart_policy"] == "never"
    assert services["api"]["depends_on"] == {"migrate": {"condition": "completed_successfully"}}
    assert services["worker"]["watch"] == {"paths": ["worker.py"]}
    for name in ("api", "site"):
        assert services[name]["hostname"].endswith(".promenade-demo.test")
    assert config["manager"]["hosts_management"] == "auto"
    common = {80, 443, 3000, 5000, 5173, 8000, 8080, 8888, 9000}
    ports = [config["manager"]["port"], services["api"]["cors_proxy_port"]]
    ports += [s["port"] for s in services.values() if "port" in s]
    assert not common & set(ports), ports
    assert len(set(ports)) == len(ports), f"a port is used twice: {ports}"


def test_demo_ports_agree_across_files() -> None:
    """The page, the reporter's env file and the commands use the config's ports."""
    services = demo_config()["services"]
    api_port, proxy_port = services["api"]["port"], services["api"]["cors_proxy_port"]
    page = (DEMO / "site" / "index.html").read_text()
    assert f":{proxy_port}`" in page and f":{api_port}`" in page
    assert f":{demo_config()['manager']['port']}" in page
    assert f"DEMO_API_URL=http://127.0.0.1:{api_port}\n" in (DEMO / "reporter.env").read_text()
    for service in services.values():
        if "port" in service:
            assert str(service["port"]) in service["command"]


def test_launcher_is_an_executable_bash_script() -> None:
    assert os.access(LAUNCHER, os.X_OK)
    text = LAUNCHER.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert "scripts/demo-project/promenade.yaml" in text
    subprocess.run(["bash", "-n", str(LAUNCHER)], check=True, timeout=10)


# ---------------------------------------------------------------------- programs


def test_api_serves_health_and_json_and_stops_on_sigterm(programs: Callable[..., Program]) -> None:
    port = free_port()
    api = programs(["app.py", "--port", str(port)], DEMO / "api", {"DEMO_API_WARMUP": "0"})
    base = f"http://127.0.0.1:{port}"
    api.until("/health to answer", lambda: answers(f"{base}/health"))

    status, headers, body = get(f"{base}/api/hello?name=demo")
    assert status == 200 and '"message":"Hello, demo!"' in body
    assert "Access-Control-Allow-Origin" not in headers, "the proxy is there to add CORS"
    status, _, body = get(f"{base}/api/stats")
    assert status == 200 and '"/api/hello":1' in body
    status, _, body = get(f"{base}/nope")
    assert status == 404 and "no route '/nope'" in body
    api.until("the request log", lambda: any("GET /nope" in line for line in api.out))
    assert not any("/health" in line for line in api.out), "health checks are not logged"

    assert api.terminate() == 0
    assert "api: SIGTERM received, shutting down" in api.out


def test_worker_writes_colour_to_stdout_and_stderr(programs: Callable[..., Program]) -> None:
    worker = programs(["worker.py"], env={"DEMO_WORKER_INTERVAL": "0.02"})
    worker.until(
        "a coloured warning on stderr and a stats line",
        lambda: (
            any("warn" in line and ANSI.search(line) for line in worker.err)
            and any("stats" in line for line in worker.out)
        ),
    )
    assert any(line.startswith("\x1b[32mok") for line in worker.out)
    plain = [line for line in worker.out if "stays plain" in line]
    assert plain and not ANSI.search(plain[0]), "colour on a pipe only where forced"
    assert worker.terminate() == 0
    assert any("SIGTERM received" in line for line in worker.out)


def test_reporter_waits_out_a_missing_api_then_reports(programs: Callable[..., Program]) -> None:
    port = free_port()
    env = {"DEMO_API_URL": f"http://127.0.0.1:{port}", "REPORT_INTERVAL": "0.1"}
    reporter = programs(["reporter.py"], env=env)
    reporter.until(
        "an 'unreachable' line", lambda: any("unreachable" in e for e in reporter.err)
    )
    programs(["app.py", "--port", str(port)], DEMO / "api", {"DEMO_API_WARMUP": "0"})
    reporter.until("a stats report", lambda: any("requests so far" in o for o in reporter.out))
    assert reporter.terminate() == 0


def test_flaky_export_fails_with_a_stderr_line(programs: Callable[..., Program]) -> None:
    job = programs(["flaky_export.py"], env={"DEMO_FLAKY_SECONDS": "0"})
    assert job.proc.wait(10) == 1
    job.until("the stderr line", lambda: any("upload refused" in e for e in job.err))


def test_site_is_served_by_http_server(programs: Callable[..., Program]) -> None:
    port = free_port()
    site = programs(["-m", "http.server", str(port), "--bind", "127.0.0.1"], DEMO / "site")
    site.until("http.server to answer", lambda: answers(f"http://127.0.0.1:{port}/"))
    status, headers, body = get(f"http://127.0.0.1:{port}/")
    assert status == 200 and str(headers["Content-Type"]).startswith("text/html")
    assert "<title>Promenade demo site</title>" in body


# ------------------------------------------------------------ under a real manager


def swap(text: str, old: str, new: str) -> str:
    """`text` with `old` replaced; fails when `old` is gone, so no edit is silently lost."""
    assert old in text, f"{old!r} is no longer in the demo files: update this test"
    return text.replace(old, new)


def demo_copy(folder: Path) -> tuple[str, dict[str, int]]:
    """The demo project copied into `folder` with free ports; returns its config text.

    The ports are rewritten in the config and the reporter's env file (the page is
    only served here, so its ports do not matter); the API's warm-up, the worker's
    pace, the reporter's interval and the flaky job's life are shortened.
    """
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("__pycache__"))
    ports = {"api": free_port(), "site": free_port(), "proxy": free_port(), "ui": free_port()}
    text = CONFIG.read_text()
    for old, new in (
        ('DEMO_API_WARMUP: "2"', 'DEMO_API_WARMUP: "0.3"'),
        (
            "command: python worker.py\n",
            'command: python worker.py\n    env: {DEMO_WORKER_INTERVAL: "0.1"}\n',
        ),
        (
            "command: python flaky_export.py\n",
            'command: python flaky_export.py\n    env: {DEMO_FLAKY_SECONDS: "0.3"}\n',
        ),
        (
            "command: python migrate.py\n",
            'command: python migrate.py\n    env: {DEMO_MIGRATE_SECONDS: "0.3"}\n',
        ),
        ("5301", str(ports["api"])),
        ("5302", str(ports["site"])),
        ("5311", str(ports["proxy"])),
        ("9410", str(ports["ui"])),
    ):
        text = swap(text, old, new)
    env_file = folder / "reporter.env"
    env_text = swap(env_file.read_text(), "REPORT_INTERVAL=5", "REPORT_INTERVAL=0.3")
    env_file.write_text(swap(env_text, ":5301", f":{ports['api']}"))
    return text, ports


@pytest.mark.timeout(60)
def test_demo_under_manager(manager: Callable[..., Manager], tmp_path: Path) -> None:
    """The whole demo starts, the reporter waits for a healthy API, Ctrl-C stops it all.

    hosts_management is `auto` and no hostsd runs (the test environment points the
    manager at a socket that does not exist): the demo must work anyway.
    """
    text, ports = demo_copy(tmp_path / "demo")
    m = manager(text, args=(), name="demo/promenade.yaml", start=False)
    # As ./scripts/demo does: the services' `python` is the one with Promenade's Flask.
    m.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{m.env['PATH']}"
    m.start()
    for name in ("api", "site", "worker", "reporter"):
        m.wait_status(name, "running")
    assert m.wait_status("api", "running")["health"] == "healthy"
    out = m.wait_output("reporter started")
    assert out.index("reporter waiting for api (healthy)") < out.index("reporter started")
    # the task ran first and completed; the API started only after it
    migrate = m.status("migrate")
    assert (migrate["status"], migrate["last_exit_code"], migrate["completed"]) == (
        "stopped", 0, True)
    assert out.index("migrate exited with code 0") < out.index("api started")
    # the site is healthy by its log line, with no probe of its port
    wait_for(lambda: m.status("site")["health"] == "healthy", 10, "the site's log check")
    # an edit of worker.py restarts the worker once
    worker_pid = m.status("worker")["pid"]
    (tmp_path / "demo" / "worker.py").write_text(
        (tmp_path / "demo" / "worker.py").read_text() + "\n# edited\n")
    m.wait_output("worker restarted (worker.py changed)")
    wait_for(lambda: m.status("worker")["pid"] not in (None, worker_pid), 10,
             "a new worker process")

    wait_for(
        lambda: any("requests so far" in line for line in m.lines("reporter")),
        10,
        "a report from the reporter",
    )
    wait_for(
        lambda: any(
            e["stream"] == "stderr" and "\x1b[" in e["line"]
            for e in m.log_lines("worker")
        ),
        10,
        "a coloured stderr line from the worker (colour codes are kept in the data)",
    )
    flaky = m.wait_status("flaky-export", "gave_up")
    assert (flaky["restart_count"], flaky["last_exit_code"]) == (1, 1)
    assert get(f"http://127.0.0.1:{ports['ui']}/")[0] == 200
    page_origin = f"http://127.0.0.1:{ports['site']}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{ports['proxy']}/api/hello?name=proxy", headers={"Origin": page_origin}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Access-Control-Allow-Origin"] == page_origin
        assert b"Hello, proxy!" in response.read()
    assert "Promenade demo site" in get(f"http://127.0.0.1:{ports['site']}/")[2]

    m.signal(signal.SIGINT)
    assert m.wait_exit() == 0
    assert "all services stopped" in m.output()
    assert not live_marked(m.instance)
