"""Drive-by protection: foreign pages can neither read logs nor stop services, the
user's own local pages can, and every response carries SPEC.md's CORS headers."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.support import free_port, wait_for
from tests.support.web import Dashboard, start_dashboard, ws_handshake

PY = sys.executable
pytestmark = pytest.mark.timeout(60)

CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, PUT, DELETE, OPTIONS",
    "access-control-allow-headers": "*",
}

FOREIGN_ORIGINS = [
    "http://evil.example",
    "https://attacker.com:9000",
    "http://localhost.evil.example",
    "http://127.0.0.1.nip.io",
    "null",
    "file://",
]


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    folder = tmp_path_factory.mktemp("websec")
    port, api_port = free_port(), free_port()
    d = start_dashboard(folder, f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          api:
            command: {PY} -c "import time; print('secret log line', flush=True); time.sleep(600)"
            port: {api_port}
            hostname: myapp.test
    """, port=port)
    d.wait_status("api", "running")
    wait_for(lambda: b"secret log line" in d.get("/api/services/api/logs").raw, 15,
             "api's first line in its log buffer")
    yield d
    d.manager.cleanup()


def assert_cors(reply_headers: dict[str, str]) -> None:
    for name, value in CORS.items():
        assert reply_headers.get(name) == value, (name, reply_headers)


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_a_foreign_origin_can_neither_read_nor_control(dash: Dashboard, origin: str) -> None:
    pid = dash.service("api")["pid"]
    for method, path in [("GET", "/api/status"), ("GET", "/api/services/api/logs"),
                         ("GET", "/api/config"), ("POST", "/api/services/api/stop"),
                         ("POST", "/api/restart-all"), ("POST", "/api/reload"),
                         ("OPTIONS", "/api/services/api/stop")]:
        reply = dash.call(method, path, headers={"Origin": origin})
        assert reply.status == 403, (method, path, reply.raw)
        assert reply.body["error"]["code"] == "forbidden_origin"
        assert b"secret log line" not in reply.raw
        assert_cors(reply.headers)
    after = dash.service("api")
    assert after["status"] == "running" and after["pid"] == pid, "a foreign page stopped api"


@pytest.mark.parametrize("origin", [
    "http://localhost:3000", "http://127.0.0.1:5173", "http://[::1]:8080",
    "http://app.localhost:3000", "https://localhost", "http://127.0.0.2:4000",
])
def test_local_pages_may_use_the_api(dash: Dashboard, origin: str) -> None:
    reply = dash.get("/api/services/api/logs", headers={"Origin": origin})
    assert reply.status == 200, reply.raw
    assert any(ln["line"] == "secret log line" for ln in reply.body["lines"])
    assert_cors(reply.headers)
    preflight = dash.call("OPTIONS", "/api/services/api/restart", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status == 204
    assert_cors(preflight.headers)


def test_the_dashboards_own_origin_is_allowed(dash: Dashboard) -> None:
    reply = dash.get("/api/status", headers={"Origin": dash.base})
    assert reply.status == 200


def test_requests_without_origin_are_served(dash: Dashboard) -> None:
    """curl, the CLI and scripts send no Origin."""
    reply = dash.get("/api/status")
    assert reply.status == 200
    assert_cors(reply.headers)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "attacker.com",
                                  "192.0.2.1.nip.io:{port}", ""])
def test_a_foreign_host_header_is_refused(dash: Dashboard, host: str) -> None:
    """DNS rebinding: the page's own name resolves to 127.0.0.1 but its Host says so."""
    reply = dash.get("/api/status", headers={"Host": host.format(port=dash.port)})
    assert reply.status == 403, reply.raw
    assert reply.body["error"]["code"] == "forbidden_host"
    assert_cors(reply.headers)
    page = dash.get("/", headers={"Host": host.format(port=dash.port)})
    assert page.status == 403


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}",
                                  "dash.localhost:{port}", "localhost"])
def test_local_host_headers_are_served(dash: Dashboard, host: str) -> None:
    assert dash.get("/api/status", headers={"Host": host.format(port=dash.port)}).status == 200


def test_every_response_carries_cors_and_the_page_cannot_be_framed(dash: Dashboard) -> None:
    """Every response but the dashboard page itself: it carries the token that typing
    into a service needs, which other origins must not read (test_dashboard_terminal)."""
    for path in ["/static/app.js", "/api/status", "/api/nope", "/api/services/x"]:
        assert_cors(dash.get(path).headers)
    page = dash.get("/")
    assert "access-control-allow-origin" not in page.headers
    assert page.status == 200 and b"Promenade" in page.raw
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("origin", ["http://evil.example", "null"])
def test_websocket_handshake_from_a_foreign_origin_is_refused(dash: Dashboard,
                                                              origin: str) -> None:
    status, sock = ws_handshake(dash.port, {"Origin": origin})
    sock.close()
    assert status == 403


def test_websocket_handshake_with_a_foreign_host_is_refused(dash: Dashboard) -> None:
    status, sock = ws_handshake(dash.port, {"Host": f"evil.example:{dash.port}"})
    sock.close()
    assert status == 403


@pytest.mark.parametrize("origin", ["http://localhost:3000", None])
def test_websocket_handshake_from_local_pages_is_accepted(dash: Dashboard,
                                                          origin: str | None) -> None:
    status, sock = ws_handshake(dash.port, {"Origin": origin} if origin else {})
    sock.close()
    assert status == 101


def test_an_unmapped_configured_hostname_is_not_a_local_origin(dash: Dashboard) -> None:
    """Regression: a configured hostname counted as a local origin even though nothing
    mapped it (`hosts_management: disabled` here, so `myapp.test` resolves wherever DNS
    says): a page served under that name by someone else could stop services and read
    logs. Only names mapped to loopback count; the status says which are."""
    api = dash.service("api")
    assert api["hostname"] == "myapp.test" and api["hostname_mapped"] is False
    origin, host = "http://myapp.test:8000", f"myapp.test:{dash.port}"
    for method, path in [("GET", "/api/services/api/logs"), ("POST", "/api/services/api/stop")]:
        reply = dash.call(method, path, headers={"Origin": origin})
        assert reply.status == 403 and reply.body["error"]["code"] == "forbidden_origin"
        assert b"secret log line" not in reply.raw
    reply = dash.get("/api/status", headers={"Host": host})
    assert reply.status == 403 and reply.body["error"]["code"] == "forbidden_host"
    status, sock = ws_handshake(dash.port, {"Origin": origin})
    sock.close()
    assert status == 403
    after = dash.service("api")
    assert after["status"] == "running" and after["pid"] == api["pid"]
