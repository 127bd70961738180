"""Where a config comes from: `.env` beside it, `${VAR}` interpolation, override files
and `-c` given more than once. Problems name the file and line that set the value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promenade_core.config.interpolate import Interpolated, InterpolationError, interpolate
from promenade_core.config.load import load_config
from promenade_core.errors import ConfigError


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path, *extra: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, extra)
    return [str(p) for p in info.value.problems]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test variable leaks in; files are named relative to tmp_path in messages."""
    monkeypatch.chdir(tmp_path)
    for name in ("PM_TEST_A", "PM_TEST_PORT", "PM_TEST_EMPTY", "PM_TEST_URL"):
        monkeypatch.delenv(name, raising=False)


# -------------------------------------------------------------------- interpolation

ENV = {"A": "1", "EMPTY": "", "NEST": "n"}


@pytest.mark.parametrize(("text", "result"), [
    ("plain", "plain"),
    ("${A}", "1"),
    ("x${A}y", "x1y"),
    ("$$", "$"),
    ("$${A}", "${A}"),
    ("$$HOME", "$HOME"),
    ("$HOME and $PORT", "$HOME and $PORT"),      # bare: the shell's
    ("${B:-dflt}", "dflt"),
    ("${EMPTY:-dflt}", "dflt"),
    ("${EMPTY-dflt}", ""),
    ("${B-dflt}", "dflt"),
    ("${A:-dflt}", "1"),
    ("${B:-${NEST}}", "n"),
    ("${A:+set}", "set"),
    ("${EMPTY:+set}", ""),
    ("${EMPTY+set}", "set"),
    ("${B+set}", ""),
    ("${A:?needed}", "1"),
])
def test_interpolation_forms(text: str, result: str) -> None:
    got = interpolate(text, ENV.get)
    assert got == result
    assert isinstance(got, Interpolated) == ("${" in text.replace("$${", ""))


@pytest.mark.parametrize(("text", "words"), [
    ("${B}", "B is not set (set it in the environment or in .env, give a default with "
             "${B:-value}, or write $${B} if the shell should expand it)"),
    ("${B:?give B}", "B is not set: give B"),
    ("${EMPTY:?}", "EMPTY is empty"),
    ("${B?}", "B is not set"),
    ("${A", "never closed"),
    ("${}", "does not start with a variable name"),
    ("${9x}", "does not start with a variable name"),
    ("${A!x}", "is not understood"),
])
def test_interpolation_errors(text: str, words: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate(text, ENV.get)
    assert words in str(info.value)


def test_every_string_value_is_interpolated_from_environ_then_dotenv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PM_TEST_A", "from-environ")
    (tmp_path / "sub").mkdir()
    write(tmp_path, ".env", "PM_TEST_A=from-dotenv\nPM_TEST_PORT=5123\nSUB=sub\n"
                            "PM_TEST_URL=postgres://db/x\n")
    config = load_config(write(tmp_path, "promenade.yaml", """
        manager: {dependency_timeout: "${TIMEOUT:-12}"}
        services:
          api:
            command: run --url ${PM_TEST_URL} --a ${PM_TEST_A} $$HOME $PORT
            directory: ${SUB}
            port: ${PM_TEST_PORT}
            hostname: api-${SUB}.test
            autostart: ${START:-false}
            env: {DB: "${PM_TEST_URL}", LITERAL: "$${NOT}"}
    """))
    api = config.services["api"]
    assert api.command == "run --url postgres://db/x --a from-environ $HOME $PORT"
    assert api.directory == tmp_path / "sub" and api.port == 5123
    assert api.hostname == "api-sub.test" and api.autostart is False
    assert api.env["DB"] == "postgres://db/x" and api.env["LITERAL"] == "${NOT}"
    assert config.manager.dependency_timeout == 12


def test_unset_variables_are_problems_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "promenade.yaml", """
        services:
          api:
            command: run ${PM_TEST_URL}
            port: ${PM_TEST_PORT:-not-a-port}
            env: {X: "${PM_TEST_EMPTY:?set PM_TEST_EMPTY to the token}"}
    """)
    found = problems(path)
    assert found[0].startswith("promenade.yaml:4: services.api.command: PM_TEST_URL is not "
                               "set (") and "$${PM_TEST_URL}" in found[0]
    assert found[1] == ("promenade.yaml:5: services.api.port: must be a port from 1 to 65535 "
                        "or auto, got "
                        "'not-a-port' (what ${...} gave)")
    assert found[2] == ("promenade.yaml:6: services.api.env.X: PM_TEST_EMPTY is not set: "
                        "set PM_TEST_EMPTY to the token")


def test_a_quoted_number_is_still_refused(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, "promenade.yaml",
                              'services:\n  api: {command: x, port: "5001"}\n'))
    assert "remove the quotes" in found


# -------------------------------------------------------------------------- .env

def test_dotenv_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, ".env", "ALL=dotenv\nDEF=dotenv\nFILE=dotenv\nOWN=dotenv\nONLY=dotenv\n")
    write(tmp_path, "api.env", "FILE=env_file\nOWN=env_file\n")
    config = load_config(write(tmp_path, "promenade.yaml", """
        defaults: {env: {DEF: defaults, FILE: defaults, OWN: defaults}}
        services:
          api: {command: x, env_file: api.env, env: {OWN: own}}
    """))
    env = config.services["api"].env
    assert (env["ALL"], env["DEF"], env["FILE"], env["OWN"]) == (
        "dotenv", "defaults", "env_file", "own")
    assert dict(config.dotenv_values)["ONLY"] == "dotenv"


def test_dotenv_false_turns_off_both_uses(tmp_path: Path) -> None:
    write(tmp_path, ".env", "A=1\n")
    path = write(tmp_path, "promenade.yaml", """
        manager: {dotenv: false}
        services: {api: {command: "x ${A:-none}"}}
    """)
    config = load_config(path)
    assert config.services["api"].command == "x none" and "A" not in config.services["api"].env
    assert tmp_path / ".env" not in config.watched_files


def test_a_malformed_dotenv_is_a_problem_with_its_own_path_and_line(tmp_path: Path) -> None:
    write(tmp_path, ".env", "GOOD=1\nnot a line\n")
    found = problems(write(tmp_path, "promenade.yaml", "services: {api: {command: x}}\n"))
    assert len(found) == 1 and found[0].startswith(".env:2: ")


# ----------------------------------------------------------------- override files

BASE = """
    services:
      api:
        command: flask run
        port: 5001
        env: {A: base, B: base}
      web:
        command: npm run dev
        depends_on: [api]
"""


def test_override_file_beside_the_config_merges_on_top(tmp_path: Path) -> None:
    path = write(tmp_path, "promenade.yaml", BASE)
    write(tmp_path, "promenade.override.yaml", """
        services:
          api:
            port: 5002
            env: {B: override}
          worker:
            command: celery worker
          web:
            depends_on: []
    """)
    config = load_config(path)
    api = config.services["api"]
    assert (api.command, api.port, dict(api.own_env)) == (
        "flask run", 5002, {"A": "base", "B": "override"})
    assert list(config.services) == ["api", "web", "worker"]
    assert config.services["web"].depends_on == ()          # lists replace
    assert config.files == (path, tmp_path / "promenade.override.yaml")


def test_problems_name_the_file_that_set_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "promenade.yaml", BASE)
    write(tmp_path, "promenade.override.yaml", """
        services:
          api:
            port: 70000
          extra: {port: 5003}
    """)
    found = problems(path)
    assert "promenade.override.yaml:4: services.api.port: must be a port from 1 to " \
           "65535, got 70000" in found
    assert any(p.startswith("promenade.override.yaml:5: services.extra.command: is required")
               for p in found), found


def test_repeated_config_files_later_ones_win_and_no_auto_override(tmp_path: Path) -> None:
    path = write(tmp_path, "promenade.yaml", BASE)
    write(tmp_path, "promenade.override.yaml", "services: {api: {port: 9999}}\n")
    dev = write(tmp_path, "dev.yaml", "services: {api: {port: 5010}}\n")
    mine = write(tmp_path, "mine.yaml", "services: {api: {port: 5020}}\n")
    config = load_config(path, [dev, mine])
    assert config.services["api"].port == 5020
    assert config.files == (path, dev, mine)


def test_an_unreadable_override_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "promenade.yaml", BASE)
    (tmp_path / "promenade.override.yaml").mkdir()
    (found,) = problems(path)
    assert found.startswith("promenade.override.yaml: config file ")


def test_a_broken_override_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "promenade.yaml", BASE)
    write(tmp_path, "promenade.override.yaml", "services:\n  api: [\n")
    (found,) = problems(path)
    assert found.startswith("promenade.override.yaml:") and "YAML syntax error" in found


@given(st.text(alphabet="${}:-?+AB_9x ", max_size=40))
@settings(max_examples=400, deadline=None)
def test_interpolation_never_fails_otherwise(text: str) -> None:
    """Any text gives a string or an InterpolationError, never another exception."""
    try:
        assert isinstance(interpolate(text, ENV.get), str)
    except InterpolationError:
        pass
