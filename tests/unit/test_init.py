"""`promenade init` in-process (CliRunner): the starter and a converted Procfile load
with the real loader, nothing is ever overwritten, and what was not converted is said."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from promenade_cli.init_cmd import STARTER, render_services, yaml_string
from promenade_cli.main import cli
from promenade_cli.procfile import parse_procfile
from promenade_core.config.load import load_config, load_config_text


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    yield tmp_path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="promenade")


def test_init_writes_a_starter_that_config_check_accepts(folder: Path) -> None:
    old = os.umask(0o022)
    try:
        result = run("init")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Wrote promenade.yaml: edit it, then run `promenade start`.\n"
    written = folder / "promenade.yaml"
    assert written.read_text() == STARTER
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    check = run("config", "check")
    assert check.exit_code == 0, check.output
    assert check.stdout == f"{written}: ok (1 services)\n"


def test_the_starter_is_commented_and_runs_something() -> None:
    config = load_config_text(STARTER, Path("/tmp/x/promenade.yaml"))
    assert config.services["web"].port == 8000
    assert config.services["web"].command == "python3 -m http.server $PORT"
    assert sum(line.lstrip().startswith("#") for line in STARTER.splitlines()) >= 10


def test_init_never_overwrites(folder: Path) -> None:
    (folder / "promenade.yaml").write_text("mine\n")
    result = run("init")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {folder / 'promenade.yaml'} already exists; init never "
                             "overwrites it (edit it, or remove it first)\n")
    assert (folder / "promenade.yaml").read_text() == "mine\n"


def test_init_does_not_follow_a_symlink_at_the_name(folder: Path) -> None:
    """A dangling symlink planted at promenade.yaml must not make init create its target."""
    (folder / "promenade.yaml").symlink_to(folder / "elsewhere.yaml")
    assert run("init").exit_code == 2
    assert not (folder / "elsewhere.yaml").exists()


def test_init_with_c_writes_there(folder: Path) -> None:
    (folder / "sub").mkdir()
    assert run("init", "-c", "sub/dev.yaml").exit_code == 0
    assert (folder / "sub" / "dev.yaml").read_text() == STARTER
    result = run("init", "-c", "a.yaml", "-c", "b.yaml")
    assert result.exit_code == 2 and "give -c once" in result.stderr


def test_init_from_procfile(folder: Path) -> None:
    (folder / "Procfile").write_text(
        "# processes\nweb: bundle exec rails s -p $PORT\nworker: celery worker\n"
        "oops no colon\nweb: again\n")
    (folder / ".env").write_text("PORT=3000\nSECRET_KEY=x\n")
    result = run("init", "--from", "Procfile")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Wrote promenade.yaml: 2 services from Procfile (web, worker).",
        "  web: port 3000 (its command uses $PORT)",
        ".env is kept as it is: Promenade reads .env beside promenade.yaml itself (for "
        "every service's environment and for ${VAR}).",
        "Next: `promenade config check`, then `promenade start`.",
    ]
    assert result.stderr.splitlines() == [
        "Warning: Procfile:4: skipped 'oops no colon': not `name: command`",
        "Warning: Procfile:5: skipped 'web': the name is already used on line 2",
    ]
    assert (folder / ".env").read_text() == "PORT=3000\nSECRET_KEY=x\n"
    config = load_config(folder / "promenade.yaml")
    assert {n: (s.command, s.port) for n, s in config.services.items()} == {
        "web": ("bundle exec rails s -p $PORT", 3000), "worker": ("celery worker", None)}
    assert run("config", "check").exit_code == 0


def test_init_from_a_procfile_in_another_folder_runs_there(folder: Path) -> None:
    app = folder / "app"
    app.mkdir()
    (app / "Procfile").write_text("web: ./run $PORT\n")
    (app / ".env").write_text("A=1\n")
    result = run("init", "--from", "app/Procfile")
    assert result.exit_code == 0, result.output
    assert f"Warning: {Path('app/.env')} is not beside promenade.yaml" in result.stderr
    assert load_config(folder / "promenade.yaml").services["web"].directory == app


@pytest.mark.parametrize(("procfile", "message"), [
    (None, "Error: Procfile does not exist\n"),
    ("just text\n", "Warning: Procfile:1: skipped 'just text': not `name: command`\n"
                    "Error: Procfile has no `name: command` line to convert; nothing written\n"),
    ("", "Error: Procfile has no `name: command` line to convert; nothing written\n"),
])
def test_init_from_an_unusable_procfile_writes_nothing(folder: Path, procfile: str | None,
                                                         message: str) -> None:
    if procfile is not None:
        (folder / "Procfile").write_text(procfile)
    result = run("init", "--from", "Procfile")
    assert result.exit_code == 2
    assert result.stderr == message
    assert not (folder / "promenade.yaml").exists()


@pytest.mark.parametrize("command", [
    "gunicorn app:app -b 0.0.0.0:$PORT", "echo 'a # b'", 'echo "quoted" # comment',
    "true", "123", "*glob", "- dash", "[x]", "{y}", "a: b", "echo ${X:-1} $$", "@at",
    "npm run dev -- --port $PORT", "% pct", "!tag", "&anchor", "|pipe", ">fold", "? q",
    "'single", 'x"y', "tab\there", "ünïcode ✓", "a\\b",
])
def test_every_command_survives_yaml_and_interpolation(tmp_path: Path, command: str) -> None:
    """The loaded config's command is the Procfile's, character for character."""
    conversion = parse_procfile(f"web: {command}\n")
    text = render_services(conversion.services, "Procfile")
    loaded = load_config_text(text, tmp_path / "promenade.yaml")
    assert loaded.services["web"].command == command


def test_yaml_string_is_plain_when_it_can_be() -> None:
    assert yaml_string("celery worker") == "celery worker"
    assert yaml_string("true") == '"true"'
    assert yaml_string("a # b") == '"a # b"'
