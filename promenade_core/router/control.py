"""The router's control socket: managers register their routes over it (protocol.py).

Each connection is one lease in the registry; it must come from our own uid
(SO_PEERCRED), starts with `hello`, and loses its routes the moment it closes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket as stdlib_socket
import struct
from collections.abc import Callable, Mapping
from typing import Any

from gevent import socket

from promenade_core.router import protocol
from promenade_core.router.protocol import ProtocolError
from promenade_core.router.registry import Registry

RECV_SIZE = 64 * 1024
#: managers of one user: far below this
MAX_CLIENTS = 256

Info = Callable[[], protocol.InfoReply]
Reply = Mapping[str, object]


def peer_uid(sock: socket.socket) -> int | None:
    try:
        creds = sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_PEERCRED,
                                struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", creds)[1])


class ControlServer:
    """Serves control connections; `clients` counts them for the idle exit."""

    def __init__(self, registry: Registry, info: Info,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.registry = registry
        self.info = info
        self.on_change = on_change
        self.clients = 0
        self._ids = itertools.count(1)

    def handle(self, sock: socket.socket, _address: object) -> None:
        if peer_uid(sock) != os.geteuid():
            with contextlib.suppress(OSError):
                sock.sendall(protocol.encode(protocol.error(
                    "forbidden", "the router serves only its own user")))
            return
        conn = next(self._ids)
        self.clients += 1
        try:
            self._serve(sock, conn)
        except OSError:
            pass
        finally:
            self.clients -= 1
            self.registry.drop(conn)
            self.on_change()

    def _serve(self, sock: socket.socket, conn: int) -> None:
        buffer = b""
        while True:
            data = sock.recv(RECV_SIZE)
            if not data:
                return
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    sock.sendall(protocol.encode(self.answer(conn, line)))
            if len(buffer) > protocol.MAX_LINE:
                sock.sendall(protocol.encode(protocol.error(
                    "bad_request", f"line longer than {protocol.MAX_LINE} bytes")))
                return

    def answer(self, conn: int, line: bytes) -> Reply:
        """The reply to one request line (never raises for bad input)."""
        try:
            return self._dispatch(conn, protocol.decode(line))
        except ProtocolError as exc:
            return protocol.error(exc.code, exc.message)

    def _dispatch(self, conn: int, message: dict[str, Any]) -> Reply:
        op = message["op"]
        if op == "info":
            return self.info()
        if op == "hello":
            pid, project = protocol.parse_hello(message)
            self.registry.hello(conn, pid, project)
            return {"ok": True, "version": protocol.VERSION}
        if op == "routes":
            if conn not in self.registry.holders:
                raise ProtocolError("hello_first", "send 'hello' before 'routes'")
            self.registry.replace(conn, protocol.parse_routes(message))
            self.on_change()
            return {"ok": True, "routes": len(self.registry.holders[conn].routes)}
        raise ProtocolError("unknown_op", f"unknown op {op!r}; expected hello, routes or info")
