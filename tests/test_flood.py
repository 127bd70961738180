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
import subprocess
import sys
from pathlib import Path

import pytest

from promenade_core.client import ControlClient, await_subscription, open_events
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
