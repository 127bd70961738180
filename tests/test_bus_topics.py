"""Per-topic continuity on a real manager's feed: `line_no` numbers one service's lines
across its restarts, `event_no` the state/config/manager events, and the `sync` marker
says where each stood, so a subscriber to some topics can count what it lost there."""

from __future__ import annotations

import sys
import time
from itertools import pairwise
from typing import Any

import pytest

from promenade_core.bus import protocol
from promenade_core.bus.client import ControlClient, EventSubscriber, await_subscription
from tests.support import wait_for, write_script

PY = sys.executable
pytestmark = pytest.mark.timeout(60)

NUMBERED = """
import os, sys, time
while not os.path.exists("go"):
    time.sleep(0.02)
for i in range(int(sys.argv[1])):
    print(f"api {i}", flush=i % 7 == 0)
sys.stdout.flush()
time.sleep(600)
"""


def receive(sub: EventSubscriber, until: Any, timeout: float = 15) -> list[tuple[str, Any]]:
    got: list[tuple[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not until(got):
        assert time.monotonic() < deadline, f"timed out; last {got[-3:]}"
        item = sub.recv(timeout=0.2)
        if item is not None:
            got.append(item)
    return got


def lines_in(got: list[tuple[str, Any]]) -> int:
    return sum(len(m["lines"]) for topic, m in got if topic.startswith("log/"))


def test_line_no_counts_one_service_s_lines_where_seq_counts_everything(
        manager, tmp_path) -> None:
    write_script(tmp_path, "numbered.py", NUMBERED)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          api: {{command: {PY} numbered.py 300, tty: false}}
          ticker: {{command: "while true; do echo tick; sleep 0.01; done", tty: false}}
    """)
    m.wait_status("api", "running")
    info = m.info()
    with EventSubscriber(info.events, ["log/api/", protocol.SYNC_PREFIX]) as sub, \
            ControlClient(info.control) as bus:
        await_subscription(sub, bus)
        wait_for(lambda: "tick" in m.lines("ticker"), 10, "the ticker's lines")
        bus.request("sync", token="probe")
        (_, marker), = receive(sub, lambda got: any(t == "sync/probe" for t, _ in got))
        assert marker["line_nos"]["ticker"] > 0 and "api" not in marker["line_nos"]
        assert marker["event_no"] > 0 and marker["seq"] > 0
        (tmp_path / "go").write_text("go")
        first = receive(sub, lambda got: lines_in(got) >= 300)
        bus.request("restart", service="api")     # a new process; the same run's count
        second = receive(sub, lambda got: lines_in(got) >= 300)
    messages = [msg for _, msg in first + second]
    assert messages[0]["line_no"] == 1
    for before, after in pairwise(messages):
        assert after["line_no"] == before["line_no"] + len(before["lines"]), (before, after)
    seqs = [(msg["first_seq"], msg["seq"]) for msg in messages]
    assert any(b[0] > a[1] + 1 for a, b in pairwise(seqs)), (
        "the ticker's lines took seqs in between: seq alone would show a false gap")


def test_event_no_counts_the_events_one_by_one(manager) -> None:
    m = manager("""
        manager: {hosts_management: disabled}
        services:
          a: {command: "sleep 600"}
    """)
    m.wait_status("a", "running")
    info = m.info()
    topics = [protocol.STATE_PREFIX, protocol.CONFIG_TOPIC, protocol.MANAGER_TOPIC]
    with EventSubscriber(info.events, topics) as sub, ControlClient(info.control) as bus:
        await_subscription(sub, bus)
        bus.request("restart", service="a")
        got = receive(sub, lambda got: any(
            msg.get("status", {}).get("status") == "running" for _, msg in got))
    numbers = [msg["event_no"] for _, msg in got]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert all(msg["seq"] > 0 and "run_id" in msg for _, msg in got)
