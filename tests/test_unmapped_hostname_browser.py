"""A foreign page in real headless Chromium, served under a configured hostname that
nothing maps, against a real manager (hosts_management: disabled).

The browser is told where the names lead (`--host-resolver-rules`, as DNS would tell
it); the manager sees the machine's /etc/hosts, bind-mounted inside `unshare -m` to a
temp file that maps only `web.myapp.test` to loopback. So `api.myapp.test` is a name
someone else's server answers for, and `web.myapp.test` a name mapped by hand.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import PROMENADE, Manager, free_port, wait_for
from tests.support.web import Dashboard

PY = sys.executable
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                       reason="needs root and unshare for a private /etc/hosts"),
]

sync_api = pytest.importorskip("playwright.sync_api")

HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.0.1 web.myapp.test\n"

#: The hostile page: on load it tries to stop the service named in its #fragment, read
#: the victim's logs, and read through the victim's CORS proxy.
ATTACK = """<!doctype html><meta charset="utf-8"><title>attack</title>
<script>
async function attempt(url, init) {
  try { return (await fetch(url, init)).status; } catch (e) { return "blocked"; }
}
window.result = (async () => ({
  stop: await attempt("http://127.0.0.1:DASH/api/services/" + location.hash.slice(1) + "/stop",
                      {method: "POST"}),
  logs: await attempt("http://127.0.0.1:DASH/api/services/victim/logs"),
  proxy: await attempt("http://127.0.0.1:PROXY/", {credentials: "include"}),
}))();
</script>
"""


class NamespacedManager(Manager):
    """`promenade start` with its own /etc/hosts (a bind mount in a private namespace)."""

    def __init__(self, tmp: Path, config: str, hosts: Path) -> None:
        super().__init__(tmp, config, args=())
        self.hosts = hosts

    def start(self, wait: bool = True) -> Manager:
        script = 'mount --bind "$0" /etc/hosts && exec "$@"'
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                 str(self.hosts), *PROMENADE, "start", "-c", str(self.path)],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        if wait:
            wait_for(self.info, 30, "the manager to answer")
        return self


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Dashboard, int, int]]:
    port, api_port, web_port, proxy_port, evil_port = (free_port() for _ in range(5))
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    site = tmp_path / "evil-site"
    site.mkdir()
    (site / "attack.html").write_text(
        ATTACK.replace("DASH", str(port)).replace("PROXY", str(proxy_port)))
    m = NamespacedManager(tmp_path, f"""
        manager: {{port: {port}, hosts_management: disabled}}
        services:
          victim:
            command: {PY} -m http.server {api_port} --bind 127.0.0.1
            port: {api_port}
            hostname: api.myapp.test
            ready_check: {{type: tcp, interval: 0.1}}
            cors_proxy: true
            cors_proxy_port: {proxy_port}
          spare:
            command: {PY} -c "import time; time.sleep(600)"
            port: {web_port}
            hostname: web.myapp.test
    """, hosts)
    # The attacker's server: in real life another machine answering for api.myapp.test.
    evil = subprocess.Popen([PY, "-m", "http.server", str(evil_port), "--bind", "127.0.0.1",
                             "--directory", str(site)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        m.start()
        dash = Dashboard(m, port, tmp_path)
        wait_for(lambda: dash.get("/api/status", timeout=2).status == 200, 30, "the dashboard")
        wait_for(lambda: dash.service("victim")["health"] == "healthy", 30, "victim healthy")
        # The web process learns which names are mapped from the manager's state events.
        wait_for(lambda: dash.get("/api/status", headers={
            "Origin": "http://web.myapp.test"}).status == 200, 30,
            "the mapped name to count as local")
        yield dash, evil_port, proxy_port
    finally:
        evil.kill()
        evil.wait(5)
        m.cleanup()


def proxy_get(port: int, origin: str) -> int:
    """The CORS proxy's answer to a page of `origin` (403: not a local origin)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Origin": origin})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def test_foreign_page_under_an_unmapped_hostname_cannot_drive_the_dashboard(
        setup: tuple[Dashboard, int, int]) -> None:
    """Regression: configured hostnames counted as local origins even when nothing
    mapped them (`disabled`/`manual` mode, hostsd missing), so a page served under such
    a name by someone else's server stopped services from Chromium. Only a name mapped
    to loopback (here web.myapp.test, by hand) may do that."""
    dash, evil_port, proxy_port = setup
    assert proxy_get(proxy_port, "http://api.myapp.test") == 403
    assert proxy_get(proxy_port, "http://web.myapp.test") == 200
    before = dash.service("victim")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--host-resolver-rules=MAP api.myapp.test 127.0.0.1, MAP web.myapp.test 127.0.0.1"])
        try:
            page = browser.new_page()
            page.goto(f"http://api.myapp.test:{evil_port}/attack.html#victim")
            foreign: dict[str, Any] = page.evaluate("window.result")
            page.goto(f"http://web.myapp.test:{evil_port}/attack.html#spare")
            mapped: dict[str, Any] = page.evaluate("window.result")
        finally:
            browser.close()
    assert foreign["stop"] == 403 and foreign["logs"] == 403, foreign
    assert foreign["proxy"] != 200, foreign
    after = dash.service("victim")
    assert after["status"] == "running" and after["pid"] == before["pid"], \
        "a foreign page stopped the victim"
    assert after["hostname_mapped"] is False
    assert dash.service("spare")["hostname_mapped"] is True
    # The control: the same page under a mapped name is a local page.
    assert mapped == {"stop": 200, "logs": 200, "proxy": 200}, mapped
    assert dash.service("spare")["status"] == "stopped"
