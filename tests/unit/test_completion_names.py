"""The completion functions (promenade_cli/completion.py) called as click calls them:
service and profile names from the config `-c` named or the lookup found, and nothing
(never an error) without a usable config. The shell protocol itself is
tests/test_completion.py's (real processes)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from promenade_cli.completion import complete_profiles, complete_run_service, complete_services

CONFIG = """\
services:
  api: {command: x, profiles: [debug, docs]}
  admin: {command: x}
  worker: {command: x, profiles: [debug, async]}
"""

ARG = click.Argument(["services"], nargs=-1)
ONE = click.Argument(["service"], required=False)


def context(**params: object) -> click.Context:
    ctx = click.Context(click.Command("x"))
    ctx.params.update(params)
    return ctx


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "promenade.yaml").write_text(CONFIG)
    return tmp_path


def values(items: list[click.shell_completion.CompletionItem]) -> list[str]:
    return [item.value for item in items]


def test_service_names_in_file_order_by_prefix(project: Path) -> None:
    assert values(complete_services(context(config=()), ONE, "")) == ["api", "admin", "worker"]
    assert values(complete_services(context(config=()), ONE, "a")) == ["api", "admin"]
    assert values(complete_services(context(config=()), ONE, "z")) == []


def test_names_already_typed_are_left_out(project: Path) -> None:
    ctx = context(config=(), services=("api",))
    assert values(complete_services(ctx, ARG, "")) == ["admin", "worker"]


def test_the_config_named_by_c(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "dev.yaml").write_text("services:\n  db: {command: x}\n")
    ctx = context(config=(str(other / "dev.yaml"),))
    assert values(complete_services(ctx, ONE, "")) == ["db"]


def test_found_from_a_subfolder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "deep")
    assert values(complete_services(context(config=()), ONE, "w")) == ["worker"]


@pytest.mark.parametrize("text", [None, "services: [", "services:\n  api: {nope: 1}\n"])
def test_no_or_a_broken_config_completes_nothing(project: Path, text: str | None) -> None:
    if text is None:
        (project / "promenade.yaml").unlink()
    else:
        (project / "promenade.yaml").write_text(text)
    assert complete_services(context(config=()), ONE, "") == []
    assert complete_profiles(context(config=()), ONE, "") == []


def test_a_config_param_click_could_not_convert(project: Path) -> None:
    """With resilient parsing click leaves a bad -c value as None."""
    assert values(complete_services(context(config=None), ONE, "ad")) == ["admin"]


def test_profiles_sorted_and_unique(project: Path) -> None:
    assert values(complete_profiles(context(config=()), ONE, "")) == ["async", "debug", "docs"]
    assert values(complete_profiles(context(config=()), ONE, "d")) == ["debug", "docs"]


def test_run_completes_a_service_only_as_the_first_word(project: Path) -> None:
    arg = click.Argument(["args"], nargs=-1)
    assert values(complete_run_service(context(config=(), args=()), arg, "w")) == ["worker"]
    assert complete_run_service(context(config=(), args=("api",)), arg, "w") == []
