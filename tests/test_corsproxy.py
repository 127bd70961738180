"""The CORS proxy against real tiny services, each in its own process.

The proxy runs in a subprocess too (a small launcher driving a real `CorsProxy` inside
gevent), so the test process can use ordinary blocking clients without stalling the
proxy's hub. The launcher takes commands on stdin (reconfigure, stop, stats) and answers
one JSON line each.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import random
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Request,
    TextMessage,
)

from promenade_core.proxy import headers as ph
from tests.support import free_port, wait_for
from tests.support.corsproxy import Child, Proxy, Server, write_scripts

LOCAL_ORIGIN = "http://localhost:3000"



@pytest.fixture
def scripts(tmp_path: Path) -> dict[str, Path]:
    return write_scripts(tmp_path)


@pytest.fixture
def upstream(scripts: dict[str, Path], children: list[Child]) -> Server:
    server = Server(scripts["upstream"])
    children.append(server)
    return server


@pytest.fixture
def start_proxy(scripts: dict[str, Path], children: list[Child]) -> Callable[..., Proxy]:
    def start(upstream_port: int, **cfg: Any) -> Proxy:
        proxy = Proxy(scripts["launcher"], upstream_port, **cfg)
        children.append(proxy)
        assert proxy.first.get("ready"), proxy.first
        return proxy

    return start


@pytest.fixture
def proxy(upstream: Server, start_proxy: Callable[..., Proxy]) -> Proxy:
    return start_proxy(upstream.port)


def request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request; on a connection of its own (closed after) unless `conn` is given."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        if own:
            conn.close()


def error_of(body: bytes) -> dict:
    return json.loads(body)["error"]


# ---- pure header rules ----


def test_request_headers_drop_hop_by_hop_and_set_forwarded() -> None:
    headers = [
        (b"Host", b"localhost:5002"),
        (b"Connection", b"keep-alive, X-Secret-Hop"),
        (b"Keep-Alive", b"timeout=5"),
        (b"X-Secret-Hop", b"1"),
        (b"TE", b"trailers"),
        (b"X-Forwarded-For", b"10.0.0.9"),
        (b"X-Forwarded-Host", b"evil"),
        (b"Accept", b"*/*"),
    ]
    out = ph.upstream_request_headers(headers, "127.0.0.1", "127.0.0.1:5001")
    names = [n.lower() for n, _ in out]
    for hop in (b"connection", b"keep-alive", b"x-secret-hop", b"te"):
        assert hop not in names
    assert (b"Host", b"localhost:5002") in out
    assert (b"Accept", b"*/*") in out
    assert (b"X-Forwarded-For", b"10.0.0.9, 127.0.0.1") in out
    assert (b"X-Forwarded-Host", b"localhost:5002") in out
    assert (b"X-Forwarded-Proto", b"http") in out
    assert names.count(b"x-forwarded-host") == 1


def test_connection_header_cannot_strip_the_body_framing() -> None:
    """`Connection: content-length` would make the proxy send a body the service cannot
    delimit; framing headers survive whatever Connection lists."""
    headers = [(b"Host", b"x"), (b"Connection", b"content-length, host"), (b"Content-Length", b"3")]
    out = ph.upstream_request_headers(headers, "127.0.0.1", "127.0.0.1:1")
    assert (b"Content-Length", b"3") in out
    assert (b"Host", b"x") in out


def test_upgrade_headers_are_kept_for_websockets() -> None:
    headers = [(b"Host", b"x"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]
    out = ph.upstream_request_headers(headers, "127.0.0.1", "127.0.0.1:1")
    assert (b"Upgrade", b"websocket") in out
    assert (b"Connection", b"Upgrade") in out


def test_response_cors_headers_replace_the_services() -> None:
    upstream = [
        (b"Content-Type", b"text/plain"),
        (b"Access-Control-Allow-Origin", b"*"),
        (b"Access-Control-Allow-Credentials", b"false"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Request-Id", b"42"),
        (b"Vary", b"Accept-Encoding"),
    ]
    out = ph.client_response_headers(upstream, b"http://localhost:3000")
    assert (b"Access-Control-Allow-Origin", b"http://localhost:3000") in out
    assert (b"Access-Control-Allow-Credentials", b"true") in out
    assert (b"Access-Control-Allow-Origin", b"*") not in out
    assert (b"Access-Control-Expose-Headers", b"X-Request-Id") in out
    assert (b"Vary", b"Accept-Encoding, Origin") in out
    assert not [n for n, _ in out if n.lower() == b"transfer-encoding"]


def test_response_without_origin_gets_no_allow_headers() -> None:
    out = ph.client_response_headers([(b"Access-Control-Allow-Origin", b"*")], None)
    assert out == [(b"Vary", b"Origin")]


def test_preflight_allows_what_was_asked() -> None:
    out = ph.preflight_headers(
        [
            (b"Origin", b"http://localhost:3000"),
            (b"Access-Control-Request-Method", b"PURGE"),
            (b"Access-Control-Request-Headers", b"x-token, content-type"),
        ]
    )
    assert (b"Access-Control-Allow-Methods", b"PURGE, " + b", ".join(ph.COMMON_METHODS)) in out
    assert (b"Access-Control-Allow-Headers", b"x-token, content-type") in out
    assert (b"Access-Control-Max-Age", b"600") in out


def test_origin_policy_local_only_unless_allowed() -> None:
    policy = ph.ProxyPolicy("api", "127.0.0.1", 1, (), lambda: ["myapp.local"], True)
    assert policy.origin_allowed("http://localhost:3000")
    assert policy.origin_allowed("http://app.localhost:3000")
    assert policy.origin_allowed("http://myapp.local:3000")
    assert not policy.origin_allowed("https://evil.example")
    assert not policy.origin_allowed("null")
    allowed = ph.normalize_origins(["https://Staging.Example.com/"])
    policy = ph.ProxyPolicy("api", "127.0.0.1", 1, allowed, lambda: [], True)
    assert policy.origin_allowed("https://staging.example.com")
    assert not policy.origin_allowed("https://evil.example")
    anyone = ph.ProxyPolicy("api", "127.0.0.1", 1, ("*",), lambda: [], True)
    assert anyone.origin_allowed("https://evil.example")


def test_host_guard_accepts_local_managed_and_allowed_origin_names() -> None:
    allowed = ph.normalize_origins(["http://dev.example.test:3000"])
    policy = ph.ProxyPolicy("api", "127.0.0.1", 1, allowed, lambda: ["api.myapp.local"], True)
    for host in ("localhost:5002", "127.0.0.1:5002", "[::1]:5002", "api.myapp.local:5002"):
        assert policy.host_allowed(host), host
    assert policy.host_allowed("dev.example.test:5002")
    assert not policy.host_allowed("attacker.example")
    assert ph.ProxyPolicy("api", "127.0.0.1", 1, ("*",), list, True).host_allowed("a.example")
    # listening beyond loopback on purpose: the names used there are the user's business
    assert ph.ProxyPolicy("api", "127.0.0.1", 1, (), list, False).host_allowed("a.example")


def test_ipv6_upstream_is_written_as_in_a_url() -> None:
    policy = ph.ProxyPolicy("api", "::1", 5001, (), lambda: [], True)
    assert policy.upstream_address == "[::1]:5001"
    assert "on [::1]:5001 (connection refused)" in policy.unavailable("connection refused").message


def test_bad_ports_are_refused_before_binding() -> None:
    from promenade_core.proxy.server import CorsProxy, CorsProxyError

    with pytest.raises(CorsProxyError, match="cors_proxy_port must be a port 1-65535, got 0"):
        CorsProxy("api", 0, 5001)
    with pytest.raises(CorsProxyError, match="port must be a port 1-65535, got 70000"):
        CorsProxy("api", 5002, 70000)


# ---- through a real proxy ----


class WsClient:
    """A WebSocket client on a plain socket (wsproto), so every byte is under test."""

    def __init__(self, port: int, origin: str, path: str = "/ws") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: list[Any] = []
        hello = Request(
            host=f"127.0.0.1:{port}", target=path, extra_headers=[(b"Origin", origin.encode())]
        )
        self.sock.sendall(self.ws.send(hello))

    def event(self) -> Any:
        while not self.pending:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
            if not data and not self.pending:
                raise ConnectionError("websocket closed without an event")
        return self.pending.pop(0)

    def message(self) -> str | bytes:
        """One whole message, however many frames it came in."""
        parts: list[Any] = []
        while True:
            event = self.event()
            assert isinstance(event, TextMessage | BytesMessage), event
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(self.ws.send(Message(data=data)))


def test_get_gets_cors_headers_replacing_the_services(proxy: Proxy) -> None:
    response, body = request(proxy.port, "GET", "/hello", {"Origin": LOCAL_ORIGIN})
    assert (response.status, body) == (200, b"hello")
    assert response.getheader("Access-Control-Allow-Origin") == LOCAL_ORIGIN
    assert response.getheader("Access-Control-Allow-Credentials") == "true"
    assert response.getheader("Vary") == "Accept-Encoding, Origin"
    exposed = response.getheader("Access-Control-Expose-Headers").split(", ")
    assert "X-Service" in exposed
    assert "Content-Type" not in exposed  # safelisted: readable anyway
    assert len(response.headers.get_all("Access-Control-Allow-Origin")) == 1


def test_request_without_origin_passes_through(proxy: Proxy) -> None:
    response, body = request(proxy.port, "GET", "/hello")
    assert (response.status, body) == (200, b"hello")
    assert response.getheader("Access-Control-Allow-Origin") is None
    assert response.getheader("X-Service") == "demo"


def test_service_sees_forwarded_headers_not_hop_by_hop(proxy: Proxy) -> None:
    headers = {"Connection": "X-Hop", "X-Hop": "secret", "X-Forwarded-For": "10.1.2.3"}
    response, body = request(proxy.port, "GET", "/headers", headers)
    seen = {name.lower(): value for name, value in json.loads(body)}
    assert response.status == 200
    assert seen["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == seen["host"] == f"127.0.0.1:{proxy.port}"
    assert "x-hop" not in seen
    assert "connection" not in seen


def test_preflight_is_answered_by_the_proxy(proxy: Proxy) -> None:
    """The service (http.server) would answer OPTIONS with 501; the proxy answers 204."""
    response, body = request(
        proxy.port,
        "OPTIONS",
        "/anything",
        {
            "Origin": LOCAL_ORIGIN,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-token, content-type",
        },
    )
    assert (response.status, body) == (204, b"")
    assert response.getheader("Access-Control-Allow-Origin") == LOCAL_ORIGIN
    assert response.getheader("Access-Control-Allow-Credentials") == "true"
    assert response.getheader("Access-Control-Allow-Methods").startswith("PUT, GET")
    assert response.getheader("Access-Control-Allow-Headers") == "x-token, content-type"
    assert response.getheader("Access-Control-Max-Age") == "600"
    assert "Origin" in response.getheader("Vary")


def test_foreign_origin_is_refused_without_cors_headers(proxy: Proxy) -> None:
    conn = proxy.connect()
    for method, body in (("GET", None), ("POST", b"x" * 200_000)):
        response, data = request(
            proxy.port, method, "/sha", {"Origin": "https://evil.example"}, body, conn
        )
        assert response.status == 403
        assert error_of(data)["code"] == "origin_refused"
        assert "'https://evil.example'" in error_of(data)["message"]
        assert response.getheader("Access-Control-Allow-Origin") is None
        conn.close()
    preflight, _ = request(
        proxy.port,
        "OPTIONS",
        "/x",
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert preflight.status == 403
    assert preflight.getheader("Access-Control-Allow-Methods") is None


def test_non_local_host_is_refused_against_dns_rebinding(proxy: Proxy) -> None:
    response, body = request(proxy.port, "GET", "/hello", {"Host": "attacker.example:80"})
    assert (response.status, response.reason) == (403, "Forbidden")
    assert error_of(body)["code"] == "host_refused"


@pytest.mark.timeout(30)
def test_allowed_origins_and_reconfigure_without_rebinding(
    upstream: Server, scripts: dict[str, Path], start_proxy: Callable[..., Proxy]
) -> None:
    other = Server(scripts["upstream"])
    try:
        proxy = start_proxy(upstream.port, allow_origins=["https://Staging.Example.com/"])
        conn = proxy.connect()
        staging = {"Origin": "https://staging.example.com"}
        response, body = request(proxy.port, "GET", "/port", staging, conn=conn)
        assert (response.status, body) == (200, str(upstream.port).encode())
        assert response.getheader("Access-Control-Allow-Origin") == staging["Origin"]
        evil = {"Origin": "https://evil.example"}
        assert request(proxy.port, "GET", "/port", evil)[0].status == 403

        proxy.command(cmd="reconfigure", upstream_port=other.port, allow_origins=["*"])
        # the kept-alive client connection follows the new upstream at its next request
        response, body = request(proxy.port, "GET", "/port", evil, conn=conn)
        assert (response.status, body) == (200, str(other.port).encode())
        assert response.getheader("Access-Control-Allow-Origin") == evil["Origin"]
        assert request(proxy.port, "GET", "/port")[1] == str(other.port).encode()
    finally:
        other.kill()


def test_keep_alive_survives_a_service_closing_its_side(proxy: Proxy) -> None:
    conn = proxy.connect()
    for path in ("/hello", "/close", "/hello", "/plain"):
        response, _ = request(proxy.port, "GET", path, conn=conn)
        assert response.status == 200, path
    first_socket = conn.sock
    response, body = request(proxy.port, "HEAD", "/hello", conn=conn)
    assert (response.status, body, response.getheader("Content-Length")) == (200, b"", "5")
    response, body = request(proxy.port, "POST", "/sha", body=b"abc", conn=conn)
    assert json.loads(body)["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert conn.sock is first_socket  # one client connection carried all of them


@pytest.mark.timeout(60)
def test_5mb_bodies_both_ways_arrive_intact(proxy: Proxy) -> None:
    payload = random.Random(7).randbytes(5 * 1024 * 1024)
    response, body = request(proxy.port, "POST", "/echo", {"Origin": LOCAL_ORIGIN}, payload)
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()

    response, body = request(proxy.port, "GET", f"/bytes?n={len(payload)}&seed=7")
    assert response.getheader("Content-Length") == str(len(payload))
    assert body == payload

    conn = proxy.connect()
    pieces = (payload[i : i + 100_000] for i in range(0, len(payload), 100_000))
    conn.request("PUT", "/sha", body=pieces, encode_chunked=True)
    summary = json.loads(conn.getresponse().read())
    assert summary == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


@pytest.mark.timeout(30)
def test_request_body_is_streamed_not_buffered(proxy: Proxy, tmp_path: Path) -> None:
    """The service has received the first megabyte while the client still holds the rest."""
    progress = tmp_path / "progress"
    size = 4 * 1024 * 1024
    head = (
        f"POST /sha?progress={progress} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as sock:
        sock.sendall(head + b"a" * (1024 * 1024))
        wait_for(
            lambda: progress.exists() and int(progress.read_text() or 0) >= 1024 * 1024,
            what="the service to receive the first megabyte",
        )
        sock.sendall(b"a" * (size - 1024 * 1024))
        reply = read_http(sock)
    assert b"200 OK" in reply
    assert f'"length": {size}'.encode() in reply


def read_http(sock: socket.socket) -> bytes:
    """A whole Content-Length response from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        rest += piece
    return head + b"\r\n\r\n" + rest


@pytest.mark.timeout(30)
def test_slow_streamed_response_arrives_incrementally(proxy: Proxy, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    conn = proxy.connect()
    conn.request("GET", f"/slow?gate={gate}", headers={"Origin": LOCAL_ORIGIN})
    response = conn.getresponse()
    assert response.status == 200
    assert response.readline() == b"first\n"  # while the service still holds the rest
    gate.touch()
    assert response.read() == b"second\n"


@pytest.mark.timeout(30)
def test_server_sent_events_arrive_one_by_one(proxy: Proxy, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    conn = proxy.connect()
    conn.request(
        "GET",
        f"/sse?gate={gate}",
        headers={"Origin": LOCAL_ORIGIN, "Accept": "text/event-stream"},
    )
    response = conn.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    assert response.getheader("Access-Control-Allow-Origin") == LOCAL_ORIGIN
    # the service frames by closing; the proxy re-frames as chunks and keeps the client
    assert response.getheader("Transfer-Encoding") == "chunked"
    first = b"".join(response.readline() for _ in range(3))
    assert first == b"id: 0\ndata: event 0\n\n"
    gate.touch()
    assert response.read() == b"id: 1\ndata: event 1\n\n"


@pytest.mark.timeout(30)
def test_websocket_echo_through_the_proxy(
    scripts: dict[str, Path], children: list[Child], start_proxy: Callable[..., Proxy]
) -> None:
    server = Server(scripts["raw"], "ws")
    children.append(server)
    proxy = start_proxy(server.port)
    client = WsClient(proxy.port, LOCAL_ORIGIN)
    assert isinstance(client.event(), AcceptConnection)
    # sent by the service in the same write as its 101: h11's trailing data
    assert client.message() == f"welcome {LOCAL_ORIGIN}"
    client.send("ping över proxy")
    assert client.message() == "ping över proxy"
    big = random.Random(3).randbytes(1024 * 1024)
    client.send(big)
    assert client.message() == big
    client.sock.sendall(client.ws.send(CloseConnection(code=1000)))
    assert isinstance(client.event(), CloseConnection)
    client.sock.settimeout(3)
    assert client.sock.recv(10) == b""  # the proxy closes promptly, not after a timeout
    client.sock.close()

    refused = WsClient(proxy.port, "https://evil.example")
    assert b" 403 " in refused.sock.recv(4096).split(b"\r\n")[0]
    refused.sock.close()


def test_upstream_down_gets_a_clear_502(start_proxy: Callable[..., Proxy]) -> None:
    dead = free_port()
    proxy = start_proxy(dead)
    response, body = request(proxy.port, "GET", "/hello", {"Origin": LOCAL_ORIGIN})
    assert response.status == 502
    assert response.getheader("Content-Type") == "application/json"
    assert error_of(body) == {
        "code": "upstream_unavailable",
        "message": f"service 'api' is not answering on 127.0.0.1:{dead} "
                   "(connection refused, on ::1 as well)",
    }
    # the page can read why: the error carries CORS headers too
    assert response.getheader("Access-Control-Allow-Origin") == LOCAL_ORIGIN
    response, body = request(proxy.port, "POST", "/x", body=b"z" * 300_000)
    assert response.status == 502


def test_service_dying_between_requests_gets_502(
    scripts: dict[str, Path], children: list[Child], start_proxy: Callable[..., Proxy]
) -> None:
    server = Server(scripts["upstream"])
    children.append(server)
    proxy = start_proxy(server.port)
    conn = proxy.connect()
    assert request(proxy.port, "GET", "/hello", conn=conn)[0].status == 200
    server.kill()
    response, body = request(proxy.port, "GET", "/hello", conn=conn)
    assert response.status == 502
    assert error_of(body)["code"] == "upstream_unavailable"


def test_service_speaking_garbage_gets_502(
    scripts: dict[str, Path], children: list[Child], start_proxy: Callable[..., Proxy]
) -> None:
    server = Server(scripts["raw"], "garbage")
    children.append(server)
    proxy = start_proxy(server.port)
    response, body = request(proxy.port, "GET", "/hello")
    assert response.status == 502
    assert error_of(body)["code"] == "upstream_protocol_error"


def test_malformed_requests_get_400_and_the_proxy_lives_on(proxy: Proxy) -> None:
    for raw in (
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(raw)
            reply = read_http(sock)
        status = reply.split(b"\r\n", 1)[0]
        assert status.split(b" ")[1] in (b"400", b"431"), (raw[:40], reply[:200])
        assert error_of(reply.partition(b"\r\n\r\n")[2])["code"] == "bad_request"
    assert request(proxy.port, "GET", "/hello")[1] == b"hello"


def test_ambiguous_framing_refusal_closes_the_connection(proxy: Proxy) -> None:
    """A request with both Content-Length and Transfer-Encoding got its 400 but the
    connection stayed open for the next request: RFC 9112 6.1 says close it, since the
    two framings disagree on where the next request starts (request smuggling)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"POST /hello HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        reply = read_http(sock)
        assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
        assert b"\r\nconnection: close\r\n" in reply.partition(b"\r\n\r\n")[0].lower() + b"\r\n"
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        rest = b""
        with contextlib.suppress(ConnectionResetError):
            while piece := sock.recv(65536):
                rest += piece
    assert rest == b"", f"the connection served another request: {rest[:200]!r}"


def test_expect_100_continue_is_relayed(proxy: Proxy) -> None:
    """curl sends `Expect: 100-continue` for big uploads and waits for the interim answer."""
    body = b"c" * 300_000
    head = (
        b"POST /sha HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(head)
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(1)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        reply = read_http(sock)
    assert reply.startswith(b"HTTP/1.1 200 OK")
    assert hashlib.sha256(body).hexdigest().encode() in reply


def test_service_answering_before_reading_the_body(proxy: Proxy) -> None:
    response, body = request(proxy.port, "POST", "/early", body=b"q" * 512 * 1024)
    assert response.status == 413
    assert json.loads(body) == {"error": "too big"}


def test_http10_client_without_host(proxy: Proxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        reply = b""
        while piece := sock.recv(65536):
            reply += piece
    assert reply.startswith(b"HTTP/1.1 200")
    assert reply.endswith(b"\r\n\r\nhello")


@pytest.mark.timeout(60)
def test_clients_hanging_up_leak_no_greenlets_or_sockets(proxy: Proxy, tmp_path: Path) -> None:
    """Clients that leave mid-body, mid-stream or mid-WebSocket leave nothing behind."""
    baseline = proxy.command(cmd="stats")
    for _ in range(5):
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        head = b"POST /sha HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n"
        sock.sendall(head + b"x" * 100_000)
        sock.close()
    # an idle event stream: the service holds it open silently; the client leaves
    gate = tmp_path / "never"
    streams = []
    for _ in range(3):
        conn = proxy.connect()
        conn.request("GET", f"/sse?gate={gate}")
        response = conn.getresponse()
        assert response.readline() == b"id: 0\n"
        streams.append(conn)
    busy = proxy.command(cmd="stats")
    assert busy["greenlets"] > baseline["greenlets"]
    for conn in streams:
        conn.close()
    wait_for(
        lambda: (
            (s := proxy.command(cmd="stats"))["greenlets"] == baseline["greenlets"]
            and s["fds"] == baseline["fds"]
            and s
        ),
        what=f"greenlets and fds back to {baseline}",
    )


@pytest.mark.timeout(30)
def test_stop_closes_listener_and_every_open_relay(
    scripts: dict[str, Path], children: list[Child], start_proxy: Callable[..., Proxy]
) -> None:
    server = Server(scripts["raw"], "ws")
    children.append(server)
    proxy = start_proxy(server.port)
    idle = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    client = WsClient(proxy.port, LOCAL_ORIGIN)
    assert isinstance(client.event(), AcceptConnection)
    client.message()
    stopped = proxy.command(cmd="stop")
    assert stopped["running"] is False
    assert stopped["greenlets"] == 0, stopped["names"]
    assert stopped["fds"] == proxy.first["fds"] - 1  # the listener
    for sock in (idle, client.sock):
        sock.settimeout(5)
        assert sock.recv(10) == b""
        sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert proxy.command(cmd="start")["running"] is True
    again = WsClient(proxy.port, LOCAL_ORIGIN)
    assert isinstance(again.event(), AcceptConnection)
    again.sock.close()


def test_taken_port_is_reported_naming_it(
    scripts: dict[str, Path], children: list[Child], upstream: Server
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        proxy = Proxy(scripts["launcher"], upstream.port, listen_port=port)
        children.append(proxy)
    assert proxy.first["type"] == "CorsProxyError"
    assert proxy.first["error"] == (
        f"CORS proxy of service 'api' cannot listen on 127.0.0.1:{port}: port {port} is "
        "already in use; stop what holds it or pick another cors_proxy_port"
    )
