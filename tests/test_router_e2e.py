"""Named HTTPS URLs end to end: two real managers of two projects, the real router,
real services; requests by name over HTTPS, verified against the local CA."""

from __future__ import annotations

import os
import signal
import ssl
import sys
from pathlib import Path

import pytest

from tests.support import Manager, free_port, wait_for
from tests.support.router import RouterEnv

PY = sys.executable
pytestmark = pytest.mark.timeout(90)


def project(tmp_path: Path, name: str, managers: list[Manager]) -> Manager:
    """A manager of project `name` (its domain is `name.localhost`, from its folder)
    with one HTTP service `api`, sharing the test's router."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "index.html").write_text(f"hello from {name}")
    port = free_port()
    m = Manager(folder, f"""
        manager: {{hosts_management: disabled}}
        services:
          api: {{command: "{PY} -m http.server {port} --bind 127.0.0.1", port: {port}}}
    """)
    m.env = {k: v for k, v in os.environ.items() if k != "PROMENADE_ROUTER"}
    m.env["XDG_STATE_HOME"] = str(folder / "state")
    managers.append(m)
    return m.start()


def test_two_projects_by_name_over_https_and_a_killed_one_loses_its_routes(
        tmp_path: Path, router_env: RouterEnv) -> None:
    managers: list[Manager] = []
    try:
        shop, blog = project(tmp_path, "shop", managers), project(tmp_path, "blog", managers)
        for m, name in ((shop, "shop"), (blog, "blog")):
            wanted = f"https://api.{name}.localhost:{router_env.https_port}"
            wait_for(lambda m=m, w=wanted: m.status("api")["url"] == w, 30,
                     f"the routed URL {wanted}")
        router_env.ensure()
        for name in ("shop", "blog"):
            # `running` comes before http.server listens: the router answers 502 (a
            # page that reloads itself) until it does
            answer = wait_for(lambda n=name: (r := router_env.get(f"api.{n}.localhost",
                                                           "/index.html"))[0] == 200 and r,
                              30, f"api.{name}.localhost to answer")
            assert answer[2] == f"hello from {name}".encode()
        shop.signal(signal.SIGKILL)
        shop.wait_exit()

        def shop_gone() -> bool:
            try:
                return router_env.get("api.shop.localhost")[0] == 404
            except (ssl.SSLError, OSError):
                return True   # an unregistered name fails the handshake

        wait_for(shop_gone, 5, "the killed project's route to go")
        assert router_env.get("api.blog.localhost", "/index.html")[0] == 200
    finally:
        for m in managers:
            m.cleanup()
