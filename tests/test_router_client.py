"""The manager's side of the router, with real managers and a fake router (a real Unix
socket speaking the protocol, tests/support/fakerouter.py): routes registered on start,
following ports and states, gone with the manager's connection; the status `url`; the
dashboard's route; the Vite variable; `manager.router: false`; no router at all."""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Manager, free_port, wait_for, write_script
from tests.support.fakerouter import FakeRouter, router_socket_in

pytestmark = pytest.mark.timeout(90)

#: Says which host Vite would be told to allow, then waits.
SHOW_VITE = """
    import os, time
    print("vite:", os.environ.get("__VITE_ADDITIONAL_SERVER_ALLOWED_HOSTS"), flush=True)
    time.sleep(600)
"""
Start = Callable[..., tuple[Manager, FakeRouter | None]]


@pytest.fixture
def routed(manager: Callable[..., Manager], tmp_path: Path) -> Iterator[Start]:
    """Factory: a manager (router enabled) and, unless `router=False`, a fake router
    where that manager looks for one."""
    routers: list[FakeRouter] = []

    def start(config: str, router: bool = True, args: tuple[str, ...] = ("--no-ui",),
              **options: Any) -> tuple[Manager, FakeRouter | None]:
        write_script(tmp_path, "show_vite.py", SHOW_VITE)
        m = manager(config, args=args, start=False)
        m.env.pop("PROMENADE_ROUTER")
        path = router_socket_in(m.env)
        fake = None
        if router:
            fake = FakeRouter(path, **options)
            routers.append(fake)
        else:
            # a file where the router's folder belongs: no router can be reached or
            # started there (runtime.py refuses it), the way a broken setup would
            path.parent.rmdir()
            path.parent.write_text("not a folder\n")
        return m.start(), fake

    yield start
    for fake in routers:
        fake.close()


def domain(tmp_path: Path) -> str:
    """The default domain: pytest's folder name, sanitised (`test_x0` -> `test-x0`)."""
    return tmp_path.name.lower().replace("_", "-") + ".localhost"


def service(name: str, port: str) -> str:
    return f"  {name}: {{command: {sys.executable} show_vite.py, port: {port}}}\n"


def wait_route(fake: FakeRouter, name: str, **wanted: Any) -> dict[str, Any]:
    """The route `name` once it has the `wanted` values (the failure shows every route)."""
    def check() -> Any:
        routes = fake.routes()
        route = routes.get(name)
        if route is not None and all(route[k] == v for k, v in wanted.items()):
            return route
        raise AssertionError(f"routes {routes}")

    return dict(wait_for(check, 15, f"route {name} with {wanted}"))


def test_routes_follow_the_services_and_go_with_the_manager(routed: Start,
                                                             tmp_path: Path) -> None:
    """Each service with a port is SERVICE.DOMAIN at its current port; its status url
    is https://SERVICE.DOMAIN; a stop and a moved port reach the router; a clean stop
    of the manager closes the lease."""
    port = free_port()
    m, fake = routed("services:\n" + service("api", str(port)) + service("web", "auto")
                     + f"  worker: {{command: {sys.executable} show_vite.py}}\n")
    assert fake is not None
    d = domain(tmp_path)
    wait_route(fake, f"api.{d}", port=port, status="running", service="api", tls=True)
    web = wait_route(fake, f"web.{d}", status="running")
    assert sorted(fake.routes()) == [f"api.{d}", f"web.{d}"]   # no port, no route
    hello = fake.open_connections()[0].hello
    assert hello is not None and hello["project"] == str(m.path) and hello["version"] == 1
    wait_for(lambda: m.status("api")["url"] == f"https://api.{d}", 10, "api's routed url")
    assert m.status("web")["url"] == f"https://web.{d}"
    assert m.status("worker")["url"] is None
    m.wait_lines("api", [f"vite: api.{d}"])
    m.wait_lines("worker", ["vite: None"])

    m.request("stop", service="web")
    wait_route(fake, f"web.{d}", status="stopped", port=web["port"])
    with socket.socket() as holder:   # the auto port's last value is taken: it moves
        holder.bind(("127.0.0.1", web["port"]))
        m.request("start", service="web")
        moved = wait_route(fake, f"web.{d}", status="running")
    assert moved["port"] not in (None, web["port"])
    assert m.status("web")["port"] == moved["port"]

    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    wait_for(lambda: fake.routes() == {} and not fake.open_connections(), 10,
             "the manager's routes gone")


def test_sigkill_of_the_manager_drops_its_routes(routed: Start, tmp_path: Path) -> None:
    m, fake = routed("services:\n" + service("api", "auto"))
    assert fake is not None
    wait_route(fake, f"api.{domain(tmp_path)}", status="running")
    m.signal(signal.SIGKILL)
    wait_for(lambda: fake.routes() == {}, 5, "the lease dropped with the connection")


def test_the_dashboard_is_routed_at_the_bare_domain(routed: Start, tmp_path: Path) -> None:
    port = free_port()
    m, fake = routed("services:\n" + service("api", "auto"), args=("-p", str(port)),
                     https_port=8443, ca_trusted=False)
    assert fake is not None
    d = domain(tmp_path)
    route = wait_route(fake, d, port=port, service="promenade", status="running")
    assert route["tls"] is True
    m.wait_output(f"dashboard https://{d}:8443")
    wait_for(lambda: m.status("api")["url"] == f"https://api.{d}:8443", 10, "url with port")
    out = m.wait_output("promenade trust")
    assert out.count("promenade trust") == 1, out   # said once, not at every keepalive


def test_router_false_registers_nothing(routed: Start, tmp_path: Path) -> None:
    """`manager.router: false`: no connection, today's URL, no Vite variable."""
    port = free_port()
    m, fake = routed("manager: {router: false}\nservices:\n" + service("api", str(port)))
    assert fake is not None
    m.wait_lines("api", ["vite: None"])
    assert m.status("api")["url"] == f"http://localhost:{port}"
    assert fake.connections == []


def test_a_taken_name_is_a_warning_and_the_urls_stay(routed: Start, tmp_path: Path) -> None:
    port = free_port()
    d = domain(tmp_path)
    m, fake = routed("services:\n" + service("api", str(port)), taken=(f"api.{d}",))
    out = m.wait_output("name_taken")
    assert f"'api.{d}' is already served for /other/promenade.yaml" in out
    m.wait_status("api", "running")
    assert m.status("api")["url"] == f"http://localhost:{port}"
    assert fake is not None and fake.routes() == {}   # refused whole


def test_without_a_router_one_warning_and_urls_as_before(routed: Start,
                                                         tmp_path: Path) -> None:
    """The router's folder cannot be used (a file stands where it should be), so no
    router can be reached or started: the manager says so once and carries on."""
    port = free_port()
    m, _ = routed("services:\n" + service("api", str(port)) + service("web", "auto"),
                  router=False)
    out = m.wait_output("service URLs keep their ports")
    m.wait_status("api", "running")
    m.wait_status("web", "running")
    assert m.status("api")["url"] == f"http://localhost:{port}"
    assert out.count("keep their ports") == 1, out


def test_a_router_that_goes_away_is_replaced_and_given_the_routes_again(
        routed: Start, tmp_path: Path) -> None:
    """The router restarts (here: a new fake takes over the socket's path, then the old
    one drops its connections): the manager connects again and sends its routes."""
    m, old = routed("services:\n" + service("api", "auto"))
    assert old is not None
    name = f"api.{domain(tmp_path)}"
    wait_route(old, name, status="running")
    path = old.path
    old.path = path.rename(tmp_path / "old-router.sock")
    new = FakeRouter(path)
    try:
        old.close()
        route = wait_route(new, name, status="running")
        assert route["port"] == m.status("api")["port"]
        assert m.wait_output("connected to the router").count("lost the router") == 1
        wait_for(lambda: m.status("api")["url"] == f"https://{name}", 10, "the routed url")
    finally:
        new.close()


def test_a_cors_proxy_service_sends_its_policy_with_its_route(routed: Start,
                                                              tmp_path: Path) -> None:
    port, proxy = free_port(), free_port()
    _m, fake = routed(f"""services:
  api:
    command: {sys.executable} show_vite.py
    port: {port}
    cors_proxy: true
    cors_proxy_port: {proxy}
    cors_allow_origins: [https://app.example]
""" + service("web", "auto"))
    assert fake is not None
    d = domain(tmp_path)
    api = wait_route(fake, f"api.{d}", status="running")
    assert api["cors_allow_origins"] == ["https://app.example"]
    assert "cors_allow_origins" not in wait_route(fake, f"web.{d}", status="running")


def test_verbose_shows_what_is_sent_to_the_router(routed: Start, tmp_path: Path) -> None:
    m, fake = routed("services:\n" + service("api", "auto"), args=("--no-ui", "-v"))
    assert fake is not None
    wait_route(fake, f"api.{domain(tmp_path)}", status="running")
    out = m.wait_output(f'"name":"api.{domain(tmp_path)}"')
    assert 'router <- {"op":"hello"' in out and 'router <- {"op":"routes"' in out
