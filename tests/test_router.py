"""The router as a real process: started by `ensure_router()`, fed routes over its
control socket, serving HTTPS by name (SNI and Host) to tiny backends."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from promenade_core.router.launch import ensure_router
from tests.support import free_port, wait_for
from tests.support.router import PeakRss, RouterEnv, alive, route


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RouterEnv]:
    made = RouterEnv(tmp_path, monkeypatch)
    yield made
    made.cleanup()


def test_two_ensure_calls_start_one_router_on_the_fallback_ports(env: RouterEnv) -> None:
    first = env.ensure()
    pid = env.router_pid()
    second = env.ensure()
    assert second == first
    assert env.router_pid() == pid
    assert (first.https_port, first.http_port) == (env.https_port, env.http_port)
    assert first.url("api.myapp.localhost") == f"https://api.myapp.localhost:{env.https_port}"
    assert first.ca_trusted is False
    assert oct(first.socket_path.stat().st_mode & 0o777) == "0o600"


def test_concurrent_ensure_calls_start_one_router(env: RouterEnv) -> None:
    infos: list[object] = []
    threads = [threading.Thread(target=lambda: infos.append(ensure_router()))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(infos) == 3 and len(set(map(repr, infos))) == 1
    env.ensure()
    log = Path(os.environ["XDG_RUNTIME_DIR"]) / "promenade" / "router" / "router.log"
    assert log.read_text().count("serving HTTPS") == 1


def test_routes_of_two_connections_are_served_by_name_at_once(env: RouterEnv) -> None:
    env.ensure()
    api, web, other = env.backend("api"), env.backend("web"), env.backend("other")
    one = env.control("/p/one/promenade.yaml")
    assert one.routes(route("api.one.localhost", api, "api"),
                      route("web.one.localhost", web, "web")) == {"ok": True, "routes": 2}
    two = env.control("/p/two/promenade.yaml")
    assert two.routes(route("two.localhost", other))["ok"]
    for name, backend in (("api.one.localhost", "api"), ("web.one.localhost", "web"),
                          ("two.localhost", "other")):
        status, _headers, body = env.get(name, "/hello?x=1")
        assert status == 200, body
        seen = json.loads(body)
        assert (seen["backend"], seen["path"]) == (backend, "/hello?x=1")
        assert seen["headers"]["host"] == f"{name}:{env.https_port}"
    info = one.ask(op="info")
    assert [r["name"] for r in info["routes"]] == [
        "api.one.localhost", "two.localhost", "web.one.localhost"]


def test_forwarded_headers_are_set_and_client_sent_ones_replaced(env: RouterEnv) -> None:
    env.ensure()
    api = env.backend("api")
    env.control("/p/promenade.yaml").routes(route("api.x.localhost", api))
    _status, headers, body = env.get("api.x.localhost", "/", {
        "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "gopher",
        "X-Forwarded-Host": "evil.test", "Origin": "https://elsewhere.test"})
    seen = json.loads(body)["headers"]
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == f"api.x.localhost:{env.https_port}"
    # transparent: the service's own CORS answer passes, the router adds none
    assert headers["Access-Control-Allow-Origin"] == "https://own.cors.test"
    assert "Access-Control-Allow-Credentials" not in headers


def test_a_name_held_by_another_connection_is_refused(env: RouterEnv) -> None:
    env.ensure()
    one = env.control("/p/one/promenade.yaml")
    assert one.routes(route("api.localhost", 5001))["ok"]
    two = env.control("/p/two/promenade.yaml")
    reply = two.routes(route("free.localhost", 5003), route("api.localhost", 5002))
    assert reply["ok"] is False and reply["code"] == "name_taken"
    assert "/p/one/promenade.yaml" in reply["message"]
    names = [r["name"] for r in two.ask(op="info")["routes"]]
    assert names == ["api.localhost"]  # refused whole: free.localhost was not taken
    assert two.routes(route("free.localhost", 5003))["ok"]


def test_bad_control_requests_get_an_error_code_not_a_crash(env: RouterEnv) -> None:
    env.ensure()
    client = env.control()
    assert client.ask(op="routes", routes=[])["code"] == "hello_first"
    assert client.ask(op="hello", pid=1, project="/p", version=99)["code"] == (
        "unsupported_version")
    assert client.ask(op="fly")["code"] == "unknown_op"
    client.sock.sendall(b"{not json\n")
    assert json.loads(client.file.readline())["code"] == "bad_request"
    assert client.hello("/p")["ok"]
    assert client.routes({"name": "Bad Name", "port": 1})["code"] == "invalid_routes"
    assert client.ask(op="info")["ok"]


def test_sigkill_of_a_registering_client_frees_its_names_within_a_second(
        env: RouterEnv) -> None:
    env.ensure()
    kept = env.backend("kept")
    other = env.control("/p/other/promenade.yaml")
    assert other.routes(route("kept.localhost", kept))["ok"]
    holder = env.holder("/p/held/promenade.yaml", [route("held.localhost", 5001)])
    assert holder.stdout is not None
    assert json.loads(holder.stdout.readline())["ok"]  # hello
    assert json.loads(holder.stdout.readline())["ok"]  # routes
    both = (route("kept.localhost", kept), route("held.localhost", 5002))
    assert other.routes(*both)["code"] == "name_taken"
    holder.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: other.routes(*both)["ok"], timeout=1.0,
             what="the name to be free after SIGKILL of its holder")
    assert time.monotonic() - killed < 1.0
    assert env.get("kept.localhost")[0] == 200  # the other project's route kept working


def test_the_router_exits_after_its_last_client(env: RouterEnv) -> None:
    env.ensure()
    pid = env.router_pid()
    client = env.control("/p/promenade.yaml")
    time.sleep(0.5)  # the idle clock is not running while a client is connected
    assert alive(pid)
    client.close()
    env.controls.remove(client)
    gone_from = time.monotonic()
    wait_for(lambda: not alive(pid), timeout=10, what="the router to exit when idle")
    assert time.monotonic() - gone_from >= 4.0  # it waited its idle time first
    assert env.info is not None and not env.info.socket_path.exists()


def test_a_service_not_up_gets_a_page_that_refreshes_while_starting(env: RouterEnv) -> None:
    env.ensure()
    client = env.control("/p/promenade.yaml")
    client.routes(route("api.localhost", None, "api", "starting", "waiting for port 5001"),
                  route("db.localhost", 5999, "db", "failed", "exited with code 3"))
    status, headers, body = env.get("api.localhost", "/")
    assert status == 503 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert '<meta http-equiv="refresh" content="2">' in page
    assert "api" in page and "starting" in page and "waiting for port 5001" in page
    status, headers, body = env.get("db.localhost", "/", {"Accept": "application/json"})
    assert status == 503 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"] == {
        "code": "service_not_up", "name": "db.localhost", "service": "db",
        "status": "failed", "status_reason": "exited with code 3",
        "message": "service 'db' is failed: exited with code 3"}
    _status, _headers, body = env.get("db.localhost", "/")
    assert b"refresh" not in body and b"promenade start db" in body


def test_a_running_service_that_does_not_answer_gets_a_page_that_refreshes(
        env: RouterEnv) -> None:
    env.ensure()
    env.control("/p/promenade.yaml").routes(route("vite.localhost", free_port(), "vite"))
    status, headers, body = env.get("vite.localhost", "/")
    assert status == 502 and headers["Content-Type"].startswith("text/html")
    assert b'http-equiv="refresh"' in body and b"connection refused" in body
    status, headers, body = env.get("vite.localhost", "/", {"Accept": "application/json"})
    assert status == 502 and headers["Retry-After"] == "2"
    assert json.loads(body)["error"]["code"] == "upstream_unavailable"


def test_an_unknown_name_is_refused_at_tls_and_by_host_with_a_404(env: RouterEnv) -> None:
    env.ensure()
    api = env.backend("api")
    env.control("/p/promenade.yaml").routes(route("api.localhost", api))
    with pytest.raises(OSError):  # no leaf for a name nobody registered
        env.get("nobody.localhost")
    # a registered name's TLS, then another Host: the 404 lists what is served
    status, _headers, body = env.get("api.localhost", "/", {
        "Host": "nobody.localhost", "Accept": "application/json"})
    assert status == 404
    assert json.loads(body)["error"]["names"] == ["api.localhost"]
    status, _headers, body = env.get("api.localhost", "/", {"Host": "nobody.localhost"})
    assert status == 404 and b'href="https://api.localhost/"' in body


def test_http_redirects_to_https(env: RouterEnv) -> None:
    info = env.ensure()
    with socket.create_connection(("127.0.0.1", env.http_port), timeout=5) as sock:
        sock.sendall(b"POST /a?b=1 HTTP/1.1\r\nHost: api.localhost\r\n"
                     b"Content-Length: 0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 308 ")
    assert f"Location: https://api.localhost:{info.https_port}/a?b=1".encode() in answer


def test_server_sent_events_arrive_one_by_one(env: RouterEnv) -> None:
    env.ensure()
    env.control("/p/promenade.yaml").routes(route("sse.localhost", env.backend("sse")))
    conn = env.connection("sse.localhost")
    conn.request("GET", "/sse")
    response = conn.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"
    arrivals = []
    for _ in range(3):
        line = response.readline()
        arrivals.append((line, time.monotonic()))
        response.readline()  # the blank line ending the event
    conn.close()
    assert [line for line, _ in arrivals] == [b"data: event 0\n", b"data: event 1\n",
                                               b"data: event 2\n"]
    assert arrivals[2][1] - arrivals[0][1] >= 0.3  # streamed, not buffered to the end


def test_a_websocket_upgrade_passes_through_and_echoes(env: RouterEnv) -> None:
    env.ensure()
    env.control("/p/promenade.yaml").routes(route("ws.localhost", env.backend("ws")))
    raw = socket.create_connection(("127.0.0.1", env.https_port), timeout=10)
    with env.tls().wrap_socket(raw, server_hostname="ws.localhost") as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: ws.localhost\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        frame = bytes([0x81, 0x85, 1, 2, 3, 4]) + bytes(
            b ^ k for b, k in zip(b"hello", b"\x01\x02\x03\x04" * 2, strict=False))
        for _ in range(2):
            sock.sendall(frame)
            echoed = b""
            while len(echoed) < len(frame):
                echoed += sock.recv(4096)
            assert echoed == frame


def test_50_mb_up_and_down_stream_through_without_the_router_holding_them(
        env: RouterEnv) -> None:
    env.ensure()
    pid = env.router_pid()
    env.control("/p/promenade.yaml").routes(route("up.localhost", env.backend("up")))
    assert env.get("up.localhost")[0] == 200  # warm: TLS contexts, leaf, greenlets
    size, chunk = 50 * 1024 * 1024, b"x" * (256 * 1024)
    with PeakRss(pid) as upload:
        conn = env.connection("up.localhost", timeout=60)
        try:
            conn.putrequest("POST", "/upload")
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            for _ in range(size // len(chunk)):
                conn.send(chunk)
            body = conn.getresponse().read()
        finally:
            conn.close()
    assert json.loads(body)["received"] == size
    assert upload.growth_kib < 10 * 1024, f"router RSS grew {upload.growth_kib} KiB"
    with PeakRss(pid) as download:
        conn = env.connection("up.localhost", timeout=60)
        try:
            conn.request("GET", f"/download?{size}")
            response = conn.getresponse()
            received = 0
            while data := response.read(256 * 1024):
                received += len(data)
        finally:
            conn.close()
    assert received == size
    assert download.growth_kib < 10 * 1024, f"router RSS grew {download.growth_kib} KiB"


def test_a_route_with_the_cors_policy_answers_preflights_and_refuses_far_origins(
        env: RouterEnv) -> None:
    env.ensure()
    api = env.backend("api")
    cors = {**route("api.c.localhost", api), "cors_allow_origins": ["https://app.example"]}
    assert env.control("/p/promenade.yaml").routes(cors)["ok"]
    conn = env.connection("api.c.localhost")
    conn.request("OPTIONS", "/", headers={"Origin": "https://web.c.localhost",
                                          "Access-Control-Request-Method": "PUT"})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    assert answer.status == 204
    assert answer.getheader("Access-Control-Allow-Origin") == "https://web.c.localhost"
    status, headers, _ = env.get("api.c.localhost", "/", {"Origin": "https://app.example"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    status, _, body = env.get("api.c.localhost", "/", {"Origin": "https://evil.example"})
    assert status == 403 and json.loads(body)["error"]["code"] == "origin_refused"


PEER_CLIENT = """\
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
print(s.makefile("rb").readline().decode().strip())  # refused at once, before any request
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to connect as another user")
def test_a_control_connection_from_another_user_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Even with the folders opened up, SO_PEERCRED keeps other users out."""
    root = Path(tempfile.mkdtemp(prefix="r15-"))
    root.chmod(0o711)
    env = RouterEnv(root, monkeypatch)
    try:
        info = env.ensure()
        for folder in (root / "run", root / "run" / "promenade", info.socket_path.parent):
            folder.chmod(0o711)
        info.socket_path.chmod(0o666)
        out = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "/usr/bin/python3", "-c", PEER_CLIENT, str(info.socket_path)],
            capture_output=True, text=True, timeout=20)
        assert json.loads(out.stdout)["code"] == "forbidden", out.stderr
        assert env.router_pid() > 0  # still serving its own user
    finally:
        env.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_an_overlong_control_line_is_refused_and_the_connection_closed(
        env: RouterEnv) -> None:
    env.ensure()
    client = env.control()
    client.sock.sendall(b"x" * (70 * 1024))
    assert json.loads(client.file.readline())["code"] == "bad_request"
    assert client.file.readline() == b""
    assert env.control("/p/promenade.yaml").routes(route("a.localhost", 1))["ok"]
