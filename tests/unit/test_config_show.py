"""`promenade config show`: the config as Promenade reads it (override file, `.env`,
`${VAR}` resolved) as YAML, secrets masked; every problem and exit 2 when invalid."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from promenade_cli.main import cli


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PM_SHOW_PORT", "5123")
    monkeypatch.delenv("PM_SHOW_MISSING", raising=False)
    (tmp_path / ".env").write_text("DB_PASSWORD=hunter2\nREGION=eu\n")
    (tmp_path / "promenade.yaml").write_text(textwrap.dedent("""\
        services:
          api:
            command: serve --token abc --region ${REGION}
            port: ${PM_SHOW_PORT}
            env:
              DATABASE_URL: postgres://app:${DB_PASSWORD}@db/app
              API_TOKEN: t0k3n
              MODE: ${MODE:-dev}
        """))
    (tmp_path / "promenade.override.yaml").write_text(
        "services:\n  api:\n    env: {MODE: override}\n")
    return tmp_path


def show(*args: str) -> Result:
    return CliRunner().invoke(cli, ["config", "show", *args], prog_name="promenade")


def test_show_prints_what_interpolation_and_merging_produced(project: Path) -> None:
    result = show()
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    api = doc["services"]["api"]
    assert api["port"] == 5123
    assert api["command"] == "serve --token **** --region eu"
    assert api["env"]["MODE"] == "override"
    assert api["env"]["DATABASE_URL"] == "postgres://app:****@db/app"
    assert api["env"]["API_TOKEN"] == "****"
    assert api["env"]["DB_PASSWORD"] == "****"      # from .env, merged into the service
    assert doc["dotenv"] == {"DB_PASSWORD": "****", "REGION": "eu"}
    assert doc["files"] == [str(project / "promenade.yaml"),
                            str(project / "promenade.override.yaml")]
    assert "hunter2" not in result.stdout and "t0k3n" not in result.stdout
    assert "abc" not in result.stdout


def test_show_with_several_c(project: Path) -> None:
    (project / "ci.yaml").write_text("services:\n  api:\n    port: 6000\n")
    result = show("-c", "promenade.yaml", "-c", "ci.yaml")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["services"]["api"]["port"] == 6000


def test_show_of_an_invalid_config_lists_every_problem(project: Path) -> None:
    (project / "promenade.yaml").write_text(
        "services:\n  api:\n    command: ${PM_SHOW_MISSING}\n    colour: red\n")
    result = show()
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: promenade.yaml:3: services.api.command: "
                               "PM_SHOW_MISSING is not set")
    assert lines[1].startswith("promenade.yaml:4: services.api.colour: unknown key")
