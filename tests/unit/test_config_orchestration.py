"""The orchestration keys of promenade.yaml: depends_on conditions, autostart, the stop
settings, exec and log ready checks, restart_after_failures and watch. Every mistake is
reported with file, line and key, like the rest of the config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from promenade_core.config.choices import Condition, ReadyType, StopSignal
from promenade_core.config.load import load_config
from promenade_core.config.model import Config, Watch, dependants, with_dependencies
from promenade_core.errors import ConfigError, Problem


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "promenade.yaml"
    path.write_text(textwrap.dedent(text))
    return load_config(path)


def problems(tmp_path: Path, text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    found: list[Problem] = info.value.problems
    return [(p.line, p.key, p.message) for p in found]


TASKS = """\
services:
  migrate:
    command: ./migrate
    restart_policy: never
  db:
    command: postgres
    ready_check: {type: exec, command: "pg_isready -h 127.0.0.1", interval: 2, timeout: 5}
  cache:
    command: redis-server
  api:
    command: flask run
    depends_on:
      migrate: {condition: completed_successfully}
      db: {condition: healthy}
      cache: {condition: started}
  web:
    command: npm run dev
    depends_on: [api]
    autostart: false
    ready_check: {type: log, pattern: "ready in \\\\d+ ms"}
    stop_signal: SIGINT
    stop_timeout: 2.5
    stop_command: docker stop web
    watch: {paths: [src, "*.toml"], ignore: ["*.log"]}
"""


def test_the_mapping_form_loads_conditions_and_the_list_form_none(tmp_path: Path) -> None:
    config = load(tmp_path, TASKS)
    api, web = config.services["api"], config.services["web"]
    assert api.depends_on == ("migrate", "db", "cache")
    assert dict(api.conditions) == {"migrate": Condition.COMPLETED_SUCCESSFULLY,
                                    "db": Condition.HEALTHY, "cache": Condition.STARTED}
    assert web.depends_on == ("api",) and web.condition("api") is None
    assert api.autostart and not web.autostart


def test_exec_log_and_stop_settings_load(tmp_path: Path) -> None:
    config = load(tmp_path, TASKS)
    db, web = config.services["db"], config.services["web"]
    assert db.ready_check is not None and db.ready_check.type is ReadyType.EXEC
    assert db.ready_check.command == "pg_isready -h 127.0.0.1" and not db.ready_check.needs_port
    assert web.ready_check is not None and web.ready_check.pattern == r"ready in \d+ ms"
    assert (web.stop_signal, web.stop_timeout, web.stop_command) == (
        StopSignal.INT, 2.5, "docker stop web")
    assert web.watch == Watch(("src", "*.toml"), ("*.log",))
    defaults = config.services["cache"]
    assert (defaults.stop_signal, defaults.stop_timeout, defaults.stop_command,
            defaults.watch) == (StopSignal.TERM, 5, None, None)
    assert StopSignal.INT.number == 2 and StopSignal.KILL.number == 9


def test_to_dict_carries_the_new_keys(tmp_path: Path) -> None:
    web = load(tmp_path, TASKS).services["web"].to_dict()
    assert web["autostart"] is False and web["stop_signal"] == "INT"
    assert web["watch"] == {"paths": ("src", "*.toml"), "ignore": ("*.log",)}
    api = load(tmp_path, TASKS).services["api"].to_dict()
    assert api["conditions"]["db"] == "healthy"


def test_closure_and_dependants(tmp_path: Path) -> None:
    services = load(tmp_path, TASKS).services
    assert with_dependencies(services, ["web"]) == ("migrate", "db", "cache", "api", "web")
    assert with_dependencies(services, ["cache"]) == ("cache",)
    assert dependants(services)["api"] == ("web",)
    assert dependants(services)["db"] == ("api",)


@pytest.mark.parametrize(("body", "line", "key", "words"), [
    ("    depends_on: {db: {condition: ready}}", 5, "services.api.depends_on.db.condition",
     "must be one of started, healthy, completed_successfully"),
    ("    depends_on: {db: healthy}", 5, "services.api.depends_on.db",
     "must be a mapping like {condition: healthy}"),
    ("    depends_on: {db: {condtion: healthy}}", 5, "services.api.depends_on.db.condtion",
     "did you mean 'condition'"),
    ("    depends_on: {dbb: {condition: started}}", 5, "services.api.depends_on.dbb",
     "unknown service 'dbb' (did you mean 'db'?)"),
    ("    depends_on: {db: {condition: healthy}}", 5, "services.api.depends_on.db.condition",
     "needs a ready_check on service 'db'"),
    ("    depends_on: 3", 5, "services.api.depends_on", "must be a list of service names"),
    ("    autostart: maybe", 5, "services.api.autostart", "must be true or false"),
    ("    stop_signal: TERMINATE", 5, "services.api.stop_signal",
     "must be one of TERM, INT, QUIT, HUP, USR1, USR2, KILL"),
    ("    stop_timeout: 0", 5, "services.api.stop_timeout", "positive number of seconds"),
    ("    stop_command: ''", 5, "services.api.stop_command", "must not be empty"),
    ("    ready_check: {type: exec}", 5, "services.api.ready_check.command",
     "is required for a ready_check of type exec"),
    ("    ready_check: {type: log, pattern: 'ready ('}", 5,
     "services.api.ready_check.pattern", "is not a valid regular expression"),
    ("    ready_check: {type: log}", 5, "services.api.ready_check.pattern", "is required"),
    ("    ready_check: {type: log, pattern: x, interval: 1}", 5,
     "services.api.ready_check.interval", "does not apply to a ready_check of type log"),
    ("    ready_check: {type: exec, command: x, path: /}", 5,
     "services.api.ready_check.path", "does not apply to a ready_check of type exec"),
    ("    ready_check: {type: exec, command: x, restart_after_failures: 0}", 5,
     "services.api.ready_check.restart_after_failures", "must be at least 1"),
    ("    ready_check: {type: tcp}", 5, "services.api.ready_check",
     "a ready_check of type tcp needs a 'port'"),
    ("    watch: {ignore: ['*.log']}", 5, "services.api.watch.paths", "is required"),
    ("    watch: {paths: [src], ignored: []}", 5, "services.api.watch.ignored",
     "did you mean 'ignore'"),
])
def test_mistakes_name_line_and_key(tmp_path: Path, body: str, line: int, key: str,
                                    words: str) -> None:
    text = f"services:\n  db:\n    command: postgres\n  api:\n{body}\n    command: x\n"
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0][:2] == (line, key), found
    assert words in found[0][2], found


def test_stop_signal_takes_either_spelling(tmp_path: Path) -> None:
    for word in ("INT", "SIGINT", "sigint"):
        config = load(tmp_path, f"services:\n  a:\n    command: x\n    stop_signal: {word}\n")
        assert config.services["a"].stop_signal is StopSignal.INT
