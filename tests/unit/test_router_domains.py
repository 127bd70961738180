"""Project domains outside `.localhost` (router/names.py): which domains are accepted,
which names need a hosts entry, which name hostsd maps for a service, and which subtree
the local CA must permit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from promenade_core.config.choices import RestartPolicy
from promenade_core.config.model import FrozenMap, ManagerConfig, ServiceConfig
from promenade_core.origins import routed_names
from promenade_core.router import names

TEST = ManagerConfig(domain="myapp.test")
LOCAL = ManagerConfig(domain="myapp.localhost")


def svc(name: str, port: int | None = 5001, hostname: str | None = None) -> ServiceConfig:
    return ServiceConfig(name=name, command="run", directory=Path("/p"), port=port,
                         hostname=hostname, env=FrozenMap({}), own_env=FrozenMap({}),
                         env_file=None, depends_on=(), restart_policy=RestartPolicy.ONCE,
                         ready_check=None)


@pytest.mark.parametrize("value", ["myapp.test", "shop.internal", "a.b.example",
                                   "MyApp.Test", "myapp.localhost", "x.home.arpa"])
def test_domains_outside_localhost_are_accepted(value: str) -> None:
    assert names.domain_problem(value) is None


@pytest.mark.parametrize(("value", "word"), [
    ("test", "label of its own"),        # a suffix alone would claim every .test name
    ("com", "label of its own"),
    ("localhost", "reserved"),
    ("myapp.test.", "empty label"),
    ("my_app.test", "label"),
    ("myapp.123", "IP address"),
    ("myapp..test", "empty label"),
    ("myapp.t\u00e9st", "non-ASCII"),
    ("", "empty"),
])
def test_obviously_wrong_domains_are_refused(value: str, word: str) -> None:
    problem = names.domain_problem(value)
    assert problem is not None and word in problem, problem


@pytest.mark.parametrize(("name", "needs"), [
    ("api.myapp.test", True), ("myapp.test", True), ("api.example.com", True),
    ("api.myapp.localhost", False), ("API.MyApp.LOCALHOST", False),
])
def test_only_localhost_names_need_no_hosts_entry(name: str, needs: bool) -> None:
    assert names.needs_hosts_entry(name) is needs


def test_hostsd_maps_the_routed_name_of_a_test_domain() -> None:
    assert names.hosts_entry_name(TEST, svc("api")) == "api.myapp.test"
    assert names.hosts_entry_name(TEST, svc("Web_UI")) == "web-ui.myapp.test"


def test_a_configured_hostname_is_mapped_as_before() -> None:
    assert names.hosts_entry_name(TEST, svc("api", hostname="api.other.test")) == \
        "api.other.test"
    assert names.hosts_entry_name(LOCAL, svc("api", hostname="api.other.test")) == \
        "api.other.test"


@pytest.mark.parametrize(("manager", "service"), [
    (LOCAL, svc("api")),                          # *.localhost: no entry needed
    (TEST, svc("worker", port=None)),             # no port, no route
    (replace(TEST, router=False), svc("api")),    # router off: today's behaviour
])
def test_no_entry_where_no_routed_name_needs_one(manager: ManagerConfig,
                                                 service: ServiceConfig) -> None:
    assert names.hosts_entry_name(manager, service) is None


def test_the_dashboard_bare_domain_needs_an_entry_only_outside_localhost() -> None:
    assert names.dashboard_entry_name(TEST) == "myapp.test"
    assert names.dashboard_entry_name(replace(TEST, domain="MyApp.Test")) == "myapp.test"
    assert names.dashboard_entry_name(LOCAL) is None
    assert names.dashboard_entry_name(replace(TEST, router=False)) is None


@pytest.mark.parametrize(("domain", "permitted"), [
    ("myapp.localhost", None),        # every CA permits localhost
    ("myapp.test", "test"),           # one CA for every .test project
    ("a.b.internal", "internal"),
    ("myapp.dev", "myapp.dev"),       # a public suffix: only the project's own subtree
    ("shop.example.com", "shop.example.com"),
])
def test_the_ca_domain_a_project_needs(domain: str, permitted: str | None) -> None:
    assert names.ca_domain(domain) == permitted


@pytest.mark.parametrize(("url", "local"), [
    ("https://api.myapp.test:7443", ("api.myapp.test", "myapp.test")),
    ("https://API.MyApp.Test", ("api.myapp.test", "myapp.test")),
    ("https://api.myapp.localhost", ("api.myapp.localhost", "myapp.localhost")),
    ("http://localhost:5001", ()),          # not routed: the name does not lead here
    ("http://api.other.test:5001", ()),     # a hostname: hostname_mapped says
    (None, ()), (5, ()), ("https://", ()),
])
def test_the_names_a_routed_url_shows_leading_here(url: object, local: tuple[str, ...]
                                                   ) -> None:
    assert routed_names({"url": url}) == local


def test_manual_mode_prints_the_lines_for_a_routed_name() -> None:
    """`hosts_management: manual`: the routed name is explained like a hostname, once."""
    from types import SimpleNamespace

    from promenade_core.hosts.client import HostsManager

    said: list[str] = []
    hosts = HostsManager("manual", "/nonexistent/hostsd.sock",
                         lambda message, *args, **kw: said.append(message),
                         name_of=lambda config: names.hosts_entry_name(TEST, config))
    running = SimpleNamespace(name="api", config=svc("api"))
    hosts.on_started(running)
    hosts.on_started(running)
    hosts.on_started(SimpleNamespace(name="db", config=svc("db", port=None)))
    assert len(said) == 1
    assert "127.0.0.1  api.myapp.test" in said[0]
    assert "hosts_management: manual" in said[0]
    assert hosts.mapped() == {}   # nothing confirmed: the URL keeps its port
