"""Promenade's other readers, as separate processes: a bus subscriber and a WebSocket client.

Run with the project's Python (it needs pyzmq, wsproto and promenade_core):

    observers.py bus  --config C --out F [--topic log/quiet/ ...]   # latency + counts
    observers.py bus-stall --config C                                 # subscribes, never reads
    observers.py ws   --url ws://127.0.0.1:P/api/logs/stream?services=quiet --out F
    observers.py ws-stall --url ...                                   # handshakes, never reads

Each prints `ready` once it is joined, and on SIGTERM writes a JSON result to `--out`:
line and message counts, first/last arrival (time.time_ns), seq gaps, and for quiet
lines (`@@Q<seq>:<write ns>:`) the pairs `[seq, written_ns, arrived_ns]`. Separate
processes keep their parsing off the harness's stdout reader and show what a real
subscriber (the CLI, a user script, a browser) would see.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

STOP = False


def _on_term(signum: int, frame: object) -> None:
    global STOP
    STOP = True


class Tally:
    """Counts and quiet-line samples shared by both observers."""

    def __init__(self) -> None:
        self.lines = 0
        self.messages = 0
        self.first_ns = 0
        self.last_ns = 0
        self.gaps = 0
        self.last_seq: int | None = None
        self.tags: dict[str, int] = {}
        self.quiet: list[list[int]] = []

    def seq(self, first: int, last: int) -> None:
        if self.last_seq is not None and first > self.last_seq + 1:
            self.gaps += first - self.last_seq - 1
        self.last_seq = max(last, self.last_seq or 0)

    def lines_in(self, lines: list[str], arrived: int) -> None:
        self.messages += 1
        self.lines += len(lines)
        self.first_ns = self.first_ns or arrived
        self.last_ns = arrived
        for line in lines:
            at = line.find("@@")
            if at < 0:
                continue
            tag = line[at + 2 : at + 3]
            self.tags[tag] = self.tags.get(tag, 0) + 1
            if tag == "Q":
                seq = int(line[at + 3 : at + 11])
                written = int(line[at + 12 : line.index(":", at + 12)])
                self.quiet.append([seq, written, arrived])

    def dump(self, path: str) -> None:
        data = {k: v for k, v in vars(self).items() if k != "last_seq"}
        Path(path).write_text(json.dumps(data))


def _find(config: str, timeout: float = 30.0) -> Any:
    from promenade_core.bus.client import find_manager

    deadline = time.monotonic() + timeout
    while True:
        info = find_manager(Path(config))
        if info is not None:
            return info
        if time.monotonic() > deadline:
            sys.exit(f"observers: no manager running for {config!r} after {timeout:g} s")
        time.sleep(0.02)


def bus(config: str, topics: list[str], out: str | None) -> None:
    from promenade_core.bus.client import ControlClient, EventSubscriber, await_subscription

    info = _find(config)
    # A stalled subscriber keeps ZeroMQ's default receive queue (1,000 messages), as
    # a script that stopped reading would; a reading one must never drop.
    sub = EventSubscriber(info.events, topics, rcvhwm=1000 if out is None else 1_000_000)
    with ControlClient(info.control) as control:
        await_subscription(sub, control, timeout=10.0)
    print("ready", flush=True)
    if out is None:  # stalled: joined, never reads again
        signal.sigwait({signal.SIGTERM})
        return
    tally = Tally()
    while not STOP:
        got = sub.recv(timeout=0.1)
        if got is None:
            continue
        arrived = time.time_ns()
        topic, msg = got
        if "first_seq" in msg:
            tally.seq(int(msg["first_seq"]), int(msg["seq"]))
            if topic.startswith("log/"):
                tally.lines_in(msg["lines"], arrived)
        elif "seq" in msg:
            tally.seq(int(msg["seq"]), int(msg["seq"]))
    tally.dump(out)


def _ws_connect(url: str, timeout: float = 30.0) -> tuple[socket.socket, Any]:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, RejectConnection, Request

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    conn = WSConnection(ConnectionType.CLIENT)
    origin = f"http://{host}:{port}".encode()
    sock.sendall(conn.send(Request(host=f"{host}:{port}", target=target,
                                   extra_headers=[(b"origin", origin)])))
    while True:
        data = sock.recv(65536)
        if not data:
            sys.exit(f"observers: {url} closed during the handshake")
        conn.receive_data(data)
        for event in conn.events():
            if isinstance(event, AcceptConnection):
                return sock, conn
            if isinstance(event, RejectConnection):
                sys.exit(f"observers: {url} refused the handshake ({event.status_code})")


def _ws_lines(payload: Any) -> list[str]:
    """Lines of one WebSocket message, whether it holds one line or a batch."""
    if isinstance(payload, list):
        return [line for item in payload for line in _ws_lines(item)]
    if not isinstance(payload, dict) or payload.get("type", "log") not in ("log", "logs"):
        return []
    if "lines" in payload:
        return [str(line) for line in payload["lines"]]
    return [str(payload.get("line", ""))]


def ws(url: str, out: str | None) -> None:
    from wsproto.events import CloseConnection, Ping, TextMessage

    sock, conn = _ws_connect(url)
    print("ready", flush=True)
    if out is None:  # a tab that stopped reading: the socket stays open, unread
        signal.sigwait({signal.SIGTERM})
        return
    sock.settimeout(0.1)
    tally = Tally()
    text: list[str] = []
    while not STOP:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        arrived = time.time_ns()
        if not data:
            break
        conn.receive_data(data)
        for event in conn.events():
            if isinstance(event, TextMessage):
                text.append(event.data)
                if event.message_finished:
                    tally.lines_in(_ws_lines(json.loads("".join(text))), arrived)
                    text = []
            elif isinstance(event, Ping):
                sock.sendall(conn.send(event.response()))
            elif isinstance(event, CloseConnection):
                tally.dump(out)
                return
    tally.dump(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["bus", "bus-stall", "ws", "ws-stall"])
    parser.add_argument("--config")
    parser.add_argument("--url")
    parser.add_argument("--out")
    parser.add_argument("--topic", action="append")
    args = parser.parse_args()
    if args.mode.endswith("stall"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    else:
        signal.signal(signal.SIGTERM, _on_term)
    if args.mode.startswith("bus"):
        topics = args.topic or [""]
        bus(args.config, topics, None if args.mode == "bus-stall" else args.out)
    else:
        ws(args.url, None if args.mode == "ws-stall" else args.out)


if __name__ == "__main__":
    main()
