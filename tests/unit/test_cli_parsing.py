"""The command line without a manager: parsing, help, exit codes and `Error: …` lines.

click's CliRunner runs the real `cli` group in this process. Exit codes are DESIGN.md's:
0 ok, 1 failure, 2 usage or config error, 3 no manager running. What a command does
with a running manager is tests/test_cli.py's (real processes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from promenade_cli.main import PromenadeGroup, cli
from promenade_core import __version__
from promenade_core.errors import ConfigError, NoManagerError, Problem, PromenadeError

CONFIG = "services:\n  api: {command: sleep 1}\n  worker: {command: sleep 1}\n"

#: Every command, as typed after `promenade`; test_every_command_is_listed keeps it whole.
COMMANDS = ["start", "stop", "restart", "status", "wait", "logs", "reload", "attach", "run",
            "config", "config check", "config path", "config show", "config schema", "hosts",
            "hosts show", "hosts add", "hosts remove", "hosts install", "hosts uninstall",
            "init", "completion", "trust"]
#: Commands whose options argparse parses (hostsd's installer runs without click too).
ARGPARSE = {"hosts install", "hosts uninstall"}
#: Commands that read no config: the completion script is the same for every project.
#: `trust` neither: the CA is the user's, for every project.
NO_CONFIG = {"completion", "trust"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder with a promenade.yaml, and runtime folders where no manager runs."""
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SUDO_USER", raising=False)
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "promenade.yaml").write_text(CONFIG)
    monkeypatch.chdir(folder)
    yield folder


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="promenade")


def _paths(group: click.Group, prefix: str = "") -> Iterator[str]:
    for name, command in group.commands.items():
        yield f"{prefix}{name}"
        if isinstance(command, click.Group):
            yield from _paths(command, f"{prefix}{name} ")


# ---------------------------------------------------------------- version and help

def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"promenade, version {__version__}\n"


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_command(flag: str) -> None:
    result = run(flag)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: promenade [OPTIONS] COMMAND [ARGS]...")
    listed = result.stdout.split("Commands:\n", 1)[1]
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert names == cli.list_commands(click.Context(cli)) == sorted(
        ["attach", "completion", "config", "hosts", "init", "logs", "reload", "restart", "run",
         "start", "status", "stop", "trust", "wait"])


def test_every_command_is_listed() -> None:
    assert sorted(_paths(cli)) == sorted(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS)
def test_help_of_every_command(path: str) -> None:
    result = run(*path.split(), "--help")
    assert result.exit_code == 0, result.output
    usage = "usage: " if path in ARGPARSE else "Usage: "
    assert result.stdout.startswith(f"{usage}promenade {path} "), result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("path", [c for c in COMMANDS if c not in ARGPARSE | NO_CONFIG
                                  and c not in {"config", "hosts", "config schema"}])
def test_every_command_takes_the_config_option(path: str) -> None:
    """DESIGN.md: every CLI command takes -c/--config PATH (but `config schema`,
    whose output is the same whatever the config)."""
    assert "-c, --config FILE" in run(*path.split(), "--help").stdout


# ---------------------------------------------------------------- parsing

NO_BOUNDS = {"since": None, "until": None, "grep": None, "ignore_case": False, "stream": None}


@pytest.mark.parametrize(("path", "args", "expected"), [
    ("start", [], {"services": (), "config": (), "port": None, "daemon": False,
                   "no_ui": False, "verbose": False, "wait": False, "timeout": 120.0,
                   "profile": (), "only": (), "hide": ()}),
    ("start", ["api", "-c", "x.yaml", "-p", "8080", "-d", "--no-ui", "-v"],
     {"services": ("api",), "config": ("x.yaml",), "port": 8080, "daemon": True, "no_ui": True,
      "verbose": True, "wait": False, "timeout": 120.0, "profile": (), "only": (), "hide": ()}),
    ("start", ["--config=x.yaml", "--port", "1", "--daemon", "--verbose"],
     {"services": (), "config": ("x.yaml",), "port": 1, "daemon": True, "no_ui": False,
      "verbose": True, "wait": False, "timeout": 120.0, "profile": (), "only": (), "hide": ()}),
    ("start", ["api", "web", "-d", "--wait", "--timeout", "7.5"],
     {"services": ("api", "web"), "config": (), "port": None, "daemon": True,
      "no_ui": False, "verbose": False, "wait": True, "timeout": 7.5, "profile": (),
      "only": (), "hide": ()}),
    ("start", ["--profile", "debug,docs", "--profile=extra"],
     {"services": (), "config": (), "port": None, "daemon": False, "no_ui": False,
      "verbose": False, "wait": False, "timeout": 120.0, "profile": ("debug,docs", "extra"),
      "only": (), "hide": ()}),
    ("start", ["--only", "api,web", "--hide=worker", "--hide", "db"],
     {"services": (), "config": (), "port": None, "daemon": False, "no_ui": False,
      "verbose": False, "wait": False, "timeout": 120.0, "profile": (), "only": ("api,web",),
      "hide": ("worker", "db")}),
    ("wait", [], {"services": (), "config": (), "timeout": 120.0}),
    ("wait", ["api", "db", "-t", "30", "-c", "x.yaml"],
     {"services": ("api", "db"), "config": ("x.yaml",), "timeout": 30.0}),
    ("stop", [], {"service": None, "config": ()}),
    ("stop", ["api", "--config", "x.yaml"], {"service": "api", "config": ("x.yaml",)}),
    ("restart", ["api"], {"service": "api", "config": ()}),
    ("status", ["--json", "-c", "x.yaml"],
     {"services": (), "config": ("x.yaml",), "as_json": True}),
    ("status", ["api", "web"], {"services": ("api", "web"), "config": (), "as_json": False}),
    ("logs", [], {"services": (), "config": (), "count": None, "follow_": False,
                  **NO_BOUNDS}),
    ("logs", ["api", "worker", "-n", "0", "-f"],
     {"services": ("api", "worker"), "config": (), "count": 0, "follow_": True, **NO_BOUNDS}),
    ("logs", ["--lines", "7", "--follow", "api"],
     {"services": ("api",), "config": (), "count": 7, "follow_": True, **NO_BOUNDS}),
    ("logs", ["--since", "10m", "--until", "2024-01-15T10:00", "--grep", "x", "-i",
              "--stream", "stderr"],
     {"services": (), "config": (), "count": None, "follow_": False, "since": "10m",
      "until": "2024-01-15T10:00", "grep": "x", "ignore_case": True, "stream": "stderr"}),
    ("reload", ["--dry-run"], {"config": (), "dry_run": True}),
    ("config check", ["-c", "x.yaml"], {"config": ("x.yaml",)}),
    ("config path", [], {"config": ()}),
    ("hosts show", ["-c", "x.yaml"], {"config": ("x.yaml",)}),
    ("hosts add", [], {"config": ()}),
    ("hosts remove", [], {"config": ()}),
])
def test_parsing(path: str, args: list[str], expected: dict[str, Any]) -> None:
    command: click.Command | None = cli
    for name in path.split():
        assert isinstance(command, click.Group)
        command = command.get_command(click.Context(command), name)
    assert command is not None
    with command.make_context(path, args) as ctx:
        assert ctx.params == expected


# ---------------------------------------------------------------- usage errors: exit 2

@pytest.mark.parametrize(("args", "message"), [
    ([], ""),
    (["config"], ""),
    (["hosts"], ""),
    (["bogus"], "Error: No such command 'bogus'."),
    (["status", "--bogus"], "Error: No such option '--bogus'."),
    (["logs", "-n", "-1"], "Error: Invalid value for '-n' / '--lines': -1 is not in the range"),
    (["logs", "-n", "x"], "Error: Invalid value for '-n' / '--lines': 'x' is not a valid"),
    (["start", "-p", "0"], "Error: Invalid value for '-p' / '--port': 0 is not in the range"),
    (["start", "-p", "65536"], "Error: Invalid value for '-p' / '--port': 65536 is not in"),
    (["restart", "api", "worker"], "Error: Got unexpected extra argument (worker)"),
    (["status", "-c"], "Error: Option '-c' requires an argument."),
    (["status", "-c", "."], "is a directory."),
    (["wait", "-t", "0"], "Error: Invalid value for '-t' / '--timeout': 0.0 is not in the"),
    (["wait", "-t", "3601"], "Error: Invalid value for '-t' / '--timeout': 3601.0 is not in"),
    (["wait", "-t", "soon"], "Error: Invalid value for '-t' / '--timeout': 'soon' is not a"),
    (["start", "--timeout", "-1"], "Error: Invalid value for '--timeout': -1.0 is not in the"),
    (["start", "--wait"], "Error: --wait needs -d (a manager in the foreground never returns)"),
    (["start", "api", "--wait"], "Error: --wait needs -d"),
])
def test_usage_errors_exit_2_with_usage(project: Path, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    # click shows the usage first, except for an option that lacks its value
    assert result.stderr.startswith(("Usage: promenade", "Error: Option")), result.stderr
    assert message in result.stderr


def test_start_an_unknown_service_is_a_usage_error_before_anything_starts(
        project: Path) -> None:
    """`promenade start api apii` names what it knows and starts nothing (no manager
    appears: the CliRunner would otherwise run it in the foreground, here)."""
    result = run("start", "api", "apii", "-d")
    assert result.exit_code == 2, result.output
    assert result.stderr == "Error: unknown service 'apii' (known: api, worker)\n"
    assert not list((project.parent / "run").rglob("manager.json"))


def test_start_hide_or_only_an_unknown_service_is_a_usage_error(project: Path) -> None:
    """`--hide apii` names what it knows (exit 2) and starts nothing."""
    result = run("start", "--hide", "worker,apii", "-d")
    assert result.exit_code == 2, result.output
    assert result.stderr == "Error: --hide: unknown service 'apii' (known: api, worker)\n"
    result = run("start", "--only=nope", "-d")
    assert result.stderr == "Error: --only: unknown service 'nope' (known: api, worker)\n"
    assert not list((project.parent / "run").rglob("manager.json"))


# ---------------------------------------------------------------- config errors: exit 2

def test_config_check_ok(project: Path) -> None:
    result = run("config", "check")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == f"{project / 'promenade.yaml'}: ok (2 services)\n"


def test_config_check_names_every_problem(project: Path) -> None:
    (project / "promenade.yaml").write_text(
        "services:\n  api: {command: x, depends_on: [apii]}\n  web: {command: x, port: 0}\n")
    result = run("config", "check")
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: promenade.yaml:2: services.api.depends_on: "), lines
    assert lines[1].startswith("promenade.yaml:3: services.web.port: "), lines
    assert "'apii'" in lines[0] and len(lines) == 2


@pytest.mark.parametrize("args", [["config", "check"], ["status"], ["logs"], ["stop"],
                                  ["hosts", "show"], ["start"]])
def test_a_missing_config_is_a_config_error(project: Path, args: list[str]) -> None:
    result = run(*args, "-c", "nope.yaml")
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"Error: nope.yaml: config file {project / 'nope.yaml'} "
                             "does not exist\n")


def test_no_config_found_says_where_it_looked(project: Path) -> None:
    (project / "promenade.yaml").unlink()
    result = run("status")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: promenade.yaml: no config file found (looked for "
                                    f"promenade.yaml in {project} and each parent up to ")
    assert "create one with `promenade init`" in result.stderr
    assert result.stderr.endswith("\n    services:\n      web:\n"
                                  "        command: python3 -m http.server 8000\n")


def test_start_with_an_invalid_config_fails_before_anything_runs(project: Path) -> None:
    (project / "promenade.yaml").write_text("services:\n  api: {command: x, restart: 1}\n")
    result = run("start")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: promenade.yaml:2: services.api.restart: ")


def test_config_path(project: Path) -> None:
    assert run("config", "path").stdout == f"{project / 'promenade.yaml'}\n"
    result = run("config", "path", "-c", "sub/later.yaml")  # need not exist yet
    assert (result.exit_code, result.stdout) == (0, f"{project / 'sub' / 'later.yaml'}\n")


# ---------------------------------------------------------------- no manager: exit 3

@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["stop"], ["stop", "api"],
                                  ["restart"], ["restart", "api"], ["reload"],
                                  ["reload", "--dry-run"], ["wait"], ["wait", "api", "-t", "5"]])
def test_no_manager_exits_3(project: Path, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr == (f"Error: no Promenade manager is running for "
                             f"{project / 'promenade.yaml'}\n")


@pytest.mark.parametrize("args", [["logs"], ["logs", "-f"], ["logs", "api"]])
def test_logs_with_no_manager_and_no_log_files_exits_3(project: Path, args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: no Promenade manager is running for "
                                    f"{project / 'promenade.yaml'}, and its log folder ")
    assert result.stderr.endswith(" does not exist\n")


def test_logs_refuses_a_bad_time_or_regex(project: Path) -> None:
    result = run("logs", "--since", "yesterday")
    assert result.exit_code == 2
    assert "'yesterday' is neither a duration" in result.stderr
    result = run("logs", "--grep", "(")
    assert result.exit_code == 2
    assert "--grep '(' is not a valid regular expression" in result.stderr
    assert run("logs", "-f", "--until", "1h").exit_code == 2


def test_no_manager_for_an_explicit_config(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(CONFIG)
    result = run("status", "-c", str(other))
    assert (result.exit_code, result.stderr) == (
        3, f"Error: no Promenade manager is running for {other}\n")


# ---------------------------------------------------------------- the group's error mapping

class Exit7(PromenadeError):
    exit_code = 7


def _group() -> click.Group:
    """A group of the CLI's class with commands that fail in each way a command can."""
    group = PromenadeGroup("promenade")
    nested = click.Group("nested")
    group.add_command(nested)

    def add(name: str, outcome: Any, to: click.Group = group) -> None:
        def callback() -> int:
            if isinstance(outcome, BaseException):
                raise outcome
            return int(outcome)

        to.add_command(click.Command(name, callback=callback))

    add("ok", 0)
    add("fails", 1)
    add("usage", 2)
    add("plain", PromenadeError("the manager exited at start"))
    add("custom", Exit7("seven"))
    add("none", NoManagerError("no Promenade manager is running for x"))
    add("config", ConfigError([Problem("p.yaml", 2, "services.a", "bad"),
                               Problem("p.yaml", None, "", "also bad")]))
    add("deep", NoManagerError("from a nested group"), nested)
    return group


@pytest.mark.parametrize(("args", "code", "stderr"), [
    (["ok"], 0, ""),
    (["fails"], 1, ""),
    (["usage"], 2, ""),
    (["plain"], 1, "Error: the manager exited at start\n"),
    (["custom"], 7, "Error: seven\n"),
    (["none"], 3, "Error: no Promenade manager is running for x\n"),
    (["config"], 2, "Error: p.yaml:2: services.a: bad\np.yaml: also bad\n"),
    (["nested", "deep"], 3, "Error: from a nested group\n"),
])
def test_the_group_turns_results_and_errors_into_exit_codes(
    args: list[str], code: int, stderr: str
) -> None:
    """Commands return a code or raise; only the group prints `Error: …` and exits."""
    result = CliRunner().invoke(_group(), args)
    assert (result.exit_code, result.stderr, result.stdout) == (code, stderr, "")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_other_exceptions_are_not_swallowed() -> None:
    """A bug is a traceback (exit 1 from Python), not a tidy `Error:` line that hides it."""
    def bug() -> None:
        raise KeyError("missing")

    group = PromenadeGroup("promenade")
    group.add_command(click.Command("bug", callback=bug))
    result = CliRunner().invoke(group, ["bug"])
    assert isinstance(result.exception, KeyError) and "Error:" not in result.stderr
