"""scripts/examples/errors_feed.py against a real manager.

The example is documentation that runs: a user copies it, so it must find the
manager, print exactly the stderr lines and failures, and leave when the manager does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, Manager, free_port, wait_for, write_script

PY = sys.executable
ERRORS_FEED = ROOT / "scripts" / "examples" / "errors_feed.py"
pytestmark = pytest.mark.timeout(60)


class Feed:
    """errors_feed.py as a subprocess, its output collected line by line."""

    def __init__(self, manager: Manager, *args: str) -> None:
        self.proc = subprocess.Popen(
            [PY, str(ERRORS_FEED), "-c", str(manager.path), *args],
            env=manager.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, text: str, timeout: float = 15) -> str:
        return wait_for(
            lambda: next((line for line in self.lines if text in line), None),
            timeout,
            f"{text!r} from errors_feed (exit code {self.proc.poll()}, lines {self.lines[-6:]})",
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def feeds() -> Iterator[list[Feed]]:
    started: list[Feed] = []
    yield started
    for feed in started:
        feed.close()


def test_errors_feed_prints_stderr_lines_and_failures(manager, tmp_path: Path, feeds) -> None:
    trigger = tmp_path / "go"
    write_script(
        tmp_path,
        "grumbler.py",
        f"""
        import os, sys, time
        print("all is well on stdout", flush=True)
        while not os.path.exists({str(trigger)!r}):
            time.sleep(0.02)
        print("first complaint", file=sys.stderr, flush=True)
        print("\\033[31msecond complaint\\033[0m", file=sys.stderr, flush=True)
        print("still fine on stdout", flush=True)
        sys.exit(3)
        """,
    )
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          grumbler:
            command: {PY} grumbler.py
            restart_policy: never
          quiet:
            command: sleep 60
    """)
    m.wait_status("grumbler", "running")
    feed = Feed(m)
    feeds.append(feed)
    feed.wait_line("errors_feed: following manager pid")

    trigger.touch()
    feed.wait_line("[grumbler] FAILED (exit code 3)")
    first = feed.wait_line("[grumbler] [stderr] first complaint")
    second = feed.wait_line("[grumbler] [stderr] second complaint")
    assert "\x1b[" not in second, "colour codes are stripped when stdout is not a terminal"
    assert first.split(" ", 1)[0].endswith("Z"), f"lines start with a UTC timestamp: {first!r}"
    assert not [line for line in feed.lines if "on stdout" in line], feed.lines
    assert not [line for line in feed.lines if "[quiet]" in line], feed.lines

    m.signal(signal.SIGTERM)
    m.wait_exit()
    feed.wait_line("errors_feed: the manager has stopped")
    assert feed.proc.wait(10) == 0


def test_errors_feed_reports_gave_up_after_the_retry(manager, tmp_path: Path, feeds) -> None:
    trigger = tmp_path / "go"
    write_script(
        tmp_path,
        "crasher.py",
        f"""
        import os, sys, time
        while not os.path.exists({str(trigger)!r}):
            time.sleep(0.02)
        sys.exit(1)
        """,
    )
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          crasher:
            command: {PY} crasher.py
            restart_policy: once
    """)
    m.wait_status("crasher", "running")
    feed = Feed(m)
    feeds.append(feed)
    feed.wait_line("errors_feed: following manager pid")
    trigger.touch()
    feed.wait_line("[crasher] FAILED (exit code 1)")
    feed.wait_line("[crasher] GAVE UP (after 1 restart, exit code 1)")


def test_errors_feed_without_a_manager_exits_3(tmp_path: Path) -> None:
    config = tmp_path / "promenade.yaml"
    config.write_text("services:\n  a:\n    command: sleep 1\n")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    result = subprocess.run(
        [PY, str(ERRORS_FEED), "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 3
    assert f"no manager is running for {config}" in result.stderr


def test_errors_feed_follows_the_tcp_feed_with_the_token(manager, tmp_path: Path, feeds) -> None:
    """The TCP feed needs the manager's token: a client script finds it in manager.json
    by itself (`open_events(info, tcp=True)`)."""
    trigger = tmp_path / "go"
    write_script(tmp_path, "moaner.py", f"""
        import os, sys, time
        while not os.path.exists({str(trigger)!r}):
            time.sleep(0.02)
        print("complaint over tcp", file=sys.stderr, flush=True)
        time.sleep(60)
        """)
    m = manager(f"""
        manager: {{hosts_management: disabled, bus_tcp: "127.0.0.1:{free_port()}"}}
        services:
          moaner: {{command: {PY} moaner.py}}
    """)
    m.wait_status("moaner", "running")
    feed = Feed(m, "--tcp")
    feeds.append(feed)
    feed.wait_line("errors_feed: following manager pid")
    trigger.touch()
    feed.wait_line("[moaner] [stderr] complaint over tcp")
