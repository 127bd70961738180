"""The per-service CORS proxy: `cors_proxy_port` in front of a service's `port`.

A page on one local port (a Vite app on :3000) can then call a service on another (a Flask
API on :5001, reached as :5002) with cookies, without the service knowing about CORS. The
supervisor starts and stops a proxy with its service and reconfigures it on reload; the
relay lives in `http_relay` (client side) and `proxy_upstream` (service side), the header
rules in `proxy_headers`.

Lives in the supervisor's gevent hub, which is not monkey-patched: the listener must be a
`gevent.socket` (a stdlib one never calls the handler).
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Callable, Iterable

from gevent import socket

from promenade_core.errors import PromenadeError
from promenade_core.listener import CappedServer
from promenade_core.proxy.headers import ProxyPolicy, is_loopback_host, normalize_origins
from promenade_core.proxy.relay import ClientRelay

STOP_TIMEOUT = 5.0  # for open relays to die once killed; they are not waited for
#: Generous: a connection waiting here costs no descriptor of ours, and a short queue
#: makes a burst of clients wait for SYN retransmissions (1 s, then 3 s...).
LISTEN_BACKLOG = 1024
#: Open client connections per proxy (each may hold a service connection too). A page
#: opens at most 6 per host, plus its WebSockets and event streams: far below this.
MAX_CONNECTIONS = 256


class CorsProxyError(PromenadeError):
    """A proxy that cannot listen where its config says."""


def _bind_error(service: str, host: str, port: int, exc: OSError) -> CorsProxyError:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        hint = f"port {port} is already in use; stop what holds it or pick another cors_proxy_port"
    elif exc.errno == errno.EACCES:
        hint = f"permission denied for port {port}; use a port above 1023"
    else:
        hint = f"{(exc.strerror or str(exc)).lower()}; check cors_proxy_port"
    return CorsProxyError(f"CORS proxy of service {service!r} cannot listen on {where}: {hint}")


def _check_port(service: str, key: str, port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise CorsProxyError(f"service {service!r}: {key} must be a port 1-65535, got {port!r}")
    return port


class CorsProxy:
    """Listens on `listen_host:listen_port` and relays to `upstream_host:upstream_port`."""

    def __init__(
        self,
        service: str,
        listen_port: int,
        upstream_port: int,
        allow_origins: tuple[str, ...] = (),
        managed_hostnames: Callable[[], Iterable[str]] = lambda: (),
        listen_host: str = "127.0.0.1",
        upstream_host: str = "127.0.0.1",
        warn: Callable[[str], None] = lambda message: None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.service = service
        self.listen_host = listen_host
        self.listen_port = _check_port(service, "cors_proxy_port", listen_port)
        self._policy = ProxyPolicy(
            service=service,
            upstream_host=upstream_host,
            upstream_port=_check_port(service, "port", upstream_port),
            allow_origins=normalize_origins(allow_origins),
            managed_hostnames=managed_hostnames,
            # An address reachable from other machines was chosen on purpose; names the
            # user gives it there are not ours to check.
            check_host=is_loopback_host(listen_host),
        )
        self._warn = warn
        self.max_connections = max_connections
        self._server: CappedServer | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Binds now, so a taken port is reported at once and not on the first request."""
        if self._server is not None:
            return
        listener = self._listen()
        name = f"CORS proxy of {self.service} on {self.listen_host}:{self.listen_port}"
        self._server = CappedServer(listener, self._handle, name, self.max_connections,
                                    self._warn)
        self._server.start()

    def stop(self) -> None:
        """Closes the listener and every open relay, WebSockets and event streams included."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop(timeout=STOP_TIMEOUT)

    def reconfigure(self, upstream_port: int, allow_origins: tuple[str, ...]) -> None:
        """Applies to every request from now on, on open connections too; no rebinding."""
        self._policy = dataclasses.replace(
            self._policy,
            upstream_port=_check_port(self.service, "port", upstream_port),
            allow_origins=normalize_origins(allow_origins),
        )

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.listen_host.strip("[]"), self.listen_port))
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            raise _bind_error(self.service, self.listen_host, self.listen_port, exc) from exc
        return sock

    def _handle(self, sock: socket.socket, address: tuple) -> None:
        ClientRelay(sock, address, self._policy_now).serve()

    def _policy_now(self, _request: object) -> ProxyPolicy:
        return self._policy
