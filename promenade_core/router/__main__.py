"""The router process: `python -m promenade_core.router` (started by launch.py).

One per user. It serves HTTPS for every name that running managers register over the
control socket, on loopback 443 (and a redirect on 80) when promenade-hostsd hands those
ports out, else on fixed unprivileged ports (`FALLBACK_HTTPS_PORT`, `FALLBACK_HTTP_PORT`;
the env vars PROMENADE_ROUTER_HTTPS_PORT / PROMENADE_ROUTER_HTTP_PORT change them). It
exits `IDLE_EXIT` seconds after its last manager disconnects.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.event
from gevent import socket

from promenade_core.config.model import DEFAULT_HOSTSD_SOCKET
from promenade_core.errors import PromenadeError
from promenade_core.hosts.client import HostsdRefused, HostsdUnavailable
from promenade_core.hosts.listeners import PortLease
from promenade_core.listener import CappedServer, raise_fd_limit
from promenade_core.router import paths, server
from promenade_core.router.control import MAX_CLIENTS, ControlServer
from promenade_core.router.protocol import InfoReply
from promenade_core.router.registry import Registry
from promenade_core.runtime import open_private_file
from promenade_core.tls import trust
from promenade_core.tls.ca import CA, ensure_ca
from promenade_core.tls.context import server_context
from promenade_core.tls.leaf import LeafStore

FALLBACK_HTTPS_PORT = 7443
FALLBACK_HTTP_PORT = 7080
IDLE_EXIT = 5.0
TRUST_CACHE = 10.0  # seconds an answer to "is the CA trusted?" is reused


def say(message: str) -> None:
    print(f"router: {message}", file=sys.stderr, flush=True)


def env_port(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if value.isdigit() and 1 <= int(value) <= 65535:
        return int(value)
    if value:
        say(f"ignoring {name}={value!r}: not a port 1-65535")
    return default


@dataclass
class Listeners:
    https: socket.socket
    http: socket.socket | None
    lease: PortLease | None


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def _from_hostsd(path: str) -> Listeners | None:
    """443 and 80 from hostsd; None (said why) when it cannot give 443."""
    try:
        lease = PortLease(path)
    except HostsdUnavailable as exc:
        say(f"not on port 443: {exc}")
        return None
    try:
        https = lease.listen(443)
    except (HostsdUnavailable, HostsdRefused) as exc:
        say(f"not on port 443: {exc}")
        lease.close()
        return None
    try:
        http: socket.socket | None = lease.listen(80)
    except (HostsdUnavailable, HostsdRefused) as exc:
        say(f"no redirect on port 80: {exc}")
        http = None
    return Listeners(https, http, lease)


def open_listeners() -> Listeners:
    hostsd = os.environ.get("PROMENADE_HOSTSD_SOCKET") or DEFAULT_HOSTSD_SOCKET
    got = _from_hostsd(hostsd)
    if got is not None:
        return got
    https_port = env_port("PROMENADE_ROUTER_HTTPS_PORT", FALLBACK_HTTPS_PORT)
    http_port = env_port("PROMENADE_ROUTER_HTTP_PORT", FALLBACK_HTTP_PORT)
    try:
        https = _bind(https_port)
    except OSError as exc:
        raise PromenadeError(f"cannot listen on 127.0.0.1:{https_port} for HTTPS "
                             f"({exc.strerror}); free that port or set "
                             "PROMENADE_ROUTER_HTTPS_PORT") from None
    try:
        http: socket.socket | None = _bind(http_port)
    except OSError as exc:
        say(f"no HTTP redirect: cannot listen on 127.0.0.1:{http_port} ({exc.strerror})")
        http = None
    return Listeners(https, http, None)


def control_listener(path: Path) -> socket.socket:
    """The control socket, created 0600 (never briefly open to others)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: we hold the router lock, so no live router owns it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    sock.listen(64)
    return sock


class TrustCheck:
    """Whether the CA is trusted anywhere we can see, asked off the hub and cached."""

    def __init__(self, ca: CA) -> None:
        self.ca = ca
        self._at = -TRUST_CACHE
        self._value = False

    def __call__(self) -> bool:
        if time.monotonic() - self._at >= TRUST_CACHE:
            self._value = bool(gevent.get_hub().threadpool.apply(
                trust.trusted_anywhere,
                (self.ca.cert_pem, self.ca.name, Path.home(), getpass.getuser())))
            self._at = time.monotonic()
        return self._value


class Router:
    def __init__(self, listeners: Listeners, ca: CA) -> None:
        self.listeners = listeners
        self.registry = Registry()
        self.trusted = TrustCheck(ca)
        self.control = ControlServer(self.registry, self.info, self._changed)
        self.front = server.RoutingFront(self.registry)
        self.context = server_context(
            LeafStore(ca), accept=lambda name: self.registry.lookup(name) is not None,
            on_refused=lambda name, why: say(f"refused TLS for {name!r}: {why}"))
        self._change = gevent.event.Event()

    @property
    def https_port(self) -> int:
        return int(self.listeners.https.getsockname()[1])

    @property
    def http_port(self) -> int | None:
        http = self.listeners.http
        return None if http is None else int(http.getsockname()[1])

    def info(self) -> InfoReply:
        return {"ok": True, "pid": os.getpid(), "https_port": self.https_port,
                "http_port": self.http_port,
                "ca_trusted": self.trusted(),
                "routes": [route.wire() for route in self.registry.routes()]}

    def _changed(self) -> None:
        self._change.set()

    def run(self, control: socket.socket) -> None:
        servers = [CappedServer(control, self.control.handle, "router control", MAX_CLIENTS,
                                say),
                   server.https_server(self.listeners.https, self.context, self.front, say)]
        if self.listeners.http is not None:
            servers.append(server.redirect_server(self.listeners.http,
                                                  lambda: self.https_port, say))
        for each in servers:
            each.start()
        say(f"serving HTTPS on 127.0.0.1:{self.https_port}"
            + (f", redirecting HTTP on {self.http_port}" if self.http_port else ""))
        self.wait_idle()
        for each in servers:
            each.stop(timeout=1.0)

    def wait_idle(self) -> None:
        """Returns once no manager has been connected for IDLE_EXIT seconds."""
        while True:
            self._change.clear()
            if self.control.clients == 0 and not self._change.wait(IDLE_EXIT):
                if self.control.clients == 0:
                    return
            elif self.control.clients:
                self._change.wait()


def detach() -> None:
    """Fork; the first process exits 0 so its starter can reap it at once (launch.py).

    Done before any thread or hub exists, which keeps the fork safe."""
    if os.fork() != 0:
        os._exit(0)


def main(argv: list[str]) -> int:
    if "--detach" in argv:
        detach()
    raise_fd_limit()
    lock_fd = open_private_file(paths.router_lock_path(), os.O_RDWR)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        say("another router is running; leaving")
        return 0
    sock_path = paths.router_socket_path()
    try:
        ca, _made = ensure_ca()
        listeners = open_listeners()
    except PromenadeError as exc:
        say(f"Error: {exc}")
        return 1
    control = control_listener(sock_path)
    inode = sock_path.stat().st_ino
    try:
        Router(listeners, ca).run(control)
    finally:
        with contextlib.suppress(OSError):
            if sock_path.stat().st_ino == inode:
                sock_path.unlink()
        if listeners.lease is not None:
            listeners.lease.close()
        say("no manager connected: exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
