"""The router's HTTP(S) front: TLS by SNI, then each request routed by its Host.

`RoutingFront.decide` picks, per request, the service's port from the registry (a
`ProxyPolicy` for the CORS proxy's h11 relay, in `edge` mode: https, X-Forwarded-* set
by us; transparent unless the route asks for the CORS policy) or one of pages.py's
answers. Routed names count as local origins for that policy. The relay does the rest: keep-alive,
bodies streamed both ways, SSE, and raw copying after `101 Switching Protocols`.

The HTTP listener only redirects to HTTPS (308 keeps the method and body).

gevent sockets throughout; the process is not monkey-patched.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import ssl
from collections.abc import Callable
from http import HTTPStatus

import gevent.ssl
import h11
from gevent import socket

from promenade_core.listener import CappedServer
from promenade_core.proxy import headers as ph
from promenade_core.proxy.headers import Page, ProxyPolicy
from promenade_core.proxy.relay import ClientRelay
from promenade_core.proxy.upstream import MAX_HEAD_SIZE, RECV_SIZE
from promenade_core.router import pages
from promenade_core.router.registry import Registry

HANDSHAKE_TIMEOUT = 10.0
REDIRECT_TIMEOUT = 10.0
#: open browser connections per listener: tabs, WebSockets and event streams of every
#: project together
MAX_CONNECTIONS = 1024


def host_name(host: bytes | None) -> str | None:
    """The name in a Host header (`API.MyApp.localhost:443.` → `api.myapp.localhost`)."""
    if not host:
        return None
    text = host.decode("latin-1").strip()
    if text.startswith("["):
        return text[1:text.find("]")].lower() if "]" in text else None
    return text.rsplit(":", 1)[0].rstrip(".").lower() or None


def is_loopback_peer(address: tuple) -> bool:
    try:
        return ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
    except (ValueError, IndexError):
        return False


def redirect_location(host: bytes | None, target: bytes, https_port: int) -> bytes | None:
    """Where an http:// request goes on HTTPS, or None without a usable Host."""
    name = host_name(host)
    if name is None:
        return None
    shown = f"[{name}]" if ":" in name else name
    port = "" if https_port == 443 else f":{https_port}"
    return f"https://{shown}{port}".encode() + (target if target.startswith(b"/") else b"/")


def for_gevent(context: ssl.SSLContext) -> ssl.SSLContext:
    """Lets `context`'s SNI callback (tls/context.py, written for stdlib sockets) run
    under gevent's SSLSocket.

    gevent hands OpenSSL an inner socket that only points back (weakly) to the
    SSLSocket, so the callback would get an object without `.context` and every
    handshake would fail; gevent's own SSLContext does this unwrapping when its
    `sni_callback` is set, a stdlib one (which `server_context` makes) does not."""
    inner = context.sni_callback
    if inner is None:
        return context

    def callback(conn: ssl.SSLObject, name: str, initial: ssl.SSLContext) -> int | None:
        owner = getattr(conn, "_sslsock", None)
        return inner(owner() if owner is not None else conn, name, initial)

    context.sni_callback = callback
    return context


class RoutingFront:
    """The per-request decision, from the registry as it is at that request."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def decide(self, request: h11.Request) -> ProxyPolicy | Page:
        headers = request.headers.raw_items()
        accept = ph.header_value(headers, b"accept")
        name = host_name(ph.header_value(headers, b"host")) or ""
        route = self.registry.lookup(name)
        if route is None:
            return pages.unknown_name_page(name, self.registry.names(), accept)
        if not route.up or route.port is None:
            return pages.not_up_page(route, accept)
        cors = route.cors_allow_origins
        return ProxyPolicy(service=route.service, upstream_host="127.0.0.1",
                           upstream_port=route.port,
                           allow_origins=ph.normalize_origins(cors or ()),
                           managed_hostnames=self.registry.names, check_host=False,
                           edge=True, cors=cors is not None,
                           lost_page=functools.partial(pages.not_answering_page, route))


def _serve_tls(context: ssl.SSLContext, front: RoutingFront,
               sock: socket.socket, address: tuple) -> None:
    if not is_loopback_peer(address):
        return  # CappedServer closes it
    sock.settimeout(HANDSHAKE_TIMEOUT)
    try:
        tls = gevent.ssl.SSLSocket(sock=sock, server_side=True, _context=context,
                                   do_handshake_on_connect=False)
        tls.do_handshake()
    except (OSError, ValueError):
        return  # refused names are reported by the context's on_refused
    tls.settimeout(None)
    ClientRelay(tls, address, front.decide).serve()


def _serve_redirect(https_port: Callable[[], int], sock: socket.socket,
                    address: tuple) -> None:
    """Answers one request with a 308 to the same URL on HTTPS, then closes."""
    if not is_loopback_peer(address):
        return
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_SIZE)
    sock.settimeout(REDIRECT_TIMEOUT)
    with contextlib.suppress(OSError, h11.ProtocolError):
        event = conn.next_event()
        while event is h11.NEED_DATA:
            conn.receive_data(sock.recv(RECV_SIZE))
            event = conn.next_event()
        if not isinstance(event, h11.Request):
            return
        location = redirect_location(ph.header_value(event.headers.raw_items(), b"host"),
                                     event.target, https_port())
        status = 308 if location else 400
        body = b"" if location else b"a Host header is needed to redirect to HTTPS\n"
        headers = [(b"Content-Length", str(len(body)).encode()), (b"Connection", b"close")]
        if location:
            headers.append((b"Location", location))
        else:
            headers.append((b"Content-Type", b"text/plain"))
        sock.sendall(conn.send(h11.Response(status_code=status, headers=headers,
                                            reason=HTTPStatus(status).phrase.encode()))
                     + (conn.send(h11.Data(data=body)) if body else b"")
                     + conn.send(h11.EndOfMessage()))
        sock.shutdown(socket.SHUT_WR)


def https_server(listener: socket.socket, context: ssl.SSLContext, front: RoutingFront,
                 warn: Callable[[str], None]) -> CappedServer:
    name = f"router HTTPS on {listener.getsockname()[:2]}"
    context = for_gevent(context)
    return CappedServer(listener, lambda s, a: _serve_tls(context, front, s, a), name,
                        MAX_CONNECTIONS, warn)


def redirect_server(listener: socket.socket, https_port: Callable[[], int],
                    warn: Callable[[str], None]) -> CappedServer:
    name = f"router HTTP redirect on {listener.getsockname()[:2]}"
    return CappedServer(listener, lambda s, a: _serve_redirect(https_port, s, a), name,
                        MAX_CONNECTIONS, warn)
