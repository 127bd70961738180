"""config/profiles.py: which services `promenade start` starts given the active profiles
and the names asked for, the reasons of those it leaves stopped, and the checks of the
names the user gives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from promenade_core.config.load import load_config_text
from promenade_core.config.model import ServiceConfig
from promenade_core.config.profiles import (
    NOT_NAMED,
    UnknownProfileError,
    check_profiles,
    default_targets,
    inactive_reason,
    known_profiles,
    parse_profiles,
    reason_after_reload,
    select,
)
from promenade_core.errors import EXIT_USAGE

CONFIG = """
services:
  db: {command: db}
  api: {command: api, depends_on: [db]}
  docs-db: {command: docs-db, profiles: [docs]}
  docs: {command: docs, profiles: [docs], depends_on: [docs-db]}
  debugger: {command: dbg, profiles: [debug, docs]}
  tool: {command: tool, autostart: false}
  shell: {command: shell, autostart: false, profiles: [debug]}
  report: {command: report, profiles: [debug], depends_on: [docs-db]}
"""


@pytest.fixture
def services(tmp_path: Path) -> dict[str, ServiceConfig]:
    return dict(load_config_text(CONFIG, tmp_path / "promenade.yaml").services)


@pytest.mark.parametrize(("values", "expected"), [
    ((), ()),
    (("debug",), ("debug",)),
    (("debug,docs", "extra"), ("debug", "docs", "extra")),
    ((" debug , docs ,", "", ",,"), ("debug", "docs")),
    (("docs", "debug,docs"), ("docs", "debug")),
])
def test_parse_profiles_splits_commas_drops_blanks_and_repeats(
        values: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert parse_profiles(values) == expected


def test_known_profiles_are_every_services_sorted(services: dict[str, ServiceConfig]) -> None:
    assert known_profiles(services) == ("debug", "docs")


def test_an_unknown_profile_is_a_usage_error_naming_the_known_ones(
        services: dict[str, ServiceConfig]) -> None:
    check_profiles(("debug", "docs"), services)
    with pytest.raises(UnknownProfileError) as caught:
        check_profiles(("debug", "dcos"), services)
    assert caught.value.exit_code == EXIT_USAGE
    assert str(caught.value) == ("unknown profile 'dcos' (known: debug, docs); "
                                 "did you mean 'docs'?")


def test_a_profile_asked_of_a_config_without_profiles_says_there_are_none(
        tmp_path: Path) -> None:
    plain = load_config_text("services: {api: {command: api}}", tmp_path / "p.yaml")
    with pytest.raises(UnknownProfileError, match=r"^unknown profile 'x' \(known: none\)$"):
        check_profiles(("x",), plain.services)


def test_the_reason_names_the_profiles_of_an_inactive_service(
        services: dict[str, ServiceConfig]) -> None:
    assert inactive_reason(services["docs"], ()) == "profile docs not active"
    assert inactive_reason(services["debugger"], ()) == "profiles debug, docs not active"
    assert inactive_reason(services["debugger"], ("docs",)) is None
    assert inactive_reason(services["api"], ()) is None     # no profiles: always active


def test_without_profiles_only_services_without_profiles_start(
        services: dict[str, ServiceConfig]) -> None:
    selection = select(services, ())
    assert selection.start == ("db", "api")
    assert dict(selection.reasons) == {
        "docs-db": "profile docs not active", "docs": "profile docs not active",
        "debugger": "profiles debug, docs not active", "shell": "profile debug not active",
        "report": "profile debug not active"}
    assert "tool" not in selection.reasons     # autostart: false keeps its own reason
    assert not selection.pulled_in


def test_an_active_profile_starts_its_autostart_services(
        services: dict[str, ServiceConfig]) -> None:
    selection = select(services, ("docs",))
    assert set(selection.start) == {"db", "api", "docs-db", "docs", "debugger"}
    assert selection.start.index("docs-db") < selection.start.index("docs")
    assert set(selection.reasons) == {"shell", "report"}
    assert default_targets(services, ("docs",)) == ("db", "api", "docs-db", "docs",
                                                    "debugger")


def test_an_active_service_brings_its_inactive_dependency_and_says_who_needs_it(
        services: dict[str, ServiceConfig]) -> None:
    """debug's `report` depends on docs' `docs-db`: started, as an autostart: false
    dependency would be, instead of refused as compose does."""
    selection = select(services, ("debug",))
    assert set(selection.start) == {"db", "api", "debugger", "report", "docs-db"}
    assert dict(selection.pulled_in) == {"docs-db": ("report",)}
    assert "shell" not in selection.start      # active, but autostart: false
    assert "shell" not in selection.reasons and selection.reasons["docs"] == \
        "profile docs not active"


def test_a_named_service_starts_with_its_dependencies_whatever_their_profiles(
        services: dict[str, ServiceConfig]) -> None:
    selection = select(services, (), targets=["docs"])
    assert selection.start == ("docs-db", "docs")
    assert dict(selection.pulled_in) == {"docs-db": ("docs",)}
    # a service left out is explained by its profile where it has an inactive one
    assert selection.reasons["api"] == NOT_NAMED
    assert selection.reasons["debugger"] == "profiles debug, docs not active"
    assert selection.reasons["tool"] == NOT_NAMED


def test_naming_an_autostart_false_service_of_an_inactive_profile_starts_it(
        services: dict[str, ServiceConfig]) -> None:
    assert select(services, (), targets=["shell"]).start == ("shell",)


def test_a_named_service_of_an_active_profile_is_not_pulled_in(
        services: dict[str, ServiceConfig]) -> None:
    assert not select(services, ("docs",), targets=["docs"]).pulled_in


@pytest.mark.parametrize(("old", "new", "reason", "expected"), [
    # now inactive: the new profile's words, whatever was shown
    ((), ("docs",), None, "profile docs not active"),
    (("debug",), ("docs",), "profile debug not active", "profile docs not active"),
    # active now, where the profile's words were shown: start it by hand
    (("docs",), (), "profile docs not active",
     "not started: its profiles changed while running (start it by hand)"),
    (("docs",), ("debug",), "profile docs not active",
     "not started: its profiles changed while running (start it by hand)"),
    # any other reason stands
    ((), ("debug",), "exited with code 3", "exited with code 3"),
    (("docs",), (), None, None),
    (("docs",), (), "autostart: false; start it by hand", "autostart: false; start it by hand"),
])
def test_the_reason_after_a_reload_changed_the_profiles(
        services: dict[str, ServiceConfig], old: tuple[str, ...], new: tuple[str, ...],
        reason: str | None, expected: str | None) -> None:
    api = services["api"]
    assert reason_after_reload(replace(api, profiles=old), replace(api, profiles=new),
                               ("debug",), reason) == expected
