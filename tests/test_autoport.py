"""`port: auto` with real processes: each start picks a free loopback port, the service
gets it as PORT, and its ready_check, CORS proxy, URL and status follow it."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import PROMENADE, Manager, free_port, isolated_env, wait_for, write_script

pytestmark = pytest.mark.timeout(90)

#: Answers every GET with `NAME port=PORT`, on the PORT it was given, and says so.
ECHO_PORT = """
    import http.server, os, sys
    port = int(os.environ["PORT"])
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"{sys.argv[1]} port={port}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a): pass
    print(f"listening on {port}", flush=True)
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def echo_command(tmp_path: Path, name: str) -> str:
    script = write_script(tmp_path, "echo_port.py", ECHO_PORT)
    return f"{sys.executable} {script} {name}"


def get(port: int, origin: str | None = None) -> tuple[int, str, str | None]:
    """(status, body, Access-Control-Allow-Origin) of GET / on 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Origin": origin} if origin else {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), resp.getheader("Access-Control-Allow-Origin")
    finally:
        conn.close()


def healthy(m: Manager, name: str) -> dict[str, Any]:
    return wait_for(lambda: (s := m.status(name))["health"] == "healthy" and s, 20,
                    f"{name} healthy")


def test_two_auto_services_get_distinct_ports_as_their_PORT(manager, tmp_path: Path) -> None:
    """An http and a tcp ready_check on auto ports turn healthy; PORT is the status port."""
    command = echo_command(tmp_path, "")
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          web:
            command: {command} web
            port: auto
            ready_check: {{type: http, interval: 0.1}}
          api:
            command: {command} api
            port: auto
            ready_check: {{type: tcp, interval: 0.1}}
    """)
    web, api = healthy(m, "web"), healthy(m, "api")
    assert web["port_auto"] and api["port_auto"]
    assert web["port"] != api["port"] and None not in (web["port"], api["port"])
    for name, status in (("web", web), ("api", api)):
        assert get(status["port"])[:2] == (200, f"{name} port={status['port']}")
        assert status["url"] == f"http://localhost:{status['port']}"
    table = m.cli("status").stdout
    assert f"{web['port']} (auto)" in table and f"{api['port']} (auto)" in table
    m.wait_output(f"web started (pid {web['pid']}, port {web['port']} (auto))")


def test_a_restart_keeps_the_port_while_it_is_free(manager, tmp_path: Path) -> None:
    """The stability decision: a restarted service gets its last port back (probes of
    the last run left TIME_WAIT connections on it), a new pid, the same PORT."""
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          web:
            command: {echo_command(tmp_path, "web")}
            port: auto
            ready_check: {{type: http, interval: 0.1}}
    """)
    first = healthy(m, "web")
    get(first["port"])
    m.request("restart", service="web")
    again = wait_for(lambda: (s := m.status("web"))["pid"] not in (None, first["pid"])
                     and s["health"] == "healthy" and s, 20, "web restarted and healthy")
    assert again["port"] == first["port"]
    assert get(again["port"])[:2] == (200, f"web port={first['port']}")


def test_a_cors_proxy_follows_the_auto_port_when_it_moves(manager, tmp_path: Path) -> None:
    """The proxy forwards to the run's port; when another program took the last one
    meanwhile, the next start picks another and the proxy forwards there."""
    proxy = free_port()
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          api:
            command: {echo_command(tmp_path, "api")}
            port: auto
            ready_check: {{type: tcp, interval: 0.1}}
            cors_proxy: true
            cors_proxy_port: {proxy}
    """)
    first = healthy(m, "api")
    assert get(proxy, "http://localhost:3000") == (
        200, f"api port={first['port']}", "http://localhost:3000")
    m.request("stop", service="api")
    m.wait_status("api", "stopped")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAITs
        squatter.bind(("127.0.0.1", first["port"]))
        squatter.listen()
        m.request("start", service="api")
        moved = healthy(m, "api")
        assert moved["port"] != first["port"]
        assert get(proxy, "http://localhost:3000")[:2] == (200, f"api port={moved['port']}")


def test_reload_keeps_an_auto_port_and_restarts_a_move_to_a_fixed_one(
        manager, tmp_path: Path) -> None:
    fixed = free_port()
    m = manager(f"""
        manager: {{hosts_management: disabled, config_poll_interval: 0.2}}
        services:
          web:
            command: {echo_command(tmp_path, "web")}
            port: auto
            ready_check: {{type: tcp, interval: 0.1}}
    """)
    first = healthy(m, "web")
    m.path.write_text(m.path.read_text().replace("port: auto", "port: auto\n    "
                                                 "restart_policy: always"))
    m.wait_output("reload: restart_policy of web updated")
    assert (m.status("web")["pid"], m.status("web")["port"]) == (first["pid"], first["port"])
    m.path.write_text(m.path.read_text().replace("port: auto", f"port: {fixed}"))
    m.wait_output(f"port changed (auto -> {fixed})")
    moved = wait_for(lambda: (s := m.status("web"))["port"] == fixed and
                     s["health"] == "healthy" and s, 20, "web healthy on its fixed port")
    assert not moved["port_auto"] and moved["pid"] != first["pid"]
    assert get(fixed)[:2] == (200, f"web port={fixed}")


def test_promenade_run_gives_an_auto_service_a_free_port(tmp_path: Path) -> None:
    """No manager is asked: the one-off command gets a free port as PORT, over a PORT
    the shell has."""
    (tmp_path / "promenade.yaml").write_text("services:\n  web: {command: serve, port: auto}\n")
    env = {**isolated_env(tmp_path), "PORT": "1"}
    done = subprocess.run([*PROMENADE, "run", "-c", str(tmp_path / "promenade.yaml"), "web",
                           "--", "sh", "-c", "echo $PORT"], capture_output=True, text=True,
                          env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    port = int(done.stdout)
    assert 1024 < port <= 65535
    with socket.socket() as probe:    # it was free when picked, and nothing took it since
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
