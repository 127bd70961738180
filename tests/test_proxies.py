"""CORS proxies follow their service: started and stopped with it, reconfigured on reload."""

from __future__ import annotations

import http.client
import sys

import pytest

from tests.support import free_port, wait_for

pytestmark = pytest.mark.timeout(60)


def get(port: int, origin: str) -> tuple[int, str | None]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Origin": origin})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Access-Control-Allow-Origin")
    finally:
        conn.close()


def refused(port: int) -> bool:
    try:
        get(port, "http://localhost")
    except OSError:
        return True
    return False


def test_proxy_follows_the_service_and_reloads(manager) -> None:
    port, proxy = free_port(), free_port()
    m = manager(f"""
        manager: {{hosts_management: disabled, config_poll_interval: 0.2}}
        services:
          api:
            command: {sys.executable} -m http.server {port} --bind 127.0.0.1
            port: {port}
            ready_check: {{type: tcp, interval: 0.1}}
            cors_proxy: true
            cors_proxy_port: {proxy}
    """)
    wait_for(lambda: m.status("api")["health"] == "healthy", what="api healthy")
    assert m.status("api")["cors_proxy_port"] == proxy
    assert get(proxy, "http://localhost:3000") == (200, "http://localhost:3000")
    assert get(proxy, "https://example.com")[0] == 403
    pid = m.status("api")["pid"]
    m.path.write_text(m.path.read_text().replace(
        f"cors_proxy_port: {proxy}",
        f"cors_proxy_port: {proxy}\n    cors_allow_origins: [https://example.com]"))
    m.wait_output("reload:")
    wait_for(lambda: get(proxy, "https://example.com") == (200, "https://example.com"),
             what="the new origin allowed")
    assert m.status("api")["pid"] == pid
    m.request("stop", service="api")
    wait_for(lambda: refused(proxy), what="the proxy to close with its service")
    m.request("start", service="api")
    wait_for(lambda: m.status("api")["health"] == "healthy", what="api healthy again")
    assert get(proxy, "http://127.0.0.1:8080") == (200, "http://127.0.0.1:8080")
