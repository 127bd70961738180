"""Health checks end to end: IPv6 loopback, the User-Agent, the pace once healthy."""

from __future__ import annotations

import http.client
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.support import Manager, free_port, free_port6, wait_for, write_script

PY = sys.executable
pytestmark = pytest.mark.timeout(90)

#: An HTTP server on one address only, writing each request's User-Agent to a file.
SERVER = """
    import http.server, socket, sys
    host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    class Server(http.server.HTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            with open(log, "a") as out:
                out.write((self.headers.get("User-Agent") or "-") + "\\n")
            body = f"hello from {host}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    Server((host, port), Handler).serve_forever()
"""


def requests_seen(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("check", ["{type: http, path: /, interval: 0.1}",
                                   "{type: tcp, interval: 0.1}"], ids=["http", "tcp"])
def test_service_bound_only_to_ipv6_loopback_becomes_healthy(
        manager, tmp_path: Path, check: str) -> None:
    """Health checks dialled 127.0.0.1 only: a dev server bound to ::1 (Vite on recent
    Node) stayed `waiting`, then `unhealthy`, and its dependants waited it out."""
    port = free_port6()
    write_script(tmp_path, "server.py", SERVER)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          vite:
            command: {PY} server.py ::1 {port} {tmp_path / "requests.log"}
            port: {port}
            ready_check: {check}
          app:
            command: sleep 60
            depends_on: [vite]
    """)
    wait_for(lambda: m.status("vite")["health"] == "healthy", 30, "vite to be healthy")
    m.wait_status("app", "running", timeout=30)
    assert "is not healthy" not in m.output()


def test_cors_proxy_reaches_a_service_bound_only_to_ipv6_loopback(
        manager, tmp_path: Path) -> None:
    """The CORS proxy dialled 127.0.0.1 only and answered 502 for a server on ::1."""
    port, proxy = free_port6(), free_port()
    write_script(tmp_path, "server.py", SERVER)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          vite:
            command: {PY} server.py ::1 {port} {tmp_path / "requests.log"}
            port: {port}
            ready_check: {{type: tcp, interval: 0.1}}
            cors_proxy: true
            cors_proxy_port: {proxy}
    """)
    wait_for(lambda: m.status("vite")["health"] == "healthy", 30, "vite to be healthy")

    def get() -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", proxy, timeout=10)
        try:
            conn.request("GET", "/", headers={"Origin": "http://localhost:3000"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    for _ in range(2):  # the second time by the address remembered
        assert get() == (200, b"hello from ::1")


def test_port_held_on_ipv6_loopback_is_in_use(manager, tmp_path: Path) -> None:
    """The port preflight must see a port taken on ::1 only, naming its holder."""
    port = free_port6()
    with socket.socket(socket.AF_INET6) as holder:
        holder.bind(("::1", port))
        holder.listen()
        m = manager(f"""
            manager: {{hosts_management: disabled}}
            services:
              api: {{command: sleep 60, port: {port}}}
        """)
        m.wait_status("api", "failed", "gave_up")
        assert any(f"port {port} is already in use by pid" in line for line in m.lines("api"))


def healthy_api(manager, tmp_path: Path, ready_check: str) -> tuple[Manager, Path]:
    """A manager whose `api` (SERVER on 127.0.0.1) passed `ready_check`; and the file
    where the server logs each request's User-Agent."""
    port = free_port()
    log = tmp_path / "requests.log"
    write_script(tmp_path, "server.py", SERVER)
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          api:
            command: {PY} server.py 127.0.0.1 {port} {log}
            port: {port}
            ready_check: {ready_check}
    """)
    wait_for(lambda: m.status("api")["health"] == "healthy", 30, "api to be healthy")
    return m, log


def test_http_probe_carries_the_promenade_user_agent(manager, tmp_path: Path) -> None:
    """Frameworks can only filter probe lines out of their logs if probes say who they are."""
    _, log = healthy_api(manager, tmp_path, "{type: http, path: /health, interval: 0.1}")
    assert requests_seen(log) and set(requests_seen(log)) == {"promenade-health"}


def test_probes_space_out_once_healthy(manager, tmp_path: Path) -> None:
    """A healthy service was probed every `interval` for ever, and Flask, Django or
    http.server logged each probe: after 30 min idle the log buffer held only probes.
    Once healthy, probes must come far less often than every `interval`."""
    interval, window = 0.2, 4.0
    m, log = healthy_api(manager, tmp_path, f"{{type: http, path: /, interval: {interval}}}")
    before = len(requests_seen(log))
    time.sleep(window)  # a measuring window, not a synchronisation
    probes = len(requests_seen(log)) - before
    # At the configured pace this window holds window / interval = 20 probes; backing
    # off from the first healthy probe leaves about 4. A loaded machine only lowers both.
    assert probes <= window / interval / 3, probes
    assert m.status("api")["health"] == "healthy"
