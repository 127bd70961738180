"""`promenade run [SERVICE] -- COMMAND…` with real processes: the command sees the
service's environment (`.env`, defaults.env, env_file, env, `${VAR}`, PORT) and folder,
or the project's without SERVICE; its exit status is its own, a signal included."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.support.scripts import PROMENADE

CONFIG = """\
defaults:
  env: {LEVEL: defaults, SHARED: from-defaults}
services:
  api:
    command: sleep 60
    directory: backend
    port: 5123
    env_file: api.env
    env:
      LEVEL: env
      TOKEN: ${PM_RUN_TOKEN:-default-token}
  worker:
    command: sleep 60
"""

SHOW = "echo LEVEL=$LEVEL; echo TOKEN=$TOKEN; echo PORT=$PORT; echo DOT=$DOT; " \
       "echo FILE=$FILE; echo SHARED=$SHARED; echo MARK=${PROMENADE_INSTANCE:-none}; pwd"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "backend").mkdir()
    (tmp_path / "src" / "deep").mkdir(parents=True)
    (tmp_path / ".env").write_text("DOT=from-dotenv\nLEVEL=dotenv\n")
    (tmp_path / "api.env").write_text("FILE=from-env-file\n")
    (tmp_path / "promenade.yaml").write_text(CONFIG)
    return tmp_path


def promenade(project: Path, *args: str, cwd: Path | None = None, stdin: str = "",
              **env: str) -> subprocess.CompletedProcess[str]:
    """`promenade ARGS` from `cwd` (default: a folder deep inside the project), with
    HOME at the project so the lookup stops there."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("PM_RUN_", "PROMENADE_")) and k not in ("PORT", "LEVEL")}
    environ.update(HOME=str(project), **env)
    return subprocess.run([*PROMENADE, *args], cwd=cwd or project / "src" / "deep",
                          env=environ, input=stdin, capture_output=True, text=True,
                          timeout=60)


def shown(output: str) -> dict[str, str]:
    lines = output.splitlines()
    values = dict(line.split("=", 1) for line in lines[:-1])
    values["cwd"] = lines[-1]
    return values


def test_run_with_a_service_gets_its_environment_and_folder(project: Path) -> None:
    result = promenade(project, "run", "api", "--", "sh", "-c", SHOW, PORT="1", LEVEL="shell")
    assert result.returncode == 0, result.stderr
    assert shown(result.stdout) == {
        "LEVEL": "env", "TOKEN": "default-token", "PORT": "5123", "DOT": "from-dotenv",
        "FILE": "from-env-file", "SHARED": "from-defaults", "MARK": "none",
        "cwd": str(project / "backend")}


def test_run_interpolates_from_the_environment(project: Path) -> None:
    result = promenade(project, "run", "api", "--", "sh", "-c", "echo $TOKEN",
                       PM_RUN_TOKEN="from-shell")
    assert result.stdout == "from-shell\n", result.stderr


def test_run_without_a_service_gets_the_projects_environment(project: Path) -> None:
    result = promenade(project, "run", "--", "sh", "-c", SHOW, LEVEL="shell")
    assert result.returncode == 0, result.stderr
    assert shown(result.stdout) == {
        "LEVEL": "defaults", "TOKEN": "", "PORT": "", "DOT": "from-dotenv", "FILE": "",
        "SHARED": "from-defaults", "MARK": "none", "cwd": str(project)}


def test_argv_is_not_given_to_a_shell(project: Path) -> None:
    """`$TOKEN` typed as an argument reaches the command literally (no shell between)."""
    result = promenade(project, "run", "api", "--", "printf", "%s|", "$TOKEN", "a b", "--")
    assert result.stdout == "$TOKEN|a b|--|", result.stderr


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_the_exit_status_is_the_commands(project: Path, code: int) -> None:
    result = promenade(project, "run", "worker", "--", "sh", "-c", f"exit {code}")
    assert result.returncode == code


def test_a_signal_kills_it_as_if_run_directly(project: Path) -> None:
    """exec: the shell that started `promenade run` sees 128+N."""
    result = promenade(project, "run", "--", "sh", "-c", "kill -TERM $$")
    assert result.returncode == -signal.SIGTERM
    wrapped = subprocess.run(
        ["sh", "-c", '"$@"; echo "status $?"', "sh", *PROMENADE, "run", "--", "sh", "-c",
         "kill -INT $$"], cwd=project, capture_output=True, text=True, timeout=60,
        env={**os.environ, "HOME": str(project)})
    assert wrapped.stdout == f"status {128 + signal.SIGINT}\n"


def test_stdin_reaches_the_command(project: Path) -> None:
    result = promenade(project, "run", "api", "--", "cat", stdin="typed\n")
    assert result.stdout == "typed\n"


def test_a_missing_command_is_127_like_a_shell(project: Path) -> None:
    result = promenade(project, "run", "api", "--", "no-such-command-pm")
    assert result.returncode == 127
    assert result.stderr.startswith("Error: command not found: 'no-such-command-pm' in PATH")


def test_run_honours_c_and_an_unknown_service(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(textwrap.dedent("""\
        services:
          db: {command: sleep 1, env: {WHO: db}}
        """))
    result = promenade(project, "run", "-c", str(other), "db", "--", "sh", "-c", "echo $WHO")
    assert result.stdout == "db\n", result.stderr
    unknown = promenade(project, "run", "-c", str(other), "api", "--", "true")
    assert (unknown.returncode, unknown.stderr) == (
        2, "Error: unknown service 'api' (known: db)\n")
