"""The web process follows only the services its WebSocket clients asked for, against a
real manager: a client of `quiet` gets every quiet line while `flood` floods, and the
flood never reaches the web process at all; a loss on a followed topic still reaches
that topic's clients as a gap marker, counted exactly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from simple_websocket import Client

from tests.support import free_port, wait_for, write_script
from tests.support.web import Dashboard, start_dashboard

PY = sys.executable
pytestmark = pytest.mark.timeout(120)

TICKER = """
import itertools, sys, time
for i in itertools.count():
    print(f"{sys.argv[1]} {i}", flush=True)
    time.sleep(float(sys.argv[2]))
"""

#: Waits for its go file, floods, then ticks slowly.
FLOOD = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
out = sys.stdout
for i in range(int(sys.argv[2])):
    out.write(f"flood {i:07d} " + "x" * int(sys.argv[3]) + "\\n")
    if sys.argv[4] == "each":
        out.flush()
        time.sleep(0.0001)
out.write("flood done\\n")
out.flush()
for i in range(10**9):
    print(f"after {i}", flush=True)
    time.sleep(0.05)
"""

#: Waits for its go file, prints one line, sleeps.
LATER = """
import os, time
while not os.path.exists("later.go"):
    time.sleep(0.02)
print("later 1", flush=True)
time.sleep(600)
"""


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dashboard]:
    """flood (300,000 lines once flood.go exists) and quiet (a line every 10 ms)."""
    write_script(tmp_path, "ticker.py", TICKER)
    write_script(tmp_path, "flood.py", FLOOD)
    port = free_port()
    d = start_dashboard(tmp_path, f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          quiet: {{command: {PY} ticker.py quiet 0.01, tty: false}}
          flood: {{command: {PY} flood.py flood.go 300000 60 block, tty: false}}
    """, port=port)
    try:
        d.wait_status("quiet", "running")
        yield d
    finally:
        d.manager.cleanup()


def connect(dash: Dashboard, query: str) -> Client:
    return Client.connect(f"ws://127.0.0.1:{dash.port}/api/logs/stream?batch=1&{query}")


class Reader:
    """A batched WebSocket client's lines per service, and its gap markers."""

    def __init__(self, ws: Client) -> None:
        self.ws = ws
        self.lines: dict[str, list[str]] = {}
        self.gaps: list[dict[str, Any]] = []
        self.kinds: list[str] = []

    def read(self, until: Any, timeout: float, what: str) -> None:
        """Read frames until `until(self)` holds."""
        deadline = time.monotonic() + timeout
        while not until(self):
            left = deadline - time.monotonic()
            assert left > 0, f"no {what} within {timeout} s; kinds {self.kinds[-5:]}"
            data = self.ws.receive(timeout=min(left, 1.0))
            if data is None:
                continue
            for msg in json.loads(data):
                self.kinds.append(msg["type"])
                if msg["type"] == "logs":
                    self.lines.setdefault(msg["service"], []).extend(msg["lines"])
                elif msg["type"] == "gap":
                    self.gaps.append(msg)

    def numbers(self, service: str, prefix: str) -> list[int]:
        return [int(line.split()[1]) for line in self.lines.get(service, [])
                if line.startswith(prefix + " ")]


def feed(dash: Dashboard) -> dict[str, Any]:
    reply = dash.get("/api/logs/feed")
    assert reply.status == 200, reply.raw
    return reply.body


def topics_become(dash: Dashboard, topics: list[str]) -> None:
    wait_for(lambda: feed(dash)["topics"] == topics, 10, f"the web process to follow {topics}")


def contiguous(numbers: list[int]) -> bool:
    return numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def manager_has(dash: Dashboard, service: str, line: str) -> bool:
    messages = dash.manager.request("logs", service=service, tail=50)["messages"]
    return any(line in m["lines"] for m in messages)


def test_a_client_of_one_service_never_receives_another_s_flood(dash: Dashboard) -> None:
    """With `services=quiet`, the web process followed all of `log/`: every flood
    message reached it (~9,000/s of 16 KiB), the quiet line waited behind them (ws p99
    17-60 ms) and, past its queue's 2,000 messages, quiet lines were lost."""
    reader = Reader(connect(dash, "services=quiet"))
    try:
        topics_become(dash, ["log/quiet/"])
        reader.read(lambda r: len(r.numbers("quiet", "quiet")) >= 5, 10, "quiet lines")
        (dash.folder / "flood.go").write_text("go")
        wait_for(lambda: manager_has(dash, "flood", "flood done"), 60, "the flood's end")
        last = dash.manager.lines("quiet")[-1]
        reader.read(lambda r: last in r.lines.get("quiet", []), 20, repr(last))
    finally:
        reader.ws.close()
    quiet = reader.numbers("quiet", "quiet")
    assert contiguous(quiet), "a quiet line was lost or repeated"
    assert reader.gaps == []
    assert set(reader.lines) == {"quiet"}
    seen = feed(dash)
    assert seen["received"].get("flood", 0) == 0, seen
    assert seen["received"]["quiet"] > 0 and seen["lost"] == {}


def test_following_widens_for_a_client_of_every_service_and_narrows_when_it_leaves(
        dash: Dashboard) -> None:
    (dash.folder / "flood.go").write_text("go")
    wait_for(lambda: manager_has(dash, "flood", "after 1"), 60, "the flood's ticks")
    quiet = Reader(connect(dash, "services=quiet"))
    try:
        topics_become(dash, ["log/quiet/"])
        every = Reader(connect(dash, ""))
        try:
            topics_become(dash, ["log/"])
            every.read(lambda r: len(r.numbers("flood", "after")) >= 3
                       and len(r.numbers("quiet", "quiet")) >= 3, 20, "both services")
        finally:
            every.ws.close()
        topics_become(dash, ["log/quiet/"])
        # Once the manager has had the unsubscription (a few quiet lines later), the
        # flood's ticks stop reaching the web process.
        start = len(quiet.numbers("quiet", "quiet"))
        quiet.read(lambda r: len(r.numbers("quiet", "quiet")) >= start + 20, 10, "quiet")
        received = feed(dash)["received"]["flood"]
        quiet.read(lambda r: len(r.numbers("quiet", "quiet")) >= start + 50, 10, "quiet")
        assert feed(dash)["received"]["flood"] == received
    finally:
        quiet.ws.close()
    assert contiguous(quiet.numbers("quiet", "quiet")), "lost or repeated across the change"
    assert set(quiet.lines) == {"quiet"} and quiet.gaps == []
    topics_become(dash, [])


def web_pid(manager_pid: int) -> int:
    """The manager's child that runs promenade_web."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rpartition(")")[2].split()[1]) == manager_pid and (
                    b"promenade_web" in Path(f"/proc/{entry}/cmdline").read_bytes()):
                return int(entry)
    raise AssertionError(f"no web process under {manager_pid}")


BURST = 20_000


def test_a_loss_on_a_followed_topic_reaches_its_clients_counted_exactly(
        tmp_path: Path) -> None:
    """The web process stopped (SIGSTOP) while `burst` writes 20,000 lines one message
    each: its queue (and the manager's PUB) fill, the rest is dropped. The client of
    `burst` gets gap markers whose lines plus the lines it got are the whole burst; the
    client of another service hears of no gap."""
    write_script(tmp_path, "flood.py", FLOOD)
    write_script(tmp_path, "later.py", LATER)
    port = free_port()
    d = start_dashboard(tmp_path, f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          burst: {{command: {PY} flood.py burst.go {BURST} 600 each, tty: false}}
          later: {{command: {PY} later.py, tty: false}}
    """, port=port)
    web: int | None = None
    burst = other = None
    try:
        d.wait_status("burst", "running")
        burst, other = Reader(connect(d, "services=burst")), Reader(connect(d, "services=later"))
        topics_become(d, ["log/burst/", "log/later/"])
        assert d.manager.proc is not None
        web = web_pid(d.manager.proc.pid)
        os.kill(web, signal.SIGSTOP)
        (tmp_path / "burst.go").write_text("go")
        wait_for(lambda: manager_has(d, "burst", "flood done"), 60, "the burst's end")
        os.kill(web, signal.SIGCONT)
        web = None
        burst.read(lambda r: r.numbers("burst", "after"), 30, "the ticks after the burst")
        (tmp_path / "later.go").write_text("go")
        other.read(lambda r: r.lines.get("later"), 10, "the later service's line")
    finally:
        if web is not None:
            os.kill(web, signal.SIGCONT)
        for reader in (burst, other):
            if reader is not None:
                reader.ws.close()
        d.manager.cleanup()
    assert burst.gaps, "nothing was lost: the burst did not outgrow the queues"
    assert all(g["reason"] == "bus" and g["service"] == "burst" and g["dropped"] > 0
               and g["from_seq"] <= g["to_seq"] for g in burst.gaps), burst.gaps
    # The topic's lines up to the last one received: the burst, "flood done", and the
    # ticks "after 0" .. "after N" (ticks too may have been dropped before SIGCONT).
    written = BURST + 1 + max(burst.numbers("burst", "after")) + 1
    assert len(burst.lines["burst"]) + sum(g["dropped"] for g in burst.gaps) == written, (
        "every line is either received or counted lost")
    assert other.gaps == [] and other.lines == {"later": ["later 1"]}
