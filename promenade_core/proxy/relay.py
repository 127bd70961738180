"""One client connection of a CORS proxy, relayed to the service with h11 on both sides.

Bodies are streamed in both directions as they arrive (never held whole): the request body
goes up in a pump greenlet while this one brings the response down, so a service may
answer before it has read everything, and server-sent events reach the page event by
event. After a `101 Switching Protocols` the relay stops parsing and copies raw bytes
both ways (WebSockets, Vite's hot-module reload).

Runs inside the supervisor's gevent hub, which is not monkey-patched: every socket here
is a `gevent.socket` one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from http import HTTPStatus

import gevent
import h11
from gevent import socket

from promenade_core.proxy import headers as ph
from promenade_core.proxy.headers import Page, ProxyPolicy
from promenade_core.proxy.upstream import (
    MAX_HEAD_SIZE,
    RECV_SIZE,
    Step,
    Upstream,
    UpstreamLost,
    connect_reason,
    copy_both_ways,
    nodelay,
)

KEEPALIVE_IDLE = 120.0  # a client connection idle this long between requests is closed
LINGER_TIMEOUT = 1.0
LINGER_BYTES = 1024 * 1024
# A response slower than this starts a watch on the client, so that a page leaving an
# idle event stream closes the relay; quick responses skip the cost of that greenlet.
WATCH_CLIENT_AFTER = 1.0


#: Decides per request: a policy to relay by, or a page to answer with (the router
#: routes by Host; the CORS proxy has one policy for every request).
PolicySource = Callable[[h11.Request], ProxyPolicy | Page]


class ClientRelay:
    """Serves one accepted client socket until either side closes it."""

    def __init__(self, sock: socket.socket, address: tuple, policy: PolicySource) -> None:
        self._sock = sock
        self._client_ip = str(address[0]) if address else "unknown"
        self._policy_source = policy
        self._client = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_SIZE)
        self._out: list[bytes] = []
        self._up: Upstream | None = None
        self._pump: gevent.Greenlet | None = None
        self._body_done = False
        self._client_gone = False
        nodelay(sock)

    # ---- the connection loop ----

    def serve(self) -> None:
        try:
            while self._serve_one():
                self._client.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            self._answer_bad_request(exc)
        except (OSError, h11.LocalProtocolError):
            pass  # the client hung up or reset, or a side broke mid-message: just close
        finally:
            self._close()

    def _serve_one(self) -> bool:
        """Handles one request; True when the connection can carry another."""
        request = self._next_request()
        if request is None:
            return False
        decision = self._policy_source(request)
        headers = request.headers.raw_items()
        if isinstance(decision, Page):
            extra = [(b"Content-Type", decision.content_type), *decision.headers]
            return self._answer(decision.status, extra, decision.body,
                                head_only=request.method == b"HEAD")
        policy = decision
        refusal = policy.refusal(request.method, headers)
        if refusal is not None:
            return self._answer(refusal.status, [], refusal.body(), close=refusal.close)
        if policy.cors and ph.is_preflight(request.method, headers):
            return self._answer(204, ph.preflight_headers(headers), b"")
        origin = ph.header_value(headers, b"origin") if policy.cors else None
        try:
            return self._proxy(request, headers, policy, origin)
        except UpstreamLost as lost:
            cors = ph.cors_headers(origin) if origin is not None else []
            cors.append((b"Vary", b"Origin"))
            if policy.lost_page is not None:
                page = policy.lost_page(lost.refusal, ph.header_value(headers, b"accept"))
                extra = [(b"Content-Type", page.content_type), *page.headers, *cors]
                return self._answer(page.status, extra, page.body,
                                    head_only=request.method == b"HEAD")
            return self._answer(lost.refusal.status, cors, lost.refusal.body())

    def _next_request(self) -> h11.Request | None:
        self._sock.settimeout(KEEPALIVE_IDLE)
        try:
            event = self._client_event()
        except TimeoutError:
            return None
        finally:
            self._sock.settimeout(None)
        return event if isinstance(event, h11.Request) else None

    def _client_event(self) -> Step:
        while True:
            event = self._client.next_event()
            if event is not h11.NEED_DATA:
                return event
            self._client.receive_data(self._sock.recv(RECV_SIZE))

    # ---- answers the proxy gives itself ----

    def _answer(
        self, status: int, headers: list[ph.Header], body: bytes, close: bool = False,
        head_only: bool = False,
    ) -> bool:
        """Replies without the service; closes after it if the request body is unread
        or `close` says the connection cannot be trusted with another request."""
        complete = self._drain_ready_body() and not close
        headers = list(headers)
        if body:
            if not ph.has_header(headers, b"content-type"):
                headers.append((b"Content-Type", b"application/json"))
            headers.append((b"Cache-Control", b"no-store"))
        if status not in (204, 304):
            headers.append((b"Content-Length", str(len(body)).encode()))
        if head_only:
            body = b""
        if not complete:
            headers.append((b"Connection", b"close"))
        reason = HTTPStatus(status).phrase.encode()
        response = h11.Response(status_code=status, headers=headers, reason=reason)
        self._write(self._client.send(response))
        if body:
            self._write(self._client.send(h11.Data(data=body)))
        self._write(self._client.send(h11.EndOfMessage()))
        self._flush()
        if not complete:
            self._linger()
            return False
        return self._client.our_state is h11.DONE

    def _answer_bad_request(self, exc: h11.RemoteProtocolError) -> None:
        if self._client.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = ph.json_error("bad_request", f"malformed HTTP request: {exc}")
        headers = [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", str(len(body)).encode()),
            (b"Connection", b"close"),
        ]
        status = exc.error_status_hint
        reason = HTTPStatus(status).phrase.encode()
        response = h11.Response(status_code=status, headers=headers, reason=reason)
        with contextlib.suppress(OSError, h11.LocalProtocolError):
            self._write(self._client.send(response))
            self._write(self._client.send(h11.Data(data=body)))
            self._write(self._client.send(h11.EndOfMessage()))
            self._flush()
            self._linger()

    def _drain_ready_body(self) -> bool:
        """Discards request body already received; True if the whole request is in."""
        while self._client.their_state is h11.SEND_BODY:
            if self._client.next_event() is h11.NEED_DATA:
                return False
        return True

    def _linger(self) -> None:
        """Reads what the client still sends before closing, so it sees our answer.

        Closing a socket with unread input makes the kernel send a reset, which can
        destroy a response the client has not read yet.
        """
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)
            with gevent.Timeout(LINGER_TIMEOUT, False):
                read = 0
                while read < LINGER_BYTES:
                    data = self._sock.recv(RECV_SIZE)
                    if not data:
                        break
                    read += len(data)

    # ---- forwarding one request ----

    def _proxy(
        self,
        request: h11.Request,
        headers: list[ph.Header],
        policy: ProxyPolicy,
        origin: bytes | None,
    ) -> bool:
        up = self._upstream(policy)
        upstream_headers = ph.upstream_request_headers(
            headers, self._client_ip, policy.upstream_address, edge=policy.edge
        )
        head = h11.Request(method=request.method, target=request.target, headers=upstream_headers)
        self._body_done = False
        pieces = [up.conn.send(head) or b""]
        pieces += self._ready_body(up)
        try:
            up.sock.sendall(b"".join(pieces))
        except OSError as exc:
            self._drop_upstream()
            raise UpstreamLost(policy.unavailable(connect_reason(exc))) from exc
        if self._body_done:
            up.sock.settimeout(WATCH_CLIENT_AFTER)
        else:
            self._watch_client(up)
        try:
            switched = self._relay_response(up, request, policy, origin)
        finally:
            self._stop_pump()
            with contextlib.suppress(OSError):
                up.sock.settimeout(None)
        if switched:
            return False
        if not self._body_done:
            self._linger()  # the service answered before reading all of the body
            return False
        if not up.recycle():
            self._drop_upstream()
        return self._client.our_state is h11.DONE and self._client.their_state is h11.DONE

    def _upstream(self, policy: ProxyPolicy) -> Upstream:
        """The kept-alive upstream connection if still good for this request, or a new one."""
        if self._up is not None and not self._up.reusable_for(policy):
            self._drop_upstream()
        if self._up is None:
            self._up = Upstream.open(policy)
        return self._up

    def _ready_body(self, up: Upstream) -> list[bytes]:
        """Request body events already buffered, encoded for the service (no waiting)."""
        pieces: list[bytes] = []
        while not self._body_done:
            event = self._client.next_event()
            if event is h11.NEED_DATA:
                break
            pieces.append(self._body_bytes(up, event))
        return pieces

    def _body_bytes(self, up: Upstream, event: Step) -> bytes:
        if isinstance(event, h11.Data):
            return up.conn.send(h11.Data(data=event.data)) or b""
        if isinstance(event, h11.EndOfMessage):
            self._body_done = True
            return up.conn.send(h11.EndOfMessage()) or b""  # trailers are dropped
        raise h11.RemoteProtocolError(f"unexpected {event!r} in a request body")

    def _pump_client(self, up: Upstream) -> None:
        """Streams the rest of the request body up, then watches the client for a hang-up.

        Without the watch, a client that leaves an idle event stream would leave this
        relay (and the service's connection) open until the service next writes.
        """
        try:
            while not self._body_done:
                data = self._body_bytes(up, self._client_event())
                try:
                    up.sock.sendall(data)
                except OSError:
                    return  # the service stopped reading; its answer (or EOF) says why
            data = self._sock.recv(RECV_SIZE)
            if data:
                self._client.receive_data(data)  # pipelined or post-upgrade bytes, kept
                return
        except (OSError, h11.RemoteProtocolError):
            pass
        self._client_gone = True
        up.abort()

    def _watch_client(self, up: Upstream) -> None:
        self._pump = gevent.spawn(self._pump_client, up)

    def _stop_pump(self) -> None:
        if self._pump is not None:
            self._pump.kill(block=True)
            self._pump = None

    # ---- bringing the response down ----

    def _relay_response(
        self, up: Upstream, request: h11.Request, policy: ProxyPolicy, origin: bytes | None
    ) -> bool:
        """Streams the response to the client; True if the protocol switched."""
        legacy_client = request.http_version == b"1.0"
        started = False
        while True:
            event = self._response_event(up, policy, started)
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    self._switch(up, event, origin, policy.cors)
                    return True
                if not legacy_client:
                    self._write(self._client.send(self._informational(event)))
            elif isinstance(event, h11.Response):
                raw = event.headers.raw_items()
                headers = (ph.client_response_headers(raw, origin) if policy.cors
                           else ph.passthrough_response_headers(raw))
                response = h11.Response(
                    status_code=event.status_code, headers=headers, reason=event.reason
                )
                self._write(self._client.send(response))
                started = True
            elif isinstance(event, h11.Data):
                self._write(self._client.send(h11.Data(data=event.data)))
            elif isinstance(event, h11.EndOfMessage):
                self._write(self._client.send(h11.EndOfMessage()))
                self._flush()
                return False

    @staticmethod
    def _informational(event: h11.InformationalResponse) -> h11.InformationalResponse:
        headers = ph.end_to_end_headers(event.headers.raw_items())
        return h11.InformationalResponse(
            status_code=event.status_code, headers=headers, reason=event.reason
        )

    def _response_event(self, up: Upstream, policy: ProxyPolicy, started: bool) -> Step:
        """The next response event; before the response starts, failures become a 502."""
        try:
            event = up.read_event(self._flush, lambda: self._watch_client(up))
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("connection closed before a response")
            return event
        except (OSError, h11.RemoteProtocolError) as exc:
            self._drop_upstream()
            if started or self._client_gone:
                raise ConnectionAbortedError("relay aborted") from exc
            if isinstance(exc, OSError):
                raise UpstreamLost(policy.unavailable(connect_reason(exc))) from exc
            if not up.answered:
                raise UpstreamLost(policy.unavailable("connection closed")) from exc
            raise UpstreamLost(policy.bad_upstream(str(exc))) from exc

    # ---- after 101 Switching Protocols ----

    def _switch(self, up: Upstream, event: h11.InformationalResponse, origin: bytes | None,
                cors: bool) -> None:
        raw = event.headers.raw_items()
        headers = (ph.client_response_headers(raw, origin, switching=True) if cors
                   else ph.passthrough_response_headers(raw, switching=True))
        self._write(self._client.send(h11.InformationalResponse(status_code=101, headers=headers)))
        self._stop_pump()  # it may be reading the client socket we now relay raw
        up.sock.settimeout(None)
        up_extra, _ = up.conn.trailing_data
        client_extra, _ = self._client.trailing_data
        self._write(bytes(up_extra))
        self._flush()
        if client_extra:
            up.sock.sendall(bytes(client_extra))
        copy_both_ways(self._sock, up.sock)

    # ---- output and cleanup ----

    def _write(self, data: bytes | None) -> None:
        if data:
            self._out.append(data)

    def _flush(self) -> None:
        """Sends what is queued for the client: once per read from the service, so a
        response goes out in few writes yet every chunk leaves before we wait again."""
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            self._sock.sendall(data)

    def _drop_upstream(self) -> None:
        if self._up is not None:
            self._up.close()
            self._up = None

    def _close(self) -> None:
        self._stop_pump()
        self._drop_upstream()
        self._sock.close()
