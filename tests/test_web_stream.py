"""`/api/logs/stream` against a real manager: messages, filters, `since` replay, typed
events, many clients, prompt close, and a slow client that must not stall anyone."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from simple_websocket import Client

from tests.support import free_port, wait_for, write_script
from tests.support.web import Dashboard, start_dashboard, ws_handshake

PY = sys.executable
pytestmark = pytest.mark.timeout(90)

TICKER = """
import itertools, sys, time
name = sys.argv[1]
for i in itertools.count():
    print(f"{name} {i}", flush=True)
    time.sleep(float(sys.argv[2]))
"""

FLOOD = """
import os, sys, time
while not os.path.exists("flood.go"):
    time.sleep(0.02)
out = sys.stdout
for i in range(int(sys.argv[1])):
    out.write(f"flood {i:07d} " + "x" * 40 + "\\n")
out.write("flood done\\n")
out.flush()
i = 0
while True:
    i += 1
    print(f"after {i}", flush=True)
    time.sleep(0.05)
"""

FLOOD_LINES = 200_000


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    folder = tmp_path_factory.mktemp("webstream")
    write_script(folder, "ticker.py", TICKER)
    write_script(folder, "flood.py", FLOOD)
    port = free_port()
    d = start_dashboard(folder, f"""
        manager: {{port: {port}, hosts_management: disabled, config_poll_interval: 0.3,
                   log_buffer_lines: 5000}}
        services:
          ticker:
            command: {PY} ticker.py tick 0.02
          other:
            command: {PY} ticker.py other 0.05
          toggler:
            command: {PY} -c "import time; time.sleep(600)"
          flood:
            command: {PY} flood.py {FLOOD_LINES}
    """, port=port)
    d.wait_status("ticker", "running")
    for name in ("ticker", "other"):
        wait_for(lambda n=name: rest_lines(d, n), 15, f"{name}'s first lines")
    yield d
    d.manager.cleanup()


def connect(dash: Dashboard, query: str = "", **kw: Any) -> Client:
    return Client.connect(f"ws://127.0.0.1:{dash.port}/api/logs/stream{query}", **kw)


def receive_json(ws: Client, timeout: float = 10) -> Any:
    data = ws.receive(timeout=timeout)
    assert data is not None, f"no message within {timeout} s"
    return json.loads(data)


def collect(ws: Client, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"got {len(out)} of {count} messages; last {out[-1:]}"
        out.append(receive_json(ws, left))
    return out


def rest_lines(dash: Dashboard, service: str, query: str = "") -> list[dict[str, Any]]:
    reply = dash.get(f"/api/services/{service}/logs{query}")
    assert reply.status == 200, reply.raw
    return reply.body["lines"]


def test_messages_have_the_spec_fields(dash: Dashboard) -> None:
    ws = connect(dash)
    try:
        msg = receive_json(ws)
    finally:
        ws.close()
    assert set(msg) == {"type", "timestamp", "service", "stream", "line", "seq", "run_id"}
    assert msg["type"] == "log" and msg["stream"] == "stdout"
    assert msg["timestamp"].endswith("Z") and isinstance(msg["seq"], int)


def test_services_filter(dash: Dashboard) -> None:
    ws = connect(dash, "?services=other")
    try:
        got = collect(ws, 10)
    finally:
        ws.close()
    assert {m["service"] for m in got} == {"other"}
    numbers = [int(m["line"].split()[1]) for m in got]
    assert numbers == list(range(numbers[0], numbers[0] + 10))


def test_since_replays_the_buffer_then_live_without_gap_or_duplicate(dash: Dashboard) -> None:
    start = rest_lines(dash, "ticker", "?tail=1")[-1]["seq"]
    wait_for(lambda: len(rest_lines(dash, "ticker", f"?since={start}")) >= 20, 10,
             "20 more ticker lines")
    ws = connect(dash, f"?services=ticker&since={start}")
    try:
        got = collect(ws, 60)
    finally:
        ws.close()
    seqs = [m["seq"] for m in got]
    assert seqs[0] > start and seqs == sorted(set(seqs)), "duplicate or reordered lines"
    expected = [ln["seq"] for ln in rest_lines(dash, "ticker", f"?since={start}")]
    assert seqs == expected[: len(seqs)], "the replay and the live feed left a gap"
    numbers = [int(m["line"].split()[1]) for m in got]
    assert numbers == list(range(numbers[0], numbers[0] + 60))


def test_tail_replays_the_last_lines(dash: Dashboard) -> None:
    ws = connect(dash, "?services=other&tail=5")
    try:
        got = collect(ws, 8)
    finally:
        ws.close()
    numbers = [int(m["line"].split()[1]) for m in got]
    assert numbers == list(range(numbers[0], numbers[0] + 8))


def test_bad_parameters_are_refused_before_the_upgrade(dash: Dashboard) -> None:
    status, sock = ws_handshake(dash.port, {}, path="/api/logs/stream?since=abc")
    sock.close()
    assert status == 400


def closed_stream(port: int, query: str) -> tuple[list[Any], int | None]:
    """Open a stream the server is expected to end by itself: its text messages and
    its close code, read from a raw socket until EOF.

    simple-websocket's Client would do, but it drops frames that arrive in the same
    read as the handshake's reply (it parses only the first event), which the error
    and the close right after the upgrade often do.
    """
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall((f"GET /api/logs/stream{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                      ).encode())
        data = b""
        deadline = time.monotonic() + 15  # a stream that never ends fails, not hangs
        while time.monotonic() < deadline and (chunk := sock.recv(65536)):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    messages: list[Any] = []
    while body:
        opcode, length, at = body[0] & 0x0F, body[1] & 0x7F, 2
        if length == 126:
            length, at = struct.unpack("!H", body[2:4])[0], 4
        if len(body) < at + length:
            break  # cut off by the deadline
        payload, body = body[at:at + length], body[at + length:]
        if opcode == 0x1:
            messages.append(json.loads(payload))
        elif opcode == 0x8:
            return messages, struct.unpack("!H", payload[:2])[0] if payload else None
    return messages, None


def test_a_replay_the_manager_refuses_ends_with_an_error_message(dash: Dashboard) -> None:
    messages, code = closed_stream(dash.port, "?services=nope&tail=5")
    assert [m["type"] for m in messages] == ["error"]
    assert messages[0]["code"] == "unknown_service" and "'nope'" in messages[0]["message"]
    assert code == 4004


def test_unknown_service_filter_gets_an_error_and_a_close(dash: Dashboard) -> None:
    """Regression: `?services=nope` was accepted and then silent for ever, so a typo in
    a script's filter looked like a service that logs nothing."""
    messages, code = closed_stream(dash.port, "?services=ticker,nope")
    assert [m["type"] for m in messages] == ["error"], messages
    error = messages[0]["error"]
    assert error["code"] == messages[0]["code"] == "unknown_service"
    assert "'nope'" in error["message"] and "ticker" in error["message"]
    assert code == 4004


def frames(ws: Client, timeout: float = 10) -> Iterator[dict[str, Any]]:
    """Typed messages of batch mode, one by one."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "timed out waiting for a typed message"
        data = ws.receive(timeout=left)
        if data is None:
            continue
        yield from json.loads(data)


def wait_message(ws: Client, predicate: Any, what: str, timeout: float = 15) -> dict[str, Any]:
    seen: list[str] = []
    for msg in frames(ws, timeout):
        if predicate(msg):
            return msg
        seen.append(msg.get("type", "?"))
    raise AssertionError(f"no {what}; saw {seen[-20:]}")


def test_events_mode_sends_status_state_and_config(dash: Dashboard) -> None:
    ws = connect(dash, "?events=1&batch=1&services=toggler")
    try:
        first = next(frames(ws))
        assert first["type"] == "status"
        assert set(first["status"]["services"]) >= {"ticker", "other", "toggler", "flood"}
        assert dash.post("/api/services/toggler/stop?wait=false").status == 200
        wait_message(ws, lambda m: m["type"] == "state" and m["service"] == "toggler"
                     and m["status"]["status"] == "stopped", "toggler stopped")
        assert dash.post("/api/services/toggler/start?wait=false").status == 200
        state = wait_message(ws, lambda m: m["type"] == "state" and m["service"] == "toggler"
                             and m["status"]["status"] == "running", "toggler running")
        assert state["seq"] > 0 and state["status"]["pid"]

        path = dash.manager.path
        good = path.read_text()
        try:
            path.write_text(good + "  extra:\n    command: sleep 600\n")
            # The new service's first state events may come before or after the
            # config event (the start runs in its own greenlet): wait for both.
            seen: dict[str, dict[str, Any]] = {}
            for msg in frames(ws, 15):
                if msg["type"] == "config":
                    seen["config"] = msg
                elif msg["type"] == "state" and msg["service"] == "extra":
                    seen["state"] = msg
                if len(seen) == 2:
                    break
            assert seen["config"]["event"] in ("changed", "reloaded")
        finally:
            path.write_text(good)
        wait_message(ws, lambda m: m["type"] == "config" and m["event"] == "reloaded",
                     "the reload back")
    finally:
        ws.close()


def test_batch_mode_carries_log_batches(dash: Dashboard) -> None:
    ws = connect(dash, "?batch=1&services=ticker&tail=3")
    try:
        msg = wait_message(ws, lambda m: m["type"] == "logs", "a log batch")
    finally:
        ws.close()
    assert msg["service"] == "ticker" and msg["lines"]
    assert msg["seq"] == msg["first_seq"] + len(msg["lines"]) - 1


def test_ten_concurrent_clients_see_the_same_lines(dash: Dashboard) -> None:
    clients = [connect(dash, "?services=ticker") for _ in range(10)]
    results: list[list[int]] = [[] for _ in clients]
    errors: list[BaseException] = []

    def read(i: int) -> None:
        try:
            results[i] = [m["seq"] for m in collect(clients[i], 50)]
        except BaseException as exc:  # reported below, from the test thread
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for ws in clients:
        ws.close()
    assert not errors, errors
    common_start = max(r[0] for r in results)
    common_end = min(r[-1] for r in results)
    assert common_end - common_start > 10
    windows = [[s for s in r if common_start <= s <= common_end] for r in results]
    assert all(w == windows[0] for w in windows), "clients saw different lines"
    expected = [ln["seq"] for ln in rest_lines(dash, "ticker", f"?since={common_start - 1}")]
    assert windows[0] == expected[: len(windows[0])]


def masked_close_frame() -> bytes:
    mask = os.urandom(4)
    payload = struct.pack("!H", 1000)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x88, 0x80 | len(payload)]) + mask + body


def test_closing_is_prompt(dash: Dashboard) -> None:
    """Regression: the server kept the TCP connection after a WebSocket close, so
    clients waited their whole close timeout (10 s)."""
    status, sock = ws_handshake(dash.port, {}, path="/api/logs/stream?services=other")
    assert status == 101
    try:
        sock.settimeout(5)
        started = time.monotonic()
        sock.sendall(masked_close_frame())
        while sock.recv(65536):
            pass
        assert time.monotonic() - started < 0.5
    finally:
        sock.close()


class FrameReader:
    """Server frames (unmasked) read from a raw socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def text(self) -> str:
        head = self._need(2)
        length = head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._need(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._need(8))[0]
        return self._need(length).decode()


def test_a_slow_client_gets_a_gap_marker_and_stalls_nobody(dash: Dashboard) -> None:
    # The slow client: a tiny receive buffer, and it reads nothing during the flood.
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", dash.port))
    slow.sendall(
        b"GET /api/logs/stream?services=flood HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += slow.recv(1)
    assert b" 101 " in head

    fast = connect(dash, "?services=flood&batch=1")
    done = threading.Event()
    fast_lines = [0]

    def read_fast() -> None:
        for msg in frames(fast, timeout=60):
            if msg["type"] == "logs":
                fast_lines[0] += len(msg["lines"])
                if "flood done" in msg["lines"]:
                    done.set()
                    return

    reader = threading.Thread(target=read_fast, daemon=True)
    reader.start()
    (Path(dash.folder) / "flood.go").write_text("go")
    slowest = 0.0
    while not done.is_set() and reader.is_alive():
        started = time.monotonic()
        assert dash.get("/api/status", timeout=5).status == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)
    reader.join(5)
    fast.close()
    assert done.is_set(), f"the fast client got {fast_lines[0]} lines but not the last one"
    assert slowest < 2.0, f"/api/status took {slowest:.2f} s while a client stalled"

    # Now the slow client reads: what it had, then a gap marker, then live lines.
    slow.settimeout(10)
    reader_slow = FrameReader(slow)
    gap = None
    after_gap: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(after_gap) < 3:
        msg = json.loads(reader_slow.text())
        if msg.get("type") == "gap":
            gap = msg
        elif gap is not None:
            after_gap.append(msg["line"])
    slow.close()
    # Usually the client's own queue sheds ("slow_client"); on a loaded machine the web
    # process may itself fall behind the bus first ("bus"): either way, a gap marker.
    assert gap is not None and gap["reason"] in ("slow_client", "bus"), gap
    assert gap["dropped"] > 0, gap
    assert gap["from_seq"] <= gap["to_seq"]
    assert all(line.startswith(("after", "flood")) for line in after_gap), after_gap


def test_an_overflowing_queue_drops_the_oldest_lines_behind_one_gap_marker() -> None:
    """Pure queue policy: the newest lines and every state event survive."""
    from promenade_web.hub import Subscription, event_item, log_item

    sub = Subscription(services=None, events=True, max_lines=100)
    seq = 0
    for batch in range(30):
        lines = [f"line {seq + i}" for i in range(10)]
        sub.offer(log_item({"seq": seq + 9, "first_seq": seq, "service": "a",
                            "stream": "stdout", "timestamp": "t", "lines": lines}))
        seq += 10
        if batch == 3:
            sub.offer(event_item("state", {"seq": seq, "service": "a", "status": {}}))
            seq += 1
    out = sub.take(timeout=0)
    assert out[0].kind == "gap"
    assert out[0].message["dropped"] == 200 and out[0].message["reason"] == "slow_client"
    assert [i.kind for i in out[1:]].count("state") == 1
    logs = [i for i in out if i.kind == "logs"]
    assert sum(i.lines for i in logs) == 100
    assert logs[-1].seq == seq - 1, "the newest line must survive"
    assert out[0].message["to_seq"] < logs[0].first_seq
    assert sub.take(timeout=0) == []


def test_a_client_reconnecting_after_a_manager_restart_gets_the_new_run(
        tmp_path: Path) -> None:
    """After a manager restart a reconnecting dashboard asked for lines `since` the old
    run's last seq; the new run counts from 0 again, so it got nothing for a long while.
    Messages now carry the run id, and a `since` of another run replays the new backlog."""
    port = free_port()
    config = f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          hello:
            command: {PY} -c "print('hello', flush=True); import time; time.sleep(600)"
    """
    first = start_dashboard(tmp_path, config, port=port)
    try:
        wait_for(lambda: rest_lines(first, "hello"), 15, "hello's line")
        ws = connect(first, "?events=1&batch=1&tail=10")
        try:
            status = next(frames(ws))
            old = status["run_id"]
            assert status["type"] == "status" and status["status"]["run_id"] == old
            batch = wait_message(ws, lambda m: m["type"] == "logs", "the backlog")
            assert batch["run_id"] == old
        finally:
            ws.close()
        assert first.manager.cli("stop").returncode == 0
        first.manager.wait_exit()
    finally:
        first.manager.cleanup()
    second = start_dashboard(tmp_path, config, port=port)
    try:
        wait_for(lambda: rest_lines(second, "hello"), 15, "hello's line")
        ws = connect(second, f"?events=1&batch=1&since=1000000&run={old}")
        try:
            status = next(frames(ws))
            assert status["type"] == "status" and status["run_id"] not in (old, "")
            batch = wait_message(ws, lambda m: m["type"] == "logs", "the new run's backlog")
            assert batch["run_id"] == status["run_id"] and batch["lines"] == ["hello"]
        finally:
            ws.close()
    finally:
        second.manager.cleanup()
