"""A fake router for the manager's side: a real Unix socket speaking the router's
control protocol (JSON lines: hello, routes, info), in threads of the test process.

It answers as the real router would and records what each connection asked for, so a
test can see a manager's routes come, change and go with its connection. It lives
where a manager looks for the router (`<XDG_RUNTIME_DIR>/promenade/router/router.sock`
of the manager's isolated environment), so the manager finds it and starts nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def router_socket_in(env: dict[str, str]) -> Path:
    """Where a manager run with `env` looks for the router (router/paths.py's layout),
    its folders made private as the manager would."""
    folder = Path(env["XDG_RUNTIME_DIR"]) / "promenade" / "router"
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.chmod(folder.parent, 0o700)
    return folder / "router.sock"


@dataclass
class Connection:
    hello: dict[str, Any] | None = None
    #: every `routes` request's list, in order
    history: list[list[dict[str, Any]]] = field(default_factory=list)
    open: bool = True

    @property
    def routes(self) -> list[dict[str, Any]]:
        return self.history[-1] if self.history and self.open else []


class FakeRouter:
    def __init__(self, path: Path, https_port: int = 443, ca_trusted: bool = True,
                 taken: tuple[str, ...] = ()) -> None:
        self.path = path
        self.https_port = https_port
        self.ca_trusted = ca_trusted
        #: names another project holds: a set naming one is refused (`name_taken`)
        self.taken = taken
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._threads: list[threading.Thread] = []
        self._clients: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def routes(self) -> dict[str, dict[str, Any]]:
        """Every route held by an open connection, by name."""
        with self._lock:
            return {r["name"]: r for c in self.connections for r in c.routes}

    def open_connections(self) -> list[Connection]:
        with self._lock:
            return [c for c in self.connections if c.open]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        for client in self._clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            conn = Connection()
            with self._lock:
                self.connections.append(conn)
                self._clients.append(client)
            thread = threading.Thread(target=self._serve, args=(client, conn), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket, conn: Connection) -> None:
        try:
            with client, client.makefile("rb") as stream:
                for line in stream:
                    reply = self._answer(conn, json.loads(line))
                    client.sendall(json.dumps(reply).encode() + b"\n")
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                conn.open = False

    def _answer(self, conn: Connection, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "hello":
            conn.hello = message
            return {"ok": True}
        if op == "info":
            return {"ok": True, "https_port": self.https_port, "http_port": None,
                    "ca_trusted": self.ca_trusted, "routes": list(self.routes().values())}
        if op == "routes":
            taken = [r["name"] for r in message["routes"] if r["name"] in self.taken]
            if taken:
                return {"ok": False, "code": "name_taken",
                        "message": f"{taken[0]!r} is already served for /other/promenade.yaml"}
            with self._lock:
                conn.history.append(message["routes"])
            return {"ok": True}
        return {"ok": False, "code": "unknown_op", "message": f"unknown op {op!r}"}
