"""Listening sockets on loopback ports 443 and 80, from promenade-hostsd: the router's side.

Only root may bind below 1024, and the router runs as the user. So hostsd binds and
listens, then passes the socket over its Unix socket (SCM_RIGHTS, `{"op": "listen"}`).
The socket is leased to the connection that asked for it, like a hostname: while the
`PortLease` stays open the socket is the router's alone (a second caller is refused
`busy`, with this process's pid); when the lease closes, or the process dies (SIGKILL
included), hostsd shuts the socket down in every process that holds a copy and the port
is free for the next router. If hostsd itself stops or dies, the sockets already handed
out keep working: nothing is revoked, they are just no longer leased.

Meant for a gevent process (the router): the lease talks to hostsd through a gevent
socket, so waiting for a reply yields to other greenlets, and `listen` returns a gevent
socket that `gevent.server.StreamServer` can serve (it ignores a stdlib socket). It works
in a plain process too (the calls then simply block, each bounded by `timeout`):

    try:
        lease = PortLease(socket_path)             # HostsdUnavailable: no usable hostsd
        https = lease.listen(443)                  # HostsdRefused: `exc.code` says why
    except (HostsdUnavailable, HostsdRefused) as exc:
        ...  # fall back to an unprivileged port, and print str(exc)
    try:
        https6 = lease.listen(443, "::1")          # `unavailable` where there is no IPv6
    except HostsdRefused:
        https6 = None
    StreamServer(https, handle).start()            # keep `lease` open while serving
    ...
    lease.close()                                  # at exit (dying does the same)

Refusal codes: `busy` (another holder, or a program outside hostsd, has the port),
`invalid_port` (not 443 or 80), `invalid_address` (not 127.0.0.1 or ::1), `unavailable`
(the kernel refused the bind), `stopping`, `too_many` (connections per user), and
`unknown_op` from a hostsd older than this operation. The sockets received are
close-on-exec: the services the router might start never inherit them.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import gevent.lock
import gevent.socket

from promenade_core.hosts.client import (
    HostsdRefused,
    HostsdUnavailable,
    decode_reply,
    install_command,
    refusal,
    unavailable_message,
)

#: A reply is one short JSON line; anything longer is not hostsd talking.
MAX_REPLY = 65536
#: Atomically close-on-exec on Linux; set_inheritable covers the rest, just after.
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0)


class PortLease:
    """One connection to hostsd holding the listening sockets it handed out."""

    def __init__(self, socket_path: str, timeout: float = 3.0) -> None:
        """Connect now, so a missing hostsd is known before the router picks its ports."""
        self.socket_path = socket_path
        self._lock = gevent.lock.Semaphore()  # one request at a time on the connection
        self._sock: gevent.socket.socket | None = gevent.socket.socket(
            socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(socket_path)
        except OSError as exc:
            self.close()
            raise HostsdUnavailable(unavailable_message(socket_path, exc)) from None

    def listen(self, port: int, address: str = "127.0.0.1") -> gevent.socket.socket:
        """A socket bound to `address`:`port` and listening, valid while the lease is open."""
        with self._lock:
            reply, fds = self._ask({"op": "listen", "port": port, "address": address})
        try:
            if not reply.get("ok"):
                raise self._refused(reply)
            if len(fds) != 1:
                raise HostsdUnavailable(f"promenade-hostsd at {self.socket_path} answered "
                                        f"with {len(fds)} sockets instead of one")
            sock = gevent.socket.socket(fileno=fds.pop())
        finally:
            for fd in fds:
                os.close(fd)
        os.set_inheritable(sock.fileno(), False)
        bound = sock.getsockname()[:2]
        if bound != (address, port):
            sock.close()
            raise HostsdUnavailable(f"promenade-hostsd at {self.socket_path} sent a socket "
                                    f"bound to {bound}, not to {address} port {port}")
        return sock

    def close(self) -> None:
        """End the lease: hostsd shuts down every socket it handed out on it."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> PortLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _refused(self, reply: dict[str, Any]) -> HostsdRefused:
        error = refusal(reply)
        if error.code == "unknown_op":
            return HostsdRefused("unknown_op", f"promenade-hostsd at {self.socket_path} is "
                                 "too old to hand out ports 443 and 80: update it with "
                                 f"`{install_command()}`")
        return error

    def _ask(self, request: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
        """Send one request; read its reply line and the descriptors that came with it.

        A lost connection ends the lease (hostsd has revoked what it gave on it), so the
        lease closes and says so."""
        if self._sock is None:
            raise HostsdUnavailable("this lease on promenade-hostsd is closed")
        buffer, fds = b"", []
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            while not buffer.endswith(b"\n"):
                data, received, _flags, _address = socket.recv_fds(
                    self._sock, 4096, 4, _CLOEXEC)
                fds += received
                if not data or len(buffer) + len(data) > MAX_REPLY:
                    raise ConnectionError("no complete reply")
                buffer += data
            return decode_reply(self.socket_path, buffer), fds
        except (OSError, HostsdUnavailable) as exc:
            for fd in fds:
                os.close(fd)
            self.close()
            if isinstance(exc, HostsdUnavailable):
                raise
            raise HostsdUnavailable(f"lost promenade-hostsd at {self.socket_path}: "
                                    f"{exc}") from None
