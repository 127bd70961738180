"""`promenade run`'s command line, without running anything: SERVICE and the command
split at `--`, and the shell's exit codes for a command that cannot start."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from promenade_cli.main import cli
from promenade_cli.run_cmd import exec_error, split_args


@pytest.mark.parametrize(("args", "dropped", "expected"), [
    (["api", "--", "env"], False, ("api", ("env",))),
    (["env"], True, (None, ("env",))),
    (["npm", "run", "dev", "--", "--port", "3"], True,
     (None, ("npm", "run", "dev", "--", "--port", "3"))),
    (["api", "--", "npm", "run", "--", "-x"], False, ("api", ("npm", "run", "--", "-x"))),
    (["api", "--", "sh", "-c", "echo $X"], False, ("api", ("sh", "-c", "echo $X"))),
])
def test_split(args: list[str], dropped: bool, expected: tuple[object, ...]) -> None:
    assert split_args(args, dropped) == expected


@pytest.mark.parametrize(("args", "dropped", "message"), [
    (["env"], False, "put '--' before the command"),
    (["api", "-c", "x", "--", "env"], False, "one SERVICE before '--', got 'api -c x'"),
    (["api", "--"], False, "no command to run"),
    ([], True, "no command to run"),
])
def test_split_refuses(args: list[str], dropped: bool, message: str) -> None:
    with pytest.raises(click.UsageError, match=message):
        split_args(args, dropped)


def test_exec_errors_follow_the_shell() -> None:
    missing = exec_error(["echo hi"], {"PATH": "/bin"}, FileNotFoundError(2, "x"), Path("/w"))
    assert missing.exit_code == 127
    assert str(missing) == ("command not found: 'echo hi' in PATH (/bin); to run a shell "
                            "command line, use: promenade run [SERVICE] -- sh -c 'echo hi'")
    relative = exec_error(["./x"], {}, FileNotFoundError(2, "x"), Path("/w"))
    assert str(relative) == "command not found: './x' in /w"
    denied = exec_error(["./x"], {}, PermissionError(13, "Permission denied"), Path("/w"))
    assert (denied.exit_code, str(denied)) == (126, "cannot execute './x': Permission denied")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "promenade.yaml").write_text("services:\n  api: {command: x}\n")
    return tmp_path


@pytest.mark.parametrize(("args", "message"), [
    (["nope", "--", "true"], "Error: unknown service 'nope' (known: api)\n"),
    (["api", "true"], "put '--' before the command"),
    ([], "Missing argument"),
])
def test_run_refuses_before_running_anything(project: Path, args: list[str],
                                             message: str) -> None:
    result = CliRunner().invoke(cli, ["run", *args], prog_name="promenade")
    assert result.exit_code == 2
    assert message in result.stderr


def test_run_with_an_invalid_config_exits_2(project: Path) -> None:
    (project / "promenade.yaml").write_text("services:\n  api: {command: x, bad: 1}\n")
    result = CliRunner().invoke(cli, ["run", "api", "--", "true"], prog_name="promenade")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: promenade.yaml:2: services.api.bad: ")
