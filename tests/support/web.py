"""The Dashboard harness: a real manager with its web process, and raw HTTP calls to it."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.manager import Manager
from tests.support.net import free_port
from tests.support.waits import wait_for


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class Dashboard:
    """A running manager with its web process on `port`."""

    manager: Manager
    port: int
    folder: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, headers: dict[str, str] | None = None,
             timeout: float = 30) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_host=True)
            sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            raw = resp.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, raw)
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Reply:
        return self.call("POST", path, **kw)

    def status(self) -> dict[str, Any]:
        reply = self.get("/api/status")
        assert reply.status == 200, reply.raw
        return reply.body

    def service(self, name: str) -> dict[str, Any]:
        return self.status()["services"][name]

    def wait_status(self, name: str, *wanted: str, timeout: float = 15) -> dict[str, Any]:
        return wait_for(lambda: (s := self.service(name))["status"] in wanted and s,
                        timeout, f"{name} to be {'/'.join(wanted)} (via /api/status)")


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (every thread's children, unlike
    /proc/PID/task/PID/children)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def is_web(pid: int) -> bool:
    try:
        return b"promenade_web" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def web_pid(dash: Dashboard) -> int:
    """The pid of the dashboard's web process (a child of the manager)."""
    manager = dash.manager.proc
    assert manager is not None
    return wait_for(lambda: [p for p in children(manager.pid) if is_web(p)], 10,
                    "the web process among the manager's children")[0]


def start_dashboard(folder: Path, config: str, port: int | None = None,
                    args: tuple[str, ...] = ()) -> Dashboard:
    """`promenade start` with the UI; waits until `GET /api/status` answers."""
    port = port or free_port()
    m = Manager(folder, config, args)
    m.start(wait=False)
    dash = Dashboard(m, port, folder)

    def answers() -> bool:
        if m.proc is not None and m.proc.poll() is not None:
            raise AssertionError(f"manager exited {m.proc.returncode}:\n{m.output()}")
        try:
            return dash.get("/api/status", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(answers, 20, f"the dashboard on port {port}")
        wait_for(m.info, 10, "manager.json")  # written once the dashboard is up
    except BaseException:
        m.cleanup()
        raise
    return dash


def ws_handshake(port: int, headers: dict[str, str],
                 path: str = "/api/logs/stream") -> tuple[int, socket.socket]:
    """Send a WebSocket upgrade request by hand; return the HTTP status and the socket."""
    key = base64.b64encode(os.urandom(16)).decode()
    sent = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13", **headers}
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items())
    sock.sendall((request + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1]), sock
