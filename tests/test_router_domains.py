"""A project domain outside `.localhost` (`myapp.test`), end to end: a real manager,
the real router, hostsd on a temp hosts file. The routed names get hosts entries while
they are served and lose them after; a request by name (SNI, connected to 127.0.0.1 as
curl's `--resolve` does) is served over HTTPS by a CA made with `--name test`; a CA made
without it gets a warning that says exactly what to run."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from promenade_core.tls.ca import ensure_ca
from tests.support import Manager, free_port, wait_for
from tests.support.hostsd import ORIGINAL, Hostsd, our_lines
from tests.support.router import RouterEnv

PY = sys.executable
pytestmark = pytest.mark.timeout(90)


def project(folder: Path, manager: str, ui: bool = False) -> Manager:
    """A manager of domain `myapp.test` with one HTTP service `api`, on the test's router
    (the router itself gets no hostsd: RouterEnv points it at a socket that is not there,
    so it listens on its fallback ports)."""
    folder.mkdir()
    (folder / "index.html").write_text("hello from myapp.test")
    port = free_port()
    m = Manager(folder, f"""
        manager: {{domain: myapp.test, port: {free_port()}, {manager}}}
        services:
          api: {{command: "{PY} -m http.server {port} --bind 127.0.0.1", port: {port}}}
    """, args=() if ui else ("--no-ui",))
    m.env = {k: v for k, v in os.environ.items() if k != "PROMENADE_ROUTER"}
    m.env["XDG_STATE_HOME"] = str(folder / "state")
    return m


def entries(hostsd: Hostsd) -> list[tuple[str, str]]:
    """(address, name) of each line hostsd wrote."""
    return sorted((line.split()[0], line.split()[1]) for line in our_lines(hostsd.read()))


def test_routed_test_names_are_mapped_while_served_and_answer_over_https(
        tmp_path: Path, router_env: RouterEnv) -> None:
    ensure_ca(["test"])   # what `promenade trust --name test` makes (without installing)
    hosts = tmp_path / "hosts"
    hosts.write_bytes(ORIGINAL)
    hostsd = Hostsd(tmp_path, hosts, tmp_path / "hd.sock", tmp_path / "hd-state", [])
    hostsd.start()
    m = project(tmp_path / "myapp", f"hosts_management: auto, hostsd_socket: {hostsd.socket}",
                ui=True)
    try:
        m.start()
        wanted = [("127.0.0.1", "api.myapp.test"), ("127.0.0.1", "myapp.test")]
        wait_for(lambda: entries(hostsd) == wanted, 30,
                 f"hosts entries {wanted} (have {entries(hostsd)})")
        url = f"https://api.myapp.test:{router_env.https_port}"
        wait_for(lambda: m.status("api")["url"] == url, 30, f"the routed URL {url}")
        router_env.ensure()
        # routed from the start of the service (503), its server answers a moment later
        got = wait_for(lambda: (r := router_env.get("api.myapp.test", "/index.html"))[0] == 200
                       and r, 15, "the service to answer through the router")
        assert (got[0], got[2]) == (200, b"hello from myapp.test")
        # the dashboard at the bare domain: its Host guard takes the routed names as local
        wait_for(lambda: router_env.get("myapp.test", "/api/status")[0] == 200, 20,
                 "the dashboard to answer at https://myapp.test")

        m.request("stop", service="api")
        wait_for(lambda: entries(hostsd) == [("127.0.0.1", "myapp.test")], 10,
                 "the stopped service's entry to go")
        m.signal(signal.SIGTERM)
        assert m.wait_exit() == 0
        assert hostsd.read() == ORIGINAL   # the dashboard's entry went with the manager
    finally:
        m.cleanup()
        hostsd.kill()


def test_a_ca_made_without_the_domain_says_what_to_run(tmp_path: Path,
                                                       router_env: RouterEnv) -> None:
    """The CA exists for `localhost` only: it is not replaced behind the user's back;
    the manager says the two commands to run, and the URL keeps its port (hosts are
    disabled, so the name would not lead here anyway)."""
    ensure_ca()
    m = project(tmp_path / "myapp", "hosts_management: disabled")
    try:
        m.start()
        m.wait_output("run `promenade trust --uninstall`, then `promenade trust --name test`")
        assert "https://*.myapp.test cannot be served" in m.output()
        status = m.wait_status("api", "running")
        assert status["url"] == f"http://localhost:{status['port']}"
    finally:
        m.cleanup()
