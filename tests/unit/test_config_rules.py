"""The cross-field config rules (config/rules.py) as pure functions over a fake reporter.

tests/unit/test_config.py checks the same rules through the whole loader, with file
lines; here each rule is fed the step-3 dictionaries directly, so a failure points at
the rule and not at the YAML around it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from promenade_core.config.choices import Condition, ReadyType
from promenade_core.config.model import ReadyCheck
from promenade_core.config.rules import find_cycles, validate

SERVICE = {"port": None, "hostname": None, "ready_check": None, "cors_proxy": False,
           "cors_proxy_port": None, "depends_on": []}


class Reporter:
    """Records problems as `(dotted.path, message)`; `raw` reads what the user wrote."""

    def __init__(self, written: dict[str, Any]) -> None:
        self.written = written
        self.problems: list[tuple[str, str]] = []

    def add(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append((".".join(map(str, path)), message))

    def raw(self, *path: str) -> Any:
        node: Any = self.written
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node


def check(services: dict[str, dict[str, Any]], port: int = 9100, bus_tcp: str | None = None,
          written_manager: dict[str, Any] | None = None,
          router: bool = False) -> list[tuple[str, str]]:
    """Run `validate` on services given as overrides of SERVICE; the raw document says
    the user wrote every field that is not at its default."""
    full = {name: {**SERVICE, **fields} for name, fields in services.items()}
    raw_services = {name: {k: v for k, v in svc.items() if v not in (None, False, [])}
                    for name, svc in full.items()}
    reporter = Reporter({"manager": written_manager or {}, "services": raw_services})
    manager = SimpleNamespace(port=port, bus_tcp=bus_tcp, router=router)
    validate(reporter, cast(Any, manager), full)
    return reporter.problems


def test_independent_services_have_no_problem() -> None:
    assert check({"api": {"port": 5000, "hostname": "api.test"}, "web": {"port": 3000},
                  "worker": {"depends_on": ["api"]}}) == []


@pytest.mark.parametrize(("fields", "key", "fragment"), [
    ({"hostname": "api.test"}, "hostname", "a hostname needs a 'port'"),
    ({"ready_check": ReadyCheck(ReadyType.HTTP, path="/health")}, "ready_check",
     "a ready_check of type http needs a 'port'"),
])
def test_settings_that_point_at_the_port_need_one(fields: dict[str, Any], key: str,
                                                  fragment: str) -> None:
    ((path, message),) = check({"api": fields})
    assert path == f"services.api.{key}" and fragment in message


def test_exec_and_log_checks_need_no_port() -> None:
    assert check({"db": {"ready_check": ReadyCheck(ReadyType.EXEC, command="pg_isready")},
                  "web": {"ready_check": ReadyCheck(ReadyType.LOG, pattern="ready")}}) == []


def test_condition_healthy_needs_a_ready_check_on_the_dependency() -> None:
    assert check({"db": {}, "api": {"depends_on": ["db"], "conditions": {
        "db": Condition.HEALTHY}}}) == [
        ("services.api.depends_on.0.condition",
         "condition healthy needs a ready_check on service 'db'")]


def test_cors_proxy_needs_both_ports_and_says_which() -> None:
    assert check({"api": {"cors_proxy": True}}) == [
        ("services.api.cors_proxy", "cors_proxy needs a 'port' to forward to"),
        ("services.api.cors_proxy", "cors_proxy needs a 'cors_proxy_port' to listen on "
                                    "(or the router: manager.router: true and no hostname)"),
    ]


def test_on_the_router_cors_proxy_needs_a_second_port_only_with_a_hostname() -> None:
    assert check({"api": {"port": 5001, "cors_proxy": True}}, router=True) == []
    assert check({"api": {"port": 5001, "hostname": "api.test", "cors_proxy": True}},
                 router=True) == [
        ("services.api.cors_proxy", "cors_proxy needs a 'cors_proxy_port' to listen on "
                                    "(or the router: manager.router: true and no hostname)")]


def test_a_service_on_the_default_dashboard_port_is_told_to_set_another() -> None:
    ((path, message),) = check({"api": {"port": 9100}})
    assert path == "services.api.port"
    assert message == ("port 9100 is already used by the dashboard (manager.port is 9100 "
                       "by default; set another)")


def test_a_written_dashboard_port_is_named_as_written() -> None:
    ((_, message),) = check({"api": {"port": 8000}}, port=8000,
                            written_manager={"port": 8000})
    assert message == "port 8000 is already used by manager.port (the dashboard)"


def test_an_invalid_dashboard_port_claims_nothing() -> None:
    """manager.port failed its own check (and kept its default): no second problem."""
    assert check({"api": {"port": 9100}}, written_manager={"port": "nine"}) == []


def test_the_tcp_bus_port_is_claimed_too() -> None:
    ((path, message),) = check({"api": {"port": 7000}}, bus_tcp="127.0.0.1:7000")
    assert path == "services.api.port"
    assert message == "port 7000 is already used by manager.bus_tcp"


def test_a_collision_is_reported_on_the_later_setting_only() -> None:
    problems = check({"api": {"port": 5000, "cors_proxy": True, "cors_proxy_port": 3000},
                      "web": {"port": 3000}, "docs": {"port": 5000}})
    assert problems == [
        ("services.docs.port", "port 5000 is already used by service 'api'"),
        ("services.api.cors_proxy_port", "port 3000 is already used by service 'web'"),
    ]


def test_hostnames_are_unique_whatever_their_case() -> None:
    problems = check({"api": {"port": 1, "hostname": "App.Test"},
                      "web": {"port": 2, "hostname": "app.test"}})
    assert problems == [("services.web.hostname",
                         "hostname 'app.test' is already used by service 'api'")]


def test_depends_on_self_unknown_and_a_cycle() -> None:
    problems = check({"api": {"depends_on": ["api", "wrker"]},
                      "worker": {"depends_on": ["web"]},
                      "web": {"depends_on": ["worker"]}})
    assert problems[0] == ("services.api.depends_on.0", "service 'api' cannot depend on itself")
    assert problems[1][0] == "services.api.depends_on.1"
    assert "unknown service 'wrker'" in problems[1][1] and "'worker'" in problems[1][1]
    assert problems[2:] == [("services.worker.depends_on",
                             "dependency cycle: worker -> web -> worker")]


@pytest.mark.parametrize(("graph", "cycles"), [
    ({}, []),
    ({"a": [], "b": ["a"]}, []),
    ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, []),  # a diamond is no cycle
    ({"a": ["b"], "b": ["c"], "c": ["a"]}, [["a", "b", "c", "a"]]),
    ({"x": [], "c": ["b"], "b": ["c"]}, [["c", "b", "c"]]),  # starts at the first in order
    ({"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"]}, [["a", "b", "a"], ["c", "d", "c"]]),
])
def test_find_cycles(graph: dict[str, list[str]], cycles: list[list[str]]) -> None:
    assert find_cycles(graph) == cycles
