"""Named URLs on the manager's side, as pure decisions (router/names.py): the default
domain, each service's name, the route set, the URL; and what follows them: the status
url (HostnamePolicy), local origins, and the Vite variable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from promenade_core.config.choices import RestartPolicy
from promenade_core.config.environment import service_environment
from promenade_core.config.model import FrozenMap, ManagerConfig, ServiceConfig
from promenade_core.origins import is_local_host_header, is_local_origin
from promenade_core.router import names
from promenade_core.supervise.supervisor import HostnamePolicy

MANAGER = ManagerConfig(domain="myapp.localhost")


def svc(name: str, port: int | None = 5001, hostname: str | None = None,
        auto: bool = False, own_env: dict[str, str] | None = None) -> ServiceConfig:
    return ServiceConfig(name=name, command="run", directory=Path("/p"), port=port,
                         hostname=hostname, env=FrozenMap(own_env or {}),
                         own_env=FrozenMap(own_env or {}), env_file=None, depends_on=(),
                         restart_policy=RestartPolicy.ONCE, ready_check=None,
                         port_auto=auto)


@pytest.mark.parametrize(("folder", "domain"), [
    ("myapp", "myapp.localhost"),
    ("My_App", "my-app.localhost"),
    ("shop.v2", "shop-v2.localhost"),          # one label: dots would make subdomains
    ("--café  bar--", "caf-bar.localhost"),
    ("___", "promenade.localhost"),            # nothing usable left
    ("x" * 80, "x" * 63 + ".localhost"),
    ("a" * 62 + "_b", "a" * 62 + ".localhost"),  # cut at 63, no hyphen left at the end
])
def test_default_domain_is_the_folder_name_sanitised(folder: str, domain: str) -> None:
    got = names.default_domain(Path("/home/u") / folder)
    assert got == domain
    assert names.domain_problem(got) is None


@pytest.mark.parametrize(("value", "word"), [
    ("myapp.localhost", None), ("A.b.LOCALHOST", None),
    ("localhost", "reserved"), ("myapp.test", None),
    ("my_app.localhost", "label"), ("myapp.localhost.", "empty label"),
])
def test_domain_problem(value: str, word: str | None) -> None:
    problem = names.domain_problem(value)
    assert (problem is None) if word is None else (problem is not None and word in problem)


def test_routed_name_for_services_with_a_port_and_no_hostname() -> None:
    assert names.routed_name(MANAGER, svc("api")) == "api.myapp.localhost"
    assert names.routed_name(MANAGER, svc("Web_UI", None, auto=True)) == "web-ui.myapp.localhost"
    assert names.routed_name(MANAGER, svc("worker", None)) is None
    assert names.routed_name(MANAGER, svc("api", hostname="api.test")) is None
    assert names.routed_name(replace(MANAGER, router=False), svc("api")) is None
    assert names.routed_name(replace(MANAGER, domain="Shop.LocalHost"), svc("api")) == \
        "api.shop.localhost"


def view(config: ServiceConfig, port: int | None, status: str = "running",
         reason: str | None = None) -> names.ServiceView:
    return names.ServiceView(config, port, status, reason)


def test_route_set_holds_services_and_the_dashboard() -> None:
    routes = names.route_set(MANAGER, [
        view(svc("api"), 5001),
        view(svc("web", None, auto=True), None, "stopped", "stopped on request"),
        view(svc("worker", None), None),
        view(svc("a-b"), 5003), view(svc("a_b"), 5004),   # one label: the first keeps it
    ], dashboard_port=9000)
    assert routes == [
        {"name": "myapp.localhost", "port": 9000, "service": "promenade",
         "status": "running", "status_reason": None, "tls": True},
        {"name": "api.myapp.localhost", "port": 5001, "service": "api",
         "status": "running", "status_reason": None, "tls": True},
        {"name": "web.myapp.localhost", "port": None, "service": "web",
         "status": "stopped", "status_reason": "stopped on request", "tls": True},
        {"name": "a-b.myapp.localhost", "port": 5003, "service": "a-b",
         "status": "running", "status_reason": None, "tls": True},
    ]


def test_a_cors_proxy_service_takes_its_policy_to_its_routed_name() -> None:
    api = replace(svc("api"), cors_proxy=True, cors_proxy_port=5101,
                  cors_allow_origins=("https://app.example",))
    (route,) = names.route_set(MANAGER, [view(api, 5001), view(svc("web"), 5002)], None)[:1]
    assert route["cors_allow_origins"] == ["https://app.example"]
    plain = names.route_set(MANAGER, [view(svc("web"), 5002)], None)[0]
    assert "cors_allow_origins" not in plain   # the router stays transparent


def test_route_set_without_dashboard_or_router() -> None:
    services = [view(svc("api"), 5001)]
    assert [r["name"] for r in names.route_set(MANAGER, services, None)] == \
        ["api.myapp.localhost"]
    assert names.route_set(replace(MANAGER, router=False), services, 9000) == []


def test_url_names_the_port_only_when_it_is_not_443() -> None:
    assert names.url("api.myapp.localhost", 443) == "https://api.myapp.localhost"
    assert names.url("api.myapp.localhost", 8443) == "https://api.myapp.localhost:8443"


def test_status_url_is_the_routed_one_while_the_router_holds_it() -> None:
    routed = {"api": "https://api.myapp.localhost"}
    policy = HostnamePolicy(routed=routed.get)
    assert policy.url(svc("api"), 5001, "auto") == "https://api.myapp.localhost"
    assert policy.url(svc("web"), 5002, "auto") == "http://localhost:5002"
    assert policy.url(svc("api", None), None, "auto") is None   # never started: no port
    assert HostnamePolicy().url(svc("api"), 5001, "auto") == "http://localhost:5001"


@pytest.mark.parametrize("origin", [
    "https://web.myapp.localhost", "https://web.myapp.localhost:8443",
    "https://myapp.localhost"])
def test_routed_pages_are_local_origins(origin: str) -> None:
    """A page at https://web.myapp.localhost may call the dashboard and a cors_proxy."""
    assert is_local_origin(origin)


def test_routed_hosts_pass_the_dashboards_host_guard() -> None:
    assert is_local_host_header("myapp.localhost")
    assert is_local_host_header("myapp.localhost:8443")
    assert not is_local_host_header("myapp.example")


def test_vite_is_told_the_routed_name_unless_the_service_says() -> None:
    env = service_environment(svc("web"), {}, 5002, MANAGER)
    assert env[names.VITE_ALLOWED_HOSTS] == "web.myapp.localhost"
    own = svc("web", own_env={names.VITE_ALLOWED_HOSTS: "x.test"})
    assert service_environment(own, {}, 5002, MANAGER)[names.VITE_ALLOWED_HOSTS] == "x.test"
    assert names.VITE_ALLOWED_HOSTS not in service_environment(svc("web"), {}, 5002)
    off = replace(MANAGER, router=False)
    assert names.VITE_ALLOWED_HOSTS not in service_environment(svc("web"), {}, 5002, off)
