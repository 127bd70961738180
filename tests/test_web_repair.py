"""The web process fetches back what the bus dropped: a WebSocket client whose web
process was frozen through a flood still ends on the flood's last line, and every line
it did not get is counted in a gap marker (real manager, bus, web process, SIGSTOP)."""

from __future__ import annotations

import itertools
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
from tests.support.web import Dashboard, start_dashboard, web_pid

PY = sys.executable
pytestmark = pytest.mark.timeout(90)

#: Quiet after its last line: only the hub's check of a quiet feed can find a lost end.
FLOOD = """
import os, sys, time
while not os.path.exists("flood.go"):
    time.sleep(0.02)
out = sys.stdout
for i in range(int(sys.argv[1])):
    out.write(f"flood {i:07d} " + "x" * 40 + "\\n")
    out.flush()  # many small reads: many messages, to overrun the bus's queues
out.write("flood done\\n")
out.flush()
time.sleep(600)
"""
FLOOD_LINES = 100_000


@pytest.fixture
def dash(tmp_path: Path) -> Iterator[Dashboard]:
    write_script(tmp_path, "flood.py", FLOOD)
    port = free_port()
    d = start_dashboard(tmp_path, f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          flood:
            command: {PY} flood.py {FLOOD_LINES}
    """, port=port)
    d.wait_status("flood", "running")
    yield d
    d.manager.cleanup()


def test_a_frozen_web_process_still_delivers_the_end_of_a_flood(dash: Dashboard) -> None:
    ws = Client.connect(f"ws://127.0.0.1:{dash.port}/api/logs/stream?services=flood&batch=1")
    web = web_pid(dash)
    try:
        time.sleep(0.3)  # the hub's `log/` subscription is live once the socket is open
        os.kill(web, signal.SIGSTOP)
        try:
            (dash.folder / "flood.go").write_text("go")
            # The flood ends while the web process cannot read: the bus drops for it.
            wait_for(lambda: any("flood done" in m["lines"] for m in
                                 dash.manager.request("logs", service="flood",
                                                      tail=1)["messages"]),
                     30, "the flood's last line in the manager's buffer")
        finally:
            os.kill(web, signal.SIGCONT)
        got, dropped, seqs = 0, 0, []
        deadline = time.monotonic() + 30
        last: list[str] = []
        while not last or last[-1] != "flood done":
            assert time.monotonic() < deadline, f"got {got} lines, {dropped} in gaps"
            data = ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            if data is None:
                continue
            for msg in _messages(data):
                if msg["type"] == "gap":
                    dropped += msg["dropped"]
                elif msg["type"] == "logs":
                    got += len(msg["lines"])
                    seqs.append((msg["first_seq"], msg["seq"]))
                    last = msg["lines"]
    finally:
        ws.close()
    print(f"got {got} lines in {len(seqs)} messages, {dropped} in gaps")
    assert dropped > 0, "the freeze lost nothing: the test did not overrun the bus"
    assert all(a[1] < b[0] for a, b in itertools.pairwise(seqs)), "a line came twice"
    assert got + dropped == FLOOD_LINES + 1, (got, dropped)


def _messages(data: str) -> list[dict[str, Any]]:
    parsed = json.loads(data)
    return parsed if isinstance(parsed, list) else [parsed]
