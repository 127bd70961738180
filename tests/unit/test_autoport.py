"""`port: auto`: the pick (supervise/autoport.py) with a fake "is free" and fake kernel
candidates, what the supervisor claims, the config rules and schema, the reload plan
and the environment. No sockets: the kernel's candidates and the preflight are
replaced by lists and sets."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest

from promenade_core.config import jsonschema as built
from promenade_core.config.environment import service_environment
from promenade_core.config.load import load_config_text
from promenade_core.config.model import Config
from promenade_core.errors import ConfigError
from promenade_core.supervise import autoport
from promenade_core.supervise.reload_plan import plan_reload
from promenade_core.supervise.supervisor import Supervisor

VALIDATOR = jsonschema.Draft202012Validator(built.config_schema())


def free_except(*taken: int) -> Any:
    return lambda port: port not in taken


# -- the pick -----------------------------------------------------------------------

def test_the_last_runs_port_is_kept_while_it_is_free() -> None:
    assert autoport.pick(41000, set(), free_except(), [42000]) == 41000


def test_a_taken_last_port_gives_way_to_a_new_one() -> None:
    assert autoport.pick(41000, set(), free_except(41000), [42000]) == 42000


def test_a_claimed_last_port_gives_way_even_when_free() -> None:
    """Another service (or the config) has it now, though it is not bound yet."""
    assert autoport.pick(41000, {41000}, free_except(), [42000]) == 42000


def test_the_first_start_takes_the_first_free_unclaimed_candidate() -> None:
    candidates = [43000, 43001, 43002, 43003]
    assert autoport.pick(None, {43000}, free_except(43001), candidates) == 43002


def test_candidates_are_tried_a_bounded_number_of_times() -> None:
    tried: list[int] = []

    def never_free(port: int) -> bool:
        tried.append(port)
        return False

    endless = iter(range(40000, 50000))
    assert autoport.pick(None, set(), never_free, endless) is None
    assert len(tried) == autoport.ATTEMPTS


def test_no_candidate_at_all_is_none() -> None:
    assert autoport.pick(None, set(), free_except(), []) is None


# -- config -------------------------------------------------------------------------

def load(tmp_path: Path, text: str) -> Config:
    return load_config_text(textwrap.dedent(text), tmp_path / "promenade.yaml")


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [str(p) for p in caught.value.problems]


AUTO_CONFIG = """
    manager: {port: 9100, bus_tcp: "127.0.0.1:9200"}
    services:
      web:
        command: serve
        port: auto
        hostname: web.test
        ready_check: {type: http, path: /}
        cors_proxy: true
        cors_proxy_port: 6001
      api:
        command: serve
        port: auto
        ready_check: {type: tcp}
      db:
        command: serve
        port: 5432
    """


def test_auto_loads_as_no_fixed_port_and_counts_as_a_port(tmp_path: Path) -> None:
    """hostname, an http/tcp ready_check and cors_proxy accept auto as "has a port"; two
    auto services do not collide in the port-uniqueness rule."""
    config = load(tmp_path, AUTO_CONFIG)
    web = config.services["web"]
    assert (web.port, web.port_auto, web.has_port) == (None, True, True)
    db = config.services["db"]
    assert (db.port, db.port_auto, db.has_port) == (5432, False, True)
    assert web.to_dict()["port_auto"] is True


def test_the_config_claims_every_port_it_names(tmp_path: Path) -> None:
    assert autoport.claimed_ports(load(tmp_path, AUTO_CONFIG)) == {9100, 9200, 6001, 5432}


def test_auto_from_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PM_TEST_WEB_PORT", raising=False)
    config = load(tmp_path, """
        services:
          web: {command: serve, port: "${PM_TEST_WEB_PORT:-auto}"}
        """)
    assert config.services["web"].port_auto


@pytest.mark.parametrize(("value", "message"), [
    ("Auto", "must be a port from 1 to 65535 or auto, got 'Auto' (write auto in lower case)"),
    ("automatic", "must be a port from 1 to 65535 or auto, got 'automatic'"),
    ("70000", "must be a port from 1 to 65535, got 70000"),
])
def test_a_wrong_port_word_says_what_is_accepted(tmp_path: Path, value: str,
                                                 message: str) -> None:
    found = problems(tmp_path, f"services:\n  web: {{command: serve, port: {value}}}\n")
    assert [p.rpartition("/")[2] for p in found] == [
        f"promenade.yaml:2: services.web.port: {message}"]


@pytest.mark.parametrize("key", ["manager.port", "cors_proxy_port"])
def test_only_a_services_own_port_may_be_auto(tmp_path: Path, key: str) -> None:
    if key == "manager.port":
        text = "manager: {port: auto}\nservices:\n  web: {command: serve}\n"
    else:
        text = ("services:\n  web: {command: serve, port: 5000, cors_proxy: true, "
                "cors_proxy_port: auto}\n")
    found = problems(tmp_path, text)
    assert len(found) == 1 and "must be a whole number, got 'auto'" in found[0]


def test_auto_with_its_own_env_port_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, """
        services:
          web:
            command: serve
            port: auto
            env: {PORT: "3000"}
        """)
    assert len(found) == 1 and "services.web.env.PORT: port: auto exports" in found[0]


@pytest.mark.parametrize(("port", "valid"), [
    (5000, True), ("auto", True), ("${WEB_PORT}", True), ("Auto", False), (0, False)])
def test_the_json_schema_accepts_a_service_port_or_auto(port: Any, valid: bool) -> None:
    document = {"services": {"web": {"command": "serve", "port": port}}}
    assert VALIDATOR.is_valid(document) is valid


def test_the_json_schema_refuses_auto_for_the_dashboard() -> None:
    document = {"manager": {"port": "auto"}, "services": {"web": {"command": "serve"}}}
    assert not VALIDATOR.is_valid(document)


# -- reload -------------------------------------------------------------------------

FIXED = "services:\n  web: {command: serve, port: 5001}\n"
AUTO = "services:\n  web: {command: serve, port: auto}\n"


@pytest.mark.parametrize(("before", "after", "reason"), [
    (FIXED, AUTO, "port changed (5001 -> auto)"),
    (AUTO, FIXED, "port changed (auto -> 5001)"),
])
def test_moving_between_a_fixed_port_and_auto_restarts(tmp_path: Path, before: str,
                                                       after: str, reason: str) -> None:
    plan = plan_reload(load(tmp_path, before), load(tmp_path, after))
    (change,) = plan.changes
    assert change.action == "restart" and change.reasons == (reason,)


def test_an_auto_service_is_not_restarted_by_an_unrelated_change(tmp_path: Path) -> None:
    after = AUTO.replace("port: auto", "port: auto, restart_policy: always")
    (change,) = plan_reload(load(tmp_path, AUTO), load(tmp_path, after)).changes
    assert change.action == "update"


# -- environment --------------------------------------------------------------------

def test_port_is_the_runs_port(tmp_path: Path) -> None:
    web = load(tmp_path, AUTO).services["web"]
    assert service_environment(web, {"PORT": "1234"}, 41000)["PORT"] == "41000"
    fixed = load(tmp_path, FIXED).services["web"]
    assert service_environment(fixed, {"PORT": "1234"})["PORT"] == "5001"


# -- the supervisor's claims ----------------------------------------------------------

def test_the_supervisor_never_hands_out_another_services_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two auto services starting together: the second must not get the port the first
    was given and has not bound yet."""
    asked: list[tuple[int | None, set[int]]] = []

    def fake_pick(previous: int | None, claimed: set[int]) -> int:
        asked.append((previous, set(claimed)))
        return 41000 + len(asked)

    monkeypatch.setattr(autoport, "pick", fake_pick)
    sup = Supervisor(load(tmp_path, AUTO_CONFIG), cast(Any, None), cast(Any, None), "test")
    web, api = sup.services["web"], sup.services["api"]
    web._auto_port = sup.auto_port(web, None)
    assert asked[-1] == (None, {9100, 9200, 6001, 5432})
    assert sup.auto_port(api, None) == 41002
    assert asked[-1] == (None, {9100, 9200, 6001, 5432, 41001})
    assert web.port == 41001 and api.port is None
    for service in sup.services.values():
        service.close()
