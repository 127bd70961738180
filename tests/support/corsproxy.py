"""Real tiny servers and a real CorsProxy, each in a process of its own.

The proxy runs in a subprocess (a small launcher driving a real `CorsProxy` inside
gevent), so a test can use ordinary blocking clients without stalling the proxy's hub.
The launcher takes commands on stdin (reconfigure, stop, stats) and answers one JSON
line each.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port
from tests.support.scripts import ROOT

UPSTREAM_SERVER = r"""
import hashlib, json, os, random, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

def wait_for(path):
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"gate {path} never opened")
        time.sleep(0.01)

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body_chunks(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        left = int(self.headers.get("Content-Length", 0))
        while left:
            piece = self.rfile.read(min(left, 65536))
            if not piece:
                return
            left -= len(piece)
            yield piece

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        if path == "/hello":
            self.reply(200, b"hello", "text/plain", [
                ("Access-Control-Allow-Origin", "*"),
                ("Access-Control-Allow-Credentials", "false"),
                ("X-Service", "demo"), ("Vary", "Accept-Encoding")])
        elif path == "/plain":
            self.reply(200, b"plain", "text/plain")
        elif path == "/headers":
            self.reply(200, json.dumps(self.headers.items()).encode())
        elif path == "/port":
            self.reply(200, str(self.server.server_address[1]).encode(), "text/plain")
        elif path == "/bytes":
            data = random.Random(int(q.get("seed", 1))).randbytes(int(q["n"]))
            self.reply(200, data, "application/octet-stream")
        elif path == "/set-cookie":
            self.reply(200, b'{"ok": true}', extra=[
                ("Set-Cookie", "sid=s3cret; Path=/; SameSite=Lax")])
        elif path == "/whoami":
            self.reply(200, json.dumps({"cookie": self.headers.get("Cookie")}).encode())
        elif path == "/close":
            self.close_connection = True
            self.reply(200, b"bye", "text/plain", [("Connection", "close")])
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk(b"first\n")
            wait_for(q["gate"])
            self.chunk(b"second\n")
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/sse":
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(int(q.get("count", 2))):
                if i == 1 and "gate" in q:
                    wait_for(q["gate"])
                self.wfile.write(b"id: %d\ndata: event %d\n\n" % (i, i))
                self.wfile.flush()
            if "hold" in q:
                time.sleep(float(q["hold"]))
        else:
            self.reply(404, b'{"error": "no such path"}')

    def do_POST(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/echo":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in self.body_chunks():
                self.chunk(piece)
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/sha":
            digest, length = hashlib.sha256(), 0
            for piece in self.body_chunks():
                digest.update(piece)
                length += len(piece)
                if "progress" in q:
                    with open(q["progress"] + ".tmp", "w") as f:
                        f.write(str(length))
                    os.replace(q["progress"] + ".tmp", q["progress"])
            self.reply(200, json.dumps({"length": length, "sha256": digest.hexdigest()}).encode())
        elif url.path == "/early":
            self.close_connection = True
            self.reply(413, b'{"error": "too big"}', extra=[("Connection", "close")])
        else:
            self.do_GET()

    do_PUT = do_POST

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""

RAW_SERVER = r"""
import socket, sys, threading
from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Message, Ping,
                            Request, TextMessage)

MODE = sys.argv[1]

def websocket(conn):
    ws = WSConnection(ConnectionType.SERVER)
    while True:
        data = conn.recv(65536)
        ws.receive_data(data or None)
        out = b""
        for event in ws.events():
            if isinstance(event, Request):
                origin = dict(event.extra_headers).get(b"origin", b"").decode()
                out += ws.send(AcceptConnection())
                out += ws.send(Message(data="welcome " + origin))
            elif isinstance(event, (TextMessage, BytesMessage)):
                out += ws.send(Message(data=event.data, message_finished=event.message_finished))
            elif isinstance(event, Ping):
                out += ws.send(event.response())
            elif isinstance(event, CloseConnection):
                conn.sendall(out + ws.send(event.response()))
                conn.close()
                return
        if out:
            conn.sendall(out)
        if not data:
            conn.close()
            return

def garbage(conn):
    conn.recv(65536)
    conn.sendall(b"THIS IS NOT HTTP\r\n\r\n")
    conn.close()

def serve(conn):
    try:
        {"ws": websocket, "garbage": garbage}[MODE](conn)
    except Exception:
        pass
    finally:
        conn.close()

listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

PROXY_LAUNCHER = r"""
import gc, json, os, sys
import gevent, gevent.os
from promenade_core.proxy.server import CorsProxy
from promenade_core.errors import PromenadeError

cfg = json.loads(sys.argv[1])
proxy = CorsProxy(cfg["service"], cfg["listen_port"], cfg["upstream_port"],
                  tuple(cfg.get("allow_origins", ())),
                  managed_hostnames=lambda: cfg.get("managed", ()))

def stats():
    gc.collect()
    # gevent greenlets only: the hub and resolver threads' own greenlets are not relays
    live = [repr(g)[:100] for g in gc.get_objects()
            if isinstance(g, gevent.Greenlet) and not g.dead]
    fds = len(os.listdir("/proc/self/fd"))
    return {"greenlets": len(live), "names": live, "fds": fds, "running": proxy.running}

def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

try:
    proxy.start()
except PromenadeError as exc:
    reply({"error": str(exc), "type": type(exc).__name__})
    sys.exit(1)
reply({"ready": True, **stats()})
gevent.os.make_nonblocking(0)
pending = b""
while True:
    data = gevent.os.nb_read(0, 4096)
    if not data:
        break
    pending += data
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        cmd = json.loads(line)
        if cmd["cmd"] == "reconfigure":
            proxy.reconfigure(cmd["upstream_port"], tuple(cmd["allow_origins"]))
        elif cmd["cmd"] == "stop":
            proxy.stop()
        elif cmd["cmd"] == "start":
            proxy.start()
        reply({"ok": True, **stats()})
proxy.stop()
"""


def read_line(proc: subprocess.Popen, what: str, timeout: float = 15.0) -> str:
    """One stdout line from a child, without hanging if it never writes one."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            piece = os.read(fd, 1)
        except BlockingIOError:
            if proc.poll() is not None:
                break
            time.sleep(0.005)
            continue
        if not piece:
            break
        if piece == b"\n":
            return buf.decode()
        buf += piece
    pytest.fail(f"no line from {what} (exit code {proc.poll()}); partial {buf!r}")


class Child:
    """A process started by a test, killed with its group at the end."""

    def __init__(self, args: list[str], what: str) -> None:
        self.what = what
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )

    def line(self) -> str:
        return read_line(self.proc, self.what)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class Server(Child):
    """A tiny service listening on a port it picked itself."""

    def __init__(self, script: Path, *args: str) -> None:
        super().__init__([sys.executable, str(script), *args], f"server {script.name}")
        self.port = int(self.line())


class Proxy(Child):
    """A real CorsProxy in a gevent process of its own, driven over stdin."""

    def __init__(self, script: Path, upstream_port: int, **cfg: Any) -> None:
        self.port = cfg.pop("listen_port", None) or free_port()
        self.conns: list[http.client.HTTPConnection] = []
        config = {
            "service": "api",
            "listen_port": self.port,
            "upstream_port": upstream_port,
            **cfg,
        }
        super().__init__([sys.executable, str(script), json.dumps(config)], "proxy launcher")
        self.first = json.loads(self.line())

    def connect(self) -> http.client.HTTPConnection:
        """A client connection to the proxy, closed with it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        self.conns.append(conn)
        return conn

    def kill(self) -> None:
        for conn in self.conns:
            conn.close()
        super().kill()

    def command(self, **cmd: Any) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        return json.loads(self.line())


def write_scripts(folder: Path, **extra: str) -> dict[str, Path]:
    """The upstream, raw and launcher programs (and any `extra` ones) as files in
    `folder`, by name."""
    scripts = {"upstream": UPSTREAM_SERVER, "raw": RAW_SERVER, "launcher": PROXY_LAUNCHER,
               **extra}
    paths = {name: folder / f"{name}.py" for name in scripts}
    for name, text in scripts.items():
        paths[name].write_text(text)
    return paths
