"""The environment a service's process gets (config/environment.py), shared by the
supervisor and `promenade run`: os.environ < .env < defaults.env < env_file < env, PORT
from `port:`, no instance markers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from promenade_core.config.environment import (
    COLOUR_VARIABLES,
    project_environment,
    service_environment,
    with_pipe_variables,
)
from promenade_core.config.load import load_config
from promenade_core.config.model import Config

BASE = {"HOME": "/home/u", "LEVEL": "environ", "PORT": "1234"}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LEVEL=dotenv\nFROM_DOTENV=1\nPORT=3000\n")
    (tmp_path / "api.env").write_text("LEVEL=env_file\nFROM_FILE=1\n")
    (tmp_path / "promenade.yaml").write_text(textwrap.dedent("""\
        defaults:
          env: {LEVEL: defaults, FROM_DEFAULTS: "1"}
        services:
          api:
            command: run
            port: 5001
            env_file: api.env
            env: {LEVEL: env}
          web:
            command: run
            port: 5002
          fixed:
            command: run
            port: 5003
            env: {PORT: "9999"}
          worker:
            command: run
            env_file: api.env
        """))
    return load_config(tmp_path / "promenade.yaml")


def test_precedence_environ_dotenv_defaults_env_file_env(config: Config) -> None:
    api = service_environment(config.services["api"], BASE)
    assert api["LEVEL"] == "env"
    assert {k: api[k] for k in ("HOME", "FROM_DOTENV", "FROM_DEFAULTS", "FROM_FILE")} == {
        "HOME": "/home/u", "FROM_DOTENV": "1", "FROM_DEFAULTS": "1", "FROM_FILE": "1"}
    assert service_environment(config.services["worker"], BASE)["LEVEL"] == "env_file"
    assert service_environment(config.services["web"], BASE)["LEVEL"] == "defaults"


def test_port_comes_from_port_unless_the_service_env_sets_it(config: Config) -> None:
    """A PORT in the shell or in `.env` (honcho's base port) must not give every service
    the same port: `port:` wins over both; only the service's own `env:` wins over it."""
    assert service_environment(config.services["api"], BASE)["PORT"] == "5001"
    assert service_environment(config.services["web"], BASE)["PORT"] == "5002"
    assert service_environment(config.services["fixed"], BASE)["PORT"] == "9999"
    assert service_environment(config.services["worker"], BASE)["PORT"] == "3000"  # .env's


def test_no_instance_markers(config: Config) -> None:
    """Only the supervisor adds PROMENADE_INSTANCE/SERVICE: a one-off must never be
    taken for a leftover of a running manager."""
    env = service_environment(config.services["api"], BASE)
    assert not [k for k in env if k.startswith("PROMENADE_")]


def test_project_environment_is_environ_dotenv_defaults(config: Config) -> None:
    env = project_environment(config, BASE)
    assert env["LEVEL"] == "defaults"
    assert env["FROM_DOTENV"] == "1" and env["PORT"] == "3000"
    assert "FROM_FILE" not in env


def test_the_base_is_not_changed(config: Config) -> None:
    base = dict(BASE)
    service_environment(config.services["api"], base)
    project_environment(config, base)
    assert base == BASE


def test_pipes_get_colour_forcing_and_unbuffered_python() -> None:
    env = with_pipe_variables({"HOME": "/h"})
    assert env == {"HOME": "/h", "FORCE_COLOR": "1", "CLICOLOR_FORCE": "1",
                   "PY_COLORS": "1", "PYTHONUNBUFFERED": "1"}


def test_what_the_user_or_service_set_wins_over_pipe_variables() -> None:
    env = with_pipe_variables({"FORCE_COLOR": "3", "PY_COLORS": "0"})
    assert env["FORCE_COLOR"] == "3" and env["PY_COLORS"] == "0"
    assert env["CLICOLOR_FORCE"] == "1"


def test_no_color_keeps_colour_off_but_python_unbuffered() -> None:
    env = with_pipe_variables({"NO_COLOR": "1"})
    assert not set(COLOUR_VARIABLES) & set(env)
    assert env["PYTHONUNBUFFERED"] == "1"
    # an empty NO_COLOR does not count (no-color.org)
    assert with_pipe_variables({"NO_COLOR": ""})["FORCE_COLOR"] == "1"
