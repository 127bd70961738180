"""The hot-reload planner: restart only what the process sees, update the rest in place."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from promenade_core.config.load import load_config, load_config_text
from promenade_core.config.model import Config
from promenade_core.supervise.reload_plan import ReloadPlan, ServiceChange, plan_reload

BASE = """\
manager:
  port: 9100
services:
  api:
    command: flask run
    port: 5001
    hostname: api.local
    env: {A: "1"}
  web:
    command: npm run dev
    port: 3000
    hostname: web.local
    depends_on: [api]
"""


@pytest.fixture
def cfg(tmp_path: Path):
    def make(text: str) -> Config:
        return load_config_text(textwrap.dedent(text), tmp_path / "promenade.yaml")

    return make


def edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_same_config_is_an_empty_plan(cfg) -> None:
    plan = plan_reload(cfg(BASE), cfg(BASE))
    assert plan.empty and plan == ReloadPlan() and plan.summary() == "reload: no changes"


def test_moving_a_service_in_the_file_changes_nothing(cfg) -> None:
    moved = "\n# a comment that shifts every line\n" + BASE
    assert plan_reload(cfg(BASE), cfg(moved)).empty


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("command: flask run", "command: flask run --reload", "command changed"),
        ("command: flask run", "command: flask run\n    directory: /tmp", "directory changed"),
        ('env: {A: "1"}', 'env: {A: "2"}', "env changed: A"),
        ("port: 5001", "port: 5002", "port changed (5001 -> 5002)"),
    ],
)
def test_process_settings_restart_the_service(cfg, old: str, new: str, reason: str) -> None:
    plan = plan_reload(cfg(BASE), cfg(edit(BASE, old, new)))
    assert plan.changes == (ServiceChange("api", "restart", (reason,)),)
    assert plan.summary() == f"reload: restarted api ({reason})"


def test_env_reasons_name_keys_never_values(cfg) -> None:
    new = edit(BASE, 'env: {A: "1"}', 'env: {A: "1", SECRET_TOKEN: "hunter2", B: "x"}')
    (change,) = plan_reload(cfg(BASE), cfg(new)).changes
    assert change.reasons == ("env changed: B, SECRET_TOKEN",)
    assert "hunter2" not in plan_reload(cfg(BASE), cfg(new)).summary()


def test_defaults_env_change_restarts_every_service_it_reaches(cfg) -> None:
    new = "defaults:\n  env: {NODE_ENV: test}\n" + BASE
    plan = plan_reload(cfg(BASE), cfg(new))
    assert [(c.service, c.action) for c in plan.changes] == [("api", "restart"), ("web", "restart")]
    overridden = "defaults:\n  env: {A: '1'}\n" + BASE  # api's own env already says A=1
    assert [c.service for c in plan_reload(cfg(BASE), cfg(overridden)).changes] == ["web"]


def test_an_edited_env_file_restarts_its_service(tmp_path: Path) -> None:
    (tmp_path / "api.env").write_text("A=1\n")
    path = tmp_path / "promenade.yaml"
    path.write_text("services:\n  api: {command: x, env_file: api.env}\n  web: {command: y}\n")
    old = load_config(path)
    (tmp_path / "api.env").write_text("A=2\n")
    plan = plan_reload(old, load_config(path))
    assert plan.changes == (ServiceChange("api", "restart", ("env changed: A",)),)


def test_an_edited_dotenv_restarts_every_service_it_reaches(tmp_path: Path) -> None:
    """`.env` is in every service's environment (and may feed `${VAR}`)."""
    (tmp_path / ".env").write_text("A=1\n")
    path = tmp_path / "promenade.yaml"
    path.write_text("services:\n  api: {command: x}\n  web: {command: 'y ${A}'}\n")
    old = load_config(path)
    (tmp_path / ".env").write_text("A=2\n")
    plan = plan_reload(old, load_config(path))
    assert plan.changes == (
        ServiceChange("api", "restart", ("env changed: A",)),
        ServiceChange("web", "restart", ("command changed", "env changed: A")))


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("hostname: api.local", "hostname: api2.local", "hostname"),
        ("port: 5001", "port: 5001\n    ready_check: {type: tcp}", "ready_check"),
        ("port: 5001", "port: 5001\n    restart_policy: always", "restart_policy"),
        ("port: 5001", "port: 5001\n    cors_proxy: true\n    cors_proxy_port: 6001", None),
        ("port: 5001", "port: 5001\n    cors_allow_origins: '*'", "cors_allow_origins"),
    ],
)
def test_supervisor_settings_update_in_place(cfg, old: str, new: str, field: str | None) -> None:
    (change,) = plan_reload(cfg(BASE), cfg(edit(BASE, old, new))).changes
    assert (change.service, change.action) == ("api", "update")
    expected = (f"{field} updated",) if field else ("cors_proxy updated", "cors_proxy_port updated")
    assert change.reasons == expected


def test_depends_on_and_defaults_restart_policy_update_in_place(cfg) -> None:
    new = "defaults: {restart_policy: always}\n" + edit(BASE, "depends_on: [api]", "depends_on: []")
    plan = plan_reload(cfg(BASE), cfg(new))
    assert plan.changes == (
        ServiceChange("api", "update", ("restart_policy updated",)),
        ServiceChange("web", "update", ("restart_policy updated", "depends_on updated")),
    )
    assert plan.summary() == (
        "reload: restart_policy of api updated; restart_policy and depends_on of web updated"
    )


def test_a_restart_also_lists_what_is_updated(cfg) -> None:
    new = edit(edit(BASE, "flask run", "flask run -p 5001"), "api.local", "api2.local")
    (change,) = plan_reload(cfg(BASE), cfg(new)).changes
    assert change == ServiceChange("api", "restart", ("command changed", "hostname updated"))


def test_stops_then_restarts_and_updates_then_starts_in_dependency_order(cfg) -> None:
    old = BASE + "  old1: {command: a}\n  old2: {command: b, depends_on: [old1]}\n"
    new = edit(BASE, "flask run", "flask run -p 5001")
    new = edit(new, "web.local", "www.local")
    new += "  front: {command: c, depends_on: [queue]}\n  queue: {command: d}\n"
    plan = plan_reload(cfg(old), cfg(new))
    assert [(c.action, c.service) for c in plan.changes] == [
        ("stop", "old2"),  # dependents stop before what they depend on
        ("stop", "old1"),
        ("restart", "api"),
        ("update", "web"),
        ("start", "queue"),  # dependencies start first, whatever the file order
        ("start", "front"),
    ]


def test_summary_follows_the_spec_steps_stop_start_restart_update(cfg) -> None:
    old = BASE + "  gone: {command: g}\n"
    new = edit(BASE, "flask run", "flask run -p 5001")
    new = edit(new, "web.local", "www.local") + "  worker2: {command: w}\n"
    summary = plan_reload(cfg(old), cfg(new)).summary()
    assert summary == (
        "reload: stopped gone; started worker2; restarted api (command changed); "
        "hostname of web updated"
    )


def test_manager_settings_bound_at_start_ask_for_a_restart_of_promenade(cfg) -> None:
    new = edit(BASE, "port: 9100", "port: 9200\n  hosts_management: manual")
    plan = plan_reload(cfg(BASE), cfg(new))
    assert plan.changes == () and not plan.empty
    assert plan.manager_changes == (
        "manager.port changed (9100 -> 9200): takes effect after a restart of promenade",
        "manager.hosts_management changed (auto -> manual): takes effect after a restart of "
        "promenade",
    )
    assert plan.summary().startswith("reload: manager.port changed (9100 -> 9200)")


def test_domain_and_router_ask_for_a_restart_of_promenade(cfg, monkeypatch) -> None:
    """Running services' environment (the Vite variable) was built with the old name."""
    monkeypatch.delenv("PROMENADE_ROUTER", raising=False)   # the suite's switch (conftest.py)
    new = edit(BASE, "port: 9100", "port: 9100\n  domain: shop.localhost\n  router: false")
    plan = plan_reload(cfg(BASE), cfg(new))
    assert plan.changes == ()
    assert [m.split(" (")[0] for m in plan.manager_changes] == [
        "manager.domain changed", "manager.router changed"]
    assert all(m.endswith("takes effect after a restart of promenade")
               for m in plan.manager_changes)


def test_live_manager_settings_apply_without_a_restart(cfg) -> None:
    new = edit(
        BASE,
        "port: 9100",
        "port: 9100\n  log_buffer_lines: 50\n  config_poll_interval: 1\n  dependency_timeout: 5",
    )
    plan = plan_reload(cfg(BASE), cfg(new))
    assert dict(plan.buffer_resize) == {"api": 50, "web": 50}
    assert plan.manager_changes == (
        "manager.log_buffer_lines changed (1000 -> 50)",
        "manager.config_poll_interval changed (5 -> 1)",
        "manager.dependency_timeout changed (60 -> 5)",
    )
    unchanged_poll = plan_reload(
        cfg(BASE), cfg(edit(BASE, "port: 9100", "port: 9100\n  host: ::1"))
    )
    assert not unchanged_poll.buffer_resize
    assert not any("poll_interval" in c for c in unchanged_poll.manager_changes)


def test_plan_to_dict_is_json(cfg) -> None:
    plan = plan_reload(cfg(BASE), cfg(edit(BASE, "flask run", "flask")))
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["changes"] == [
        {"service": "api", "action": "restart", "reasons": ["command changed"]}
    ]
    assert data["summary"] == "reload: restarted api (command changed)"
