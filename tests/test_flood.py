"""Another local user flooding the manager's listeners with connections (issue 10, 3).

The attacker runs as `nobody` (setpriv) with the system Python and the standard
library only: the test venv may sit in a folder `nobody` cannot read. The manager runs
under a soft and hard open-files limit of 1,024 (a common default), which ~1,100 idle
connections used to exhaust until libzmq aborted the whole manager.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from promenade_core.bus.client import ControlClient, await_subscription, open_events
from tests.support import PROMENADE, Manager, free_port, wait_for, write_script

PY = sys.executable
SYSTEM_PY = "/usr/bin/python3"
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv")
                       or not shutil.which("prlimit") or not Path(SYSTEM_PY).exists(),
                       reason="needs root, setpriv, prlimit and /usr/bin/python3"),
]

#: Opens COUNT connections to each port and holds them until its stdin closes.
ATTACKER = r"""
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ports, count = [int(p) for p in sys.argv[1].split(",")], int(sys.argv[2])
held, failed = [], 0
for port in ports:
    for _ in range(count):
        s = socket.socket()
        s.settimeout(3)
        try:
            s.connect(("127.0.0.1", port))
            held.append(s)
        except OSError:
            failed += 1
            s.close()
print(f"holding {len(held)} failed {failed}", flush=True)
sys.stdin.read()
"""

SITE = """
from http.server import BaseHTTPRequestHandler, HTTPServer
import sys

class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Hello).serve_forever()
"""


def start_limited(m: Manager, nofile: str) -> Manager:
    """`promenade start` under `prlimit --nofile=SOFT:HARD` (prlimit execs it: same pid)."""
    with open(m.log, "wb") as out:
        m.proc = subprocess.Popen(
            ["prlimit", f"--nofile={nofile}", "--", *PROMENADE, "start", "-c", str(m.path),
             "--no-ui"], stdout=out, stderr=subprocess.STDOUT, env=m.env,
            start_new_session=True)
    wait_for(m.info, 30, "the manager to answer")
    return m


def soft_nofile(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files limit in /proc")


def through_proxy(port: int) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_2000_connections_from_another_user_do_not_kill_the_manager(
        manager, tmp_path: Path) -> None:
    """~1,100 idle connections from another user to a CORS-proxy port or the bus_tcp
    port exhausted the manager's descriptors: libzmq aborted (`Too many open files`)
    and every service went down with it. Now each listener refuses beyond its cap and
    the manager, its control socket and its services carry on."""
    site, proxy, bus = free_port(), free_port(), free_port()
    write_script(tmp_path, "site.py", SITE)
    m = manager(f"""
        manager: {{hosts_management: disabled, bus_tcp: "127.0.0.1:{bus}"}}
        services:
          site:
            command: {PY} site.py {site}
            port: {site}
            cors_proxy: true
            cors_proxy_port: {proxy}
          idle: {{command: "sleep 600"}}
    """, start=False)
    start_limited(m, "1024:1024")
    m.wait_status("site", "running")
    m.wait_status("idle", "running")
    wait_for(lambda: through_proxy(proxy) == (200, b"hello"), 15, "the proxy to relay")
    pids = {name: m.status(name)["pid"] for name in ("site", "idle")}

    attacker = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         SYSTEM_PY, "-c", ATTACKER, f"{proxy},{bus}", "2000"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
        start_new_session=True)
    try:
        assert attacker.stdout is not None
        report = attacker.stdout.readline()
        assert report.startswith("holding"), report
        # While every connection is held: the manager answers and nothing restarted.
        status = m.cli("status", timeout=30)
        assert status.returncode == 0, status.stderr
        assert m.proc is not None and m.proc.poll() is None, m.output()
        for name, pid in pids.items():
            now = m.status(name)
            assert (now["status"], now["pid"]) == ("running", pid), now
        m.wait_output("refused")
    finally:
        with contextlib.suppress(OSError):
            os.killpg(attacker.pid, 9)
        attacker.wait(10)
        if attacker.stdout is not None:
            attacker.stdout.close()
        if attacker.stdin is not None:
            with contextlib.suppress(OSError):
                attacker.stdin.close()

    # Afterwards: alive, and both listeners serve their own user again.
    assert m.proc.poll() is None, m.output()
    wait_for(lambda: through_proxy(proxy) == (200, b"hello"), 15, "the proxy to relay again")
    info = m.info()
    assert info is not None
    with open_events(info, ("state/",), tcp=True) as sub, ControlClient(info.control) as c:
        await_subscription(sub, c, timeout=10)
    assert "Too many open files" not in m.output()


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(manager) -> None:
    """With a soft limit of 1,024 and a higher hard one, the manager kept 1,024."""
    m = manager("""
        manager: {hosts_management: disabled}
        services:
          idle: {command: "sleep 600"}
    """, start=False)
    start_limited(m, "1024:4096")
    assert m.proc is not None
    assert soft_nofile(m.proc.pid) == 4096


#: A CappedServer in a process whose descriptors something else has used up.
STARVED = r"""
import os, resource, sys
import gevent
from gevent import socket
from promenade_core.listener import CappedServer

resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(128)

def handle(sock, address):
    sock.sendall(b"served\n")

server = CappedServer(listener, handle, "starved listener", 100,
                      warn=lambda message: print("WARN", message, flush=True))
server.start()
gevent.sleep(0.1)  # the hub is up and running, as in a manager, before the descriptors go
hogs = []
while True:
    try:
        hogs.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        break
print("port", listener.getsockname()[1], flush=True)
while not os.path.exists(sys.argv[1]):
    gevent.sleep(0.02)
for fd in hogs:
    os.close(fd)
print("released", flush=True)
gevent.sleep(600)
"""


def answer(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        data = b""
        while piece := sock.recv(100):
            data += piece
            if data.endswith(b"\n"):
                break
        return data


def test_out_of_descriptors_refuses_connections_and_keeps_listening(tmp_path: Path) -> None:
    """At the open-files limit, accept failed with EMFILE: gevent's server printed a
    traceback and libzmq's listener spun a core on the still-readable socket (libzmq's
    ipc listener aborted outright). A connection that finds no descriptor is now closed
    (the client sees EOF), a warning says why, and the listener serves again later."""
    release = tmp_path / "release"
    proc = subprocess.Popen([PY, "-c", STARVED, str(release)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("port "), first + proc.stdout.read()
        port = int(first.split()[1])
        for _ in range(20):
            assert answer(port) == b"", "served without a descriptor to spare?"
        release.touch()
        lines = [proc.stdout.readline() for _ in range(2)]
        assert any(line.startswith("WARN starved listener: refused") and
                   "out of file descriptors" in line for line in lines), lines
        assert "released\n" in lines, lines
        assert answer(port) == b"served\n"
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def dashboard_status(url: str) -> int:
    conn = http.client.HTTPConnection(url.split("//", 1)[1].rstrip("/"), timeout=10)
    try:
        conn.request("GET", "/api/status")
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_connection_flood_on_the_dashboard_costs_it_no_descriptors(manager) -> None:
    """The dashboard's port took every connection another user opened: 1,200 of them under a 1,024
    open-files limit the web process ran out of descriptors. Its pool now holds at
    most MAX_CONNECTIONS; the rest wait in the kernel's backlog, and the dashboard is
    the same process, answering, once they are gone."""
    port = free_port()
    m = manager("""
        manager: {hosts_management: disabled}
        services:
          idle: {command: "sleep 600"}
    """, start=False)
    with open(m.log, "wb") as out:
        m.proc = subprocess.Popen(
            ["prlimit", "--nofile=1024:1024", "--", *PROMENADE, "start", "-c", str(m.path),
             "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=m.env,
            start_new_session=True)
    info = wait_for(lambda: (i := m.info()) and i.dashboard_url and i, 30, "the dashboard")
    wait_for(lambda: dashboard_status(info.dashboard_url) == 200, 30, "the dashboard to answer")
    web = wait_for(lambda: [p for p in children_of(m.proc.pid) if b"promenade_web" in
                            Path(f"/proc/{p}/cmdline").read_bytes()], 10, "the web process")
    attacker = subprocess.Popen(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         SYSTEM_PY, "-c", ATTACKER, str(port), "1200"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/",
        start_new_session=True)
    try:
        assert attacker.stdout is not None
        assert attacker.stdout.readline().startswith("holding")
        assert len(os.listdir(f"/proc/{web[0]}/fd")) < 900
        assert m.cli("status", timeout=30).returncode == 0
    finally:
        with contextlib.suppress(OSError):
            os.killpg(attacker.pid, 9)
        attacker.wait(10)
        for stream in (attacker.stdout, attacker.stdin):
            with contextlib.suppress(OSError):
                stream and stream.close()
    wait_for(lambda: dashboard_status(info.dashboard_url) == 200, 30, "the dashboard again")
    assert Path(f"/proc/{web[0]}").exists(), m.output()
    assert "dashboard process exited" not in m.output()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry))
    return found
