"""The router in tests: a private runtime folder, CA and ports; control clients; a tiny
backend; HTTPS requests with SNI for a name, through the router's port.

`RouterEnv` sets XDG_RUNTIME_DIR / XDG_DATA_HOME / XDG_STATE_HOME / HOME to temp folders
and the router's fallback ports to free ones (the router runs without hostsd unless a
test gives it one), so `ensure_router()` starts a router of the test's own.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from promenade_core.router.launch import RouterInfo, ensure_router
from tests.support.net import free_port
from tests.support.scripts import write_script
from tests.support.waits import wait_for

#: A backend on argv[1] port named argv[2]: `/` echoes what it was sent (as JSON),
#: `/upload` counts the body, `/download?N` sends N bytes, `/sse` sends 3 events 0.2 s
#: apart, `/ws` switches protocols (with the WebSocket accept key), then echoes raw bytes.
BACKEND = r"""
import base64, hashlib, http.server, json, sys, time

NAME = sys.argv[2]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "https://own.cors.test")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for i in range(3):
                self.wfile.write(f"data: event {i}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.2)
            self.close_connection = True
            return
        if self.path == "/ws":
            key = self.headers["Sec-WebSocket-Key"].encode()
            accept = base64.b64encode(hashlib.sha1(
                key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.wfile.flush()
            while True:
                data = self.connection.recv(65536)
                if not data:
                    break
                self.connection.sendall(data)
            self.close_connection = True
            return
        if self.path.startswith("/download?"):
            size = int(self.path.split("?", 1)[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"y" * 262144
            while size > 0:
                self.wfile.write(chunk[:size])
                size -= len(chunk)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.reply(200, json.dumps({"backend": NAME, "path": self.path,
                                    "headers": headers}).encode())

    def do_POST(self):
        left = int(self.headers.get("Content-Length", "0"))
        total = 0
        while left:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            total += len(chunk)
            left -= len(chunk)
        self.reply(200, json.dumps({"backend": NAME, "received": total}).encode())

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

#: Registers argv[2] (routes JSON) as project argv[1], prints each reply, then holds the
#: connection until killed or its stdin ends.
HOLDER = """
import json, socket, sys
from promenade_core.router.paths import router_socket_path
s = socket.socket(socket.AF_UNIX)
s.connect(str(router_socket_path()))
f = s.makefile("rb")
for message in ({"op": "hello", "pid": 1, "project": sys.argv[1], "version": 1},
                {"op": "routes", "routes": json.loads(sys.argv[2])}):
    s.sendall(json.dumps(message).encode() + b"\\n")
    print(f.readline().decode().strip(), flush=True)
sys.stdin.read()
"""


def route(name: str, port: int | None, service: str = "web", status: str = "running",
          reason: str | None = None) -> dict[str, Any]:
    return {"name": name, "port": port, "service": service, "status": status,
            "status_reason": reason, "tls": True}


class Control:
    """One control connection (one lease), blocking, for the test process."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def ask(self, **message: Any) -> dict[str, Any]:
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        line = self.file.readline()
        assert line, "the router closed the control connection without a reply"
        reply: dict[str, Any] = json.loads(line)
        return reply

    def hello(self, project: str) -> dict[str, Any]:
        return self.ask(op="hello", pid=os.getpid(), project=project, version=1)

    def routes(self, *routes: dict[str, Any]) -> dict[str, Any]:
        return self.ask(op="routes", routes=list(routes))

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port, with `name` as SNI and Host (what `--resolve` does)."""

    def __init__(self, name: str, port: int, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(name, port, context=context, timeout=timeout)
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class RouterEnv:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        # short names: the control socket's path must fit a Unix socket's 107 bytes
        for var, short in (("XDG_RUNTIME_DIR", "run"), ("XDG_DATA_HOME", "data"),
                           ("XDG_STATE_HOME", "state"), ("HOME", "home")):
            folder = root / short
            folder.mkdir(mode=0o700)
            monkeypatch.setenv(var, str(folder))
        self.https_port, self.http_port = free_port(), free_port()
        monkeypatch.setenv("PROMENADE_ROUTER_HTTPS_PORT", str(self.https_port))
        monkeypatch.setenv("PROMENADE_ROUTER_HTTP_PORT", str(self.http_port))
        monkeypatch.setenv("PROMENADE_HOSTSD_SOCKET", str(root / "no-hostsd.sock"))
        self.controls: list[Control] = []
        self.procs: list[subprocess.Popen[Any]] = []
        self.pids: set[int] = set()
        self.info: RouterInfo | None = None

    @property
    def ca_path(self) -> Path:
        return self.root / "data" / "promenade" / "ca" / "ca.pem"

    def ensure(self) -> RouterInfo:
        self.info = ensure_router()
        self.pids.add(self.router_pid())
        return self.info

    def control(self, project: str | None = None) -> Control:
        assert self.info is not None, "call ensure() first"
        client = Control(self.info.socket_path)
        self.controls.append(client)
        if project is not None:
            assert client.hello(project)["ok"]
        return client

    def router_pid(self) -> int:
        assert self.info is not None
        probe = Control(self.info.socket_path)
        try:
            return int(probe.ask(op="info")["pid"])
        finally:
            probe.close()

    def backend(self, name: str) -> int:
        script = write_script(self.root, "backend.py", BACKEND)
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(script), str(port), name])
        self.procs.append(proc)
        wait_for(lambda: _accepts(port), what=f"backend {name} on {port}")
        return port

    def holder(self, project: str, routes: list[dict[str, Any]]) -> subprocess.Popen[str]:
        script = write_script(self.root, "holder.py", HOLDER)
        proc = subprocess.Popen([sys.executable, str(script), project, json.dumps(routes)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def connection(self, name: str, timeout: float = 10) -> http.client.HTTPSConnection:
        assert self.info is not None
        return _SniConnection(name, self.info.https_port, self.tls(), timeout)

    def get(self, name: str, path: str = "/", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
        conn = self.connection(name)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def cleanup(self) -> None:
        for client in self.controls:
            client.close()
        for proc in self.procs:
            proc.kill()
            proc.communicate() if proc.stdout or proc.stdin else proc.wait()
        for pid in self.pids:
            _kill(pid)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class PeakRss:
    """Samples a process's resident memory in a thread while the `with` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = rss_kib(pid)
        self.peak = self.before
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    @property
    def growth_kib(self) -> int:
        return self.peak - self.before

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _kill(pid: int) -> None:
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
