"""`manager.bus_tcp`: the events feed on a loopback TCP port, capped and authenticated.

Any local user can reach a loopback port, so two things the ipc feed gets from its
0700 folder are done here by hand:

- **Connections are capped.** libzmq accepts without limit (about 1,100 idle
  connections exhausted the manager's descriptors and libzmq aborted the process; at
  the limit its TCP listener spun a core). So the PUB socket is never bound on TCP:
  a small gevent listener (`listener.CappedServer`, MAX_CONNECTIONS) accepts, and
  relays each connection's bytes to a second ipc endpoint of the same PUB socket
  (ZMTP is the same on both transports, so subscribers see an ordinary tcp:// PUB).
- **Subscribers need the token.** That ipc endpoint runs ZeroMQ's PLAIN mechanism;
  the ZAP handler below (in the manager's context, on `inproc://zeromq.zap.01`)
  accepts only the password that this manager generated and wrote to `manager.json`
  (`events_tcp_token`, readable only by the user: the runtime folder is 0700).
  A subscriber without it, or with a wrong one, gets nothing. Clients of
  `promenade_core.bus.client` use it by themselves (`open_events(info, tcp=True)`).
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import secrets
from collections.abc import Callable

import gevent
import zmq as plain_zmq
import zmq.green as zmq
from gevent import socket

from promenade_core.errors import PromenadeError
from promenade_core.listener import CappedServer
from promenade_core.supervise import ports

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
#: The ZAP domain of the authenticated endpoint; requests of any other domain are
#: refused, except NULL-mechanism ones (the ipc endpoints, guarded by their folder).
DOMAIN = "promenade-events-tcp"
USERNAME = "promenade"
#: Subscribers per TCP feed (each costs three descriptors: its TCP connection, the
#: relay's ipc connection and libzmq's end of it).
MAX_CONNECTIONS = 32
LISTEN_BACKLOG = 1024  # waiting connections cost no descriptor of ours
#: A connection that has not authenticated within this is dropped by libzmq.
HANDSHAKE_MS = 5000


def new_token() -> str:
    return secrets.token_hex(24)


def zap_reply(frames: list[bytes], token: str) -> list[bytes]:
    """The ZAP (RFC 27) reply to one request: 200 for the right PLAIN password, else 400."""
    if len(frames) < 6 or frames[0] != b"1.0":
        request_id = frames[1] if len(frames) > 1 else b""
        return [b"1.0", request_id, b"500", b"malformed ZAP request", b"", b""]
    request_id, domain, mechanism = frames[1], frames[2], frames[5]
    credentials = frames[6:]
    if mechanism == b"NULL" and domain != DOMAIN.encode():
        return [b"1.0", request_id, b"200", b"OK", b"", b""]
    if (domain == DOMAIN.encode() and mechanism == b"PLAIN" and len(credentials) == 2
            and hmac.compare_digest(credentials[1], token.encode())):
        return [b"1.0", request_id, b"200", b"OK", USERNAME.encode(), b""]
    return [b"1.0", request_id, b"400", b"wrong or missing events token", b"", b""]


class ZapHandler:
    """Answers libzmq's authentication requests for one context, in a greenlet."""

    def __init__(self, context: zmq.Context, token: str) -> None:
        self._token = token
        self._socket = context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(ZAP_ENDPOINT)
        self._loop = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            frames = self._socket.recv_multipart()
            self._socket.send_multipart(zap_reply(frames, self._token))

    def close(self) -> None:
        self._loop.kill(block=False)
        self._socket.close(linger=0)


def secure_endpoint(pub: plain_zmq.Socket, endpoint: str) -> None:
    """Bind `endpoint` on `pub` with PLAIN authentication in DOMAIN.

    libzmq copies a socket's options into each listener when it binds, so the
    endpoints bound before this keep the NULL mechanism.
    """
    pub.setsockopt(zmq.PLAIN_SERVER, 1)
    pub.setsockopt(zmq.ZAP_DOMAIN, DOMAIN.encode())
    pub.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)
    pub.bind(endpoint)


class TcpFeed:
    """Listens on `host:port` and relays each connection to the ipc file `relay_path`."""

    def __init__(self, host: str, port: int, relay_path: str,
                 warn: Callable[[str], None]) -> None:
        self.host = host
        self.port = port
        self._relay_path = relay_path
        listener = self._listen()
        self._server = CappedServer(listener, self._relay, f"events feed on {host}:{port}",
                                    MAX_CONNECTIONS, warn)
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def _listen(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            hint = (ports.describe_port_in_use(self.port) if exc.errno == errno.EADDRINUSE
                    else (exc.strerror or str(exc)).lower())
            raise PromenadeError(
                f"manager.bus_tcp: cannot listen on {self.host}:{self.port}: {hint}") from exc
        return sock

    def _relay(self, client: socket.socket, address: tuple) -> None:
        # Imported with the first connection: the proxy's module brings h11, which a
        # manager without `bus_tcp` (it imports this module) has no use for.
        from promenade_core.proxy.upstream import copy_both_ways

        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            up.connect(self._relay_path)
        except OSError:
            up.close()
            return
        try:
            copy_both_ways(client, up)
        finally:
            with contextlib.suppress(OSError):
                up.close()

    def close(self) -> None:
        self._server.stop(timeout=1.0)
