"""promenade.yaml: every rule reports file, line and key, and all problems come at once."""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from promenade_core.config.audit import security_warnings
from promenade_core.config.load import load_config, load_config_text
from promenade_core.config.lookup import display_path, find_config, search_folders
from promenade_core.config.model import Config, ManagerConfig, ReadyCheck, dependency_order
from promenade_core.config.rules import find_cycles
from promenade_core.errors import ConfigError, Problem


def write(folder: Path, text: str, name: str = "promenade.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


def problems(tmp_path: Path, text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.problems


def one_problem(tmp_path: Path, text: str) -> Problem:
    found = problems(tmp_path, text)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def assert_problem(found: Problem, line: int, key: str, *words: str) -> None:
    assert found.file.endswith("promenade.yaml"), found
    assert (found.line, found.key) == (line, key), str(found)
    for word in words:
        assert word in found.message, str(found)


# --------------------------------------------------------------------------- valid


def test_minimal_config_gets_every_default(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMENADE_ROUTER", raising=False)   # the suite's switch (conftest.py)
    config = load(tmp_path, "services:\n  api:\n    command: flask run\n")
    api = config.services["api"]
    assert config.path == tmp_path / "promenade.yaml"
    # the domain is the config folder's name (pytest's `test_minimal_…0`), sanitised
    assert config.manager == ManagerConfig(hostsd_socket=config.manager.hostsd_socket,
                                           domain="test-minimal-config-gets-every0.localhost")
    assert (api.directory, api.port, api.hostname, api.env_file) == (tmp_path, None, None, None)
    assert (api.restart_policy, api.depends_on, api.ready_check) == ("once", (), None)
    assert (dict(api.env), api.cors_proxy, api.line) == ({}, False, 2)
    # the override file and .env are watched before they exist: creating one reloads
    assert config.watched_files == (config.path, tmp_path / "promenade.override.yaml",
                                    tmp_path / ".env")
    assert config.files == (config.path,) and dict(config.dotenv_values) == {}


def test_spec_example_loads_with_relative_paths_resolved(tmp_path: Path) -> None:
    for folder in ("backend", "client", "docs/build"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / ".env.local").write_text("SECRET_KEY=abc\nFLASK_ENV=from-file\n")
    config = load(
        tmp_path,
        """\
        manager:
          port: 9000
          host: 127.0.0.1
          log_buffer_lines: 1000
          config_poll_interval: 5
        defaults:
          restart_policy: once
          env:
            NODE_ENV: development
        services:
          api:
            command: flask run --port 5001
            directory: ./backend
            port: 5001
            hostname: api.local
            env:
              FLASK_ENV: development
            env_file: .env.local
          frontend:
            command: npm run dev
            directory: ./client
            port: 3000
            hostname: app.local
            depends_on:
              - api
            ready_check:
              type: http
              path: /
              timeout: 30
          docs:
            command: python -m http.server 8080
            directory: ./docs/build
            port: 8080
            hostname: docs.local
          worker:
            command: python worker.py
            directory: ./backend
            restart_policy: always
        """,
    )
    assert list(config.services) == ["api", "frontend", "docs", "worker"]
    api, frontend = config.services["api"], config.services["frontend"]
    assert api.directory == tmp_path / "backend"
    assert api.env == {"NODE_ENV": "development", "SECRET_KEY": "abc", "FLASK_ENV": "development"}
    assert api.own_env == {"FLASK_ENV": "development"}
    assert api.env_file == tmp_path / ".env.local"
    assert frontend.ready_check == ReadyCheck("http", "/", 30, 2)
    assert frontend.depends_on == ("api",)
    assert config.services["worker"].restart_policy == "always"
    assert config.services["docs"].line == 30
    assert config.watched_files == (config.path, tmp_path / "promenade.override.yaml",
                                    tmp_path / ".env", tmp_path / ".env.local")


def test_config_is_immutable_hashable_and_comparable(tmp_path: Path) -> None:
    text = "services:\n  api:\n    command: x\n    env: {A: '1'}\n"
    first, second = load(tmp_path, text), load(tmp_path, text)
    assert first == second and hash(first) == hash(second)
    with pytest.raises(FrozenInstanceError):
        first.services["api"].command = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        first.services["api"].env["A"] = "2"  # type: ignore[index]


def test_to_dict_is_json_with_paths_as_strings(tmp_path: Path) -> None:
    (tmp_path / "e.env").write_text("TOKEN=t\n")
    config = load(
        tmp_path,
        """\
        services:
          api:
            command: x
            port: 5001
            env_file: e.env
            ready_check: {type: tcp}
        """,
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert data["path"] == str(tmp_path / "promenade.yaml")
    assert data["manager"]["port"] == 9000
    api = data["services"]["api"]
    assert api["directory"] == str(tmp_path) and api["env_file"] == str(tmp_path / "e.env")
    assert api["env"] == {"TOKEN": "t"} and api["own_env"] == {}
    assert api["ready_check"] == {"type": "tcp", "path": "/", "timeout": 30, "interval": 2,
                                  "command": None, "pattern": None,
                                  "restart_after_failures": None}
    assert data["watched_files"] == [str(tmp_path / name) for name in (
        "promenade.yaml", "promenade.override.yaml", ".env", "e.env")]


def test_text_values_keep_exactly_what_was_typed(tmp_path: Path) -> None:
    """YAML 1.1 would give False for `no`, 1.1 for `1.10` and True for `true`."""
    config = load(
        tmp_path,
        """\
        defaults:
          env: {D: on}
        services:
          no:
            command: true
            env:
              DEBUG: yes
              VERSION: 1.10
              WORKERS: 4
              QUOTED: "0o17"
              OCTAL: 0o17
        """,
    )
    svc = config.services["no"]
    assert svc.command == "true"
    assert dict(svc.env) == {
        "D": "on",
        "DEBUG": "yes",
        "VERSION": "1.10",
        "WORKERS": "4",
        "QUOTED": "0o17",
        "OCTAL": "0o17",
    }


def test_merge_keys_and_x_keys_share_settings(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        x-common: &common
          restart_policy: always
          env: {A: "1"}
        services:
          api:
            <<: *common
            command: a
          web:
            <<: *common
            command: b
            restart_policy: never
        """,
    )
    assert config.services["api"].restart_policy == "always"
    assert config.services["web"].restart_policy == "never"
    assert config.services["web"].env == {"A": "1"}


# --------------------------------------------------------------------------- file level


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file_is_one_clear_problem(tmp_path: Path, text: str) -> None:
    assert_problem(one_problem(tmp_path, text), 1, "", "empty", "services")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert_problem(one_problem(tmp_path, "- api\n- web\n"), 1, "", "mapping", "a list")


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    found = one_problem(tmp_path, "services:\n  api:\n    command: [unclosed\n  web: x\n")
    assert found.line is not None and found.line >= 3
    assert "YAML syntax error" in found.message


def test_duplicate_keys_are_refused_with_both_lines(tmp_path: Path) -> None:
    text = "services:\n  api:\n    command: a\n    command: b\n"
    assert_problem(one_problem(tmp_path, text), 4, "services.api.command", "first on line 3")


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    found = problems(tmp_path, "\n".join(lines) + "\nservices: {api: {command: x}}\n")
    assert any("alias" in p.message for p in found)


def test_recursive_alias_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    found = problems(tmp_path, "x-loop: &l [*l]\nservices: {api: {command: x}}\n")
    assert any("refers to itself" in p.message for p in found)


def test_deep_nesting_odd_keys_and_bad_merges_are_problems(tmp_path: Path) -> None:
    deep = "x-deep: " + "[" * 60 + "]" * 60 + "\n"
    odd = "? [a, b]\n: 1\n"
    merge = "x-m:\n  <<: [1]\n"
    found = problems(tmp_path, deep + odd + merge + "services: {api: {command: x}}\n")
    assert [(p.line, p.message.split(" (")[0]) for p in found] == [
        (1, "YAML is nested too deeply"),
        (2, "keys must be plain words, not lists or mappings"),
        (5, "'<<' merges only mappings"),
    ]


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_bytes(b"services:\n  api:\n    command: \xff\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path / "bad.yaml")


def test_messages_name_files_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = one_problem(tmp_path, "services:\n  api: {command: x, prot: 1}\n")
    assert str(found).startswith("promenade.yaml:2: services.api.prot: unknown key")
    assert display_path(Path("/elsewhere/p.yaml")) == "/elsewhere/p.yaml"


# --------------------------------------------------------------------------- services


def test_services_is_required(tmp_path: Path) -> None:
    assert_problem(one_problem(tmp_path, "manager: {port: 9000}\n"), 1, "", "'services'")


@pytest.mark.parametrize("value", ["{}", "[api]", "~"])
def test_services_needs_at_least_one_service(tmp_path: Path, value: str) -> None:
    assert_problem(one_problem(tmp_path, f"services: {value}\n"), 1, "services")


def test_command_is_required(tmp_path: Path) -> None:
    found = one_problem(tmp_path, "services:\n  api:\n    port: 5001\n")
    assert_problem(found, 2, "services.api.command", "required")


@pytest.mark.parametrize("value", ['""', "'   '", "~", "[a, b]"])
def test_command_must_be_non_empty_text(tmp_path: Path, value: str) -> None:
    found = one_problem(tmp_path, f"services:\n  api:\n    command: {value}\n")
    assert_problem(found, 3, "services.api.command")


def test_a_service_needs_a_mapping(tmp_path: Path) -> None:
    found = one_problem(tmp_path, "services:\n  api: flask run\n")
    assert_problem(found, 2, "services.api", "mapping", "'flask run'")


@pytest.mark.parametrize("name", ["my api", "api.v2", "api/x", "émoji"])
def test_service_names_are_letters_digits_underscore_dash(tmp_path: Path, name: str) -> None:
    found = one_problem(tmp_path, f"services:\n  '{name}':\n    command: x\n")
    assert_problem(found, 2, f"services.{name}", "invalid service name")


@pytest.mark.parametrize(
    ("text", "line", "key", "word", "hint"),
    [
        ("servces: {}\nservices: {a: {command: x}}\n", 1, "servces", "servces", "services"),
        ("manager: {prot: 1}\nservices: {a: {command: x}}\n", 1, "manager.prot", "prot", "port"),
        ("defaults:\n  envv: {}\nservices: {a: {command: x}}\n", 2, "defaults.envv", "envv", "env"),
        (
            "services:\n  a:\n    command: x\n    depend_on: [b]\n",
            4,
            "services.a.depend_on",
            "depend_on",
            "depends_on",
        ),
        (
            "services:\n  a:\n    command: x\n    port: 1\n    ready_check:\n      type: tcp\n"
            "      timout: 3\n",
            7,
            "services.a.ready_check.timout",
            "timout",
            "timeout",
        ),
    ],
)
def test_unknown_keys_are_refused_at_every_level_with_a_suggestion(
    tmp_path: Path, text: str, line: int, key: str, word: str, hint: str
) -> None:
    found = one_problem(tmp_path, text)
    assert_problem(found, line, key, f"unknown key {word!r} (did you mean {hint!r}?)")


def test_unknown_key_without_a_close_match_has_no_suggestion(tmp_path: Path) -> None:
    found = one_problem(tmp_path, "services:\n  a:\n    command: x\n    zzz: 1\n")
    assert found.message == "unknown key 'zzz'"


# --------------------------------------------------------------------------- ports


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", ["1 to 65535", "0"]),
        ("65536", ["1 to 65535"]),
        ("true", ["whole number", "true"]),
        ('"5001"', ["whole number", "remove the quotes"]),
        ("50.5", ["whole number"]),
    ],
)
def test_port_is_an_integer_from_1_to_65535(tmp_path: Path, value: str, words: list[str]) -> None:
    found = one_problem(tmp_path, f"services:\n  api:\n    command: x\n    port: {value}\n")
    assert_problem(found, 4, "services.api.port", *words)


def test_ports_are_unique_and_the_duplicate_names_the_other_service(tmp_path: Path) -> None:
    text = "services:\n  api: {command: a, port: 5001}\n  web: {command: b, port: 5001}\n"
    assert_problem(one_problem(tmp_path, text), 3, "services.web.port", "service 'api'")


def test_a_service_port_cannot_be_the_dashboard_port(tmp_path: Path) -> None:
    text = "services:\n  api: {command: a, port: 9000}\n"
    assert_problem(one_problem(tmp_path, text), 2, "services.api.port", "dashboard", "9000")


def test_cors_proxy_port_differs_from_ports_proxies_and_manager(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        manager: {port: 9100}
        services:
          api: {command: a, port: 5001, cors_proxy: true, cors_proxy_port: 5001}
          web: {command: b, port: 5002, cors_proxy: true, cors_proxy_port: 9100}
          doc: {command: c, port: 5003, cors_proxy: true, cors_proxy_port: 6000}
          etc: {command: d, port: 5004, cors_proxy: true, cors_proxy_port: 6000}
        """,
    )
    assert [(p.line, p.key) for p in found] == [
        (3, "services.api.cors_proxy_port"),
        (4, "services.web.cors_proxy_port"),
        (6, "services.etc.cors_proxy_port"),
    ]
    assert "service 'api'" in found[0].message
    assert "manager.port" in found[1].message
    assert "CORS proxy of service 'doc'" in found[2].message


def test_cors_proxy_needs_both_ports_without_the_router(tmp_path: Path) -> None:
    found = problems(tmp_path, "manager: {router: false}\nservices:\n  api:\n"
                               "    command: a\n    cors_proxy: true\n")
    assert {p.message for p in found} == {
        "cors_proxy needs a 'port' to forward to",
        "cors_proxy needs a 'cors_proxy_port' to listen on (or the router: "
        "manager.router: true and no hostname)",
    }
    assert all((p.line, p.key) == (5, "services.api.cors_proxy") for p in found)


def test_with_the_router_cors_proxy_needs_no_second_port(tmp_path: Path) -> None:
    config = load(tmp_path, "manager: {router: true}\n"
                            "services:\n  api: {command: a, port: 5001, cors_proxy: true}\n")
    assert config.services["api"].cors_proxy and config.services["api"].cors_proxy_port is None


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ('["http://localhost:3000", "https://app.local"]', True),
        ('"*"', True),
        ('["http://localhost:3000/"]', False),
        ('["localhost:3000"]', False),
        ('["ftp://x"]', False),
        ("[1]", False),
    ],
)
def test_cors_allow_origins_are_origins(tmp_path: Path, value: str, ok: bool) -> None:
    text = f"services:\n  api:\n    command: a\n    cors_allow_origins: {value}\n"
    if ok:
        assert load(tmp_path, text).services["api"].cors_allow_origins
    else:
        assert_problem(one_problem(tmp_path, text), 4, "services.api.cors_allow_origins")


# --------------------------------------------------------------------------- hostnames


def test_hostname_needs_a_port(tmp_path: Path) -> None:
    text = "services:\n  api:\n    command: a\n    hostname: api.local\n"
    assert_problem(one_problem(tmp_path, text), 4, "services.api.hostname", "'port'")


@pytest.mark.parametrize("name", ["bad_name.local", "-api.local", "localhost", "a..b", "a b"])
def test_hostname_follows_the_hostsd_rule(tmp_path: Path, name: str) -> None:
    text = f"services:\n  api:\n    command: a\n    port: 5001\n    hostname: '{name}'\n"
    assert_problem(one_problem(tmp_path, text), 5, "services.api.hostname", "hostname")


def test_hostnames_are_unique_ignoring_case(tmp_path: Path) -> None:
    text = (
        "services:\n  api: {command: a, port: 5001, hostname: api.local}\n"
        "  web: {command: b, port: 5002, hostname: API.Local}\n"
    )
    assert_problem(one_problem(tmp_path, text), 3, "services.web.hostname", "service 'api'")


# --------------------------------------------------------------------------- depends_on


def test_depends_on_accepts_one_name_as_a_string(tmp_path: Path) -> None:
    config = load(tmp_path, "services:\n  db: {command: a}\n  api: {command: b, depends_on: db}\n")
    assert config.services["api"].depends_on == ("db",)


def test_depends_on_unknown_service_suggests_the_close_one(tmp_path: Path) -> None:
    text = "services:\n  api: {command: a}\n  web:\n    command: b\n    depends_on:\n      - apii\n"
    found = one_problem(tmp_path, text)
    assert_problem(found, 6, "services.web.depends_on", "unknown service 'apii'")
    assert str(found).endswith(
        "promenade.yaml:6: services.web.depends_on: unknown service 'apii' (did you mean 'api'?)"
    )


def test_a_service_cannot_depend_on_itself(tmp_path: Path) -> None:
    text = "services:\n  api: {command: a, depends_on: [api]}\n"
    assert_problem(one_problem(tmp_path, text), 2, "services.api.depends_on", "itself")


def test_depends_on_items_must_be_names(tmp_path: Path) -> None:
    text = "services:\n  api:\n    command: a\n    depends_on:\n      - {x: 1}\n"
    assert_problem(one_problem(tmp_path, text), 5, "services.api.depends_on", "must be text")


def test_each_dependency_cycle_is_reported_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        services:
          a: {command: x, depends_on: [b]}
          b: {command: x, depends_on: [a]}
          c: {command: x, depends_on: [d]}
          d: {command: x, depends_on: [e]}
          e: {command: x, depends_on: [c]}
          f: {command: x, depends_on: [a, c]}
        """,
    )
    assert [str(p).split(": ", 1)[1] for p in found] == [
        "services.a.depends_on: dependency cycle: a -> b -> a",
        "services.c.depends_on: dependency cycle: c -> d -> e -> c",
    ]


def test_find_cycles_handles_long_chains_without_recursion() -> None:
    graph = {f"s{i}": [f"s{i + 1}"] for i in range(5000)}
    graph["s5000"] = ["s0"]
    (cycle,) = find_cycles(graph)
    assert (len(cycle), cycle[0], cycle[-1]) == (5002, "s0", "s0")


def test_dependency_order_puts_dependencies_first_then_file_order(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        services:
          web: {command: x, depends_on: [api]}
          worker: {command: x}
          api: {command: x, depends_on: [db]}
          db: {command: x}
        """,
    )
    assert dependency_order(config.services) == ("worker", "db", "api", "web")


# --------------------------------------------------------------------------- policies, checks


def test_defaults_restart_policy_applies_unless_the_service_has_one(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "defaults: {restart_policy: never}\nservices:\n  a: {command: x}\n"
        "  b: {command: x, restart_policy: always}\n",
    )
    assert config.defaults.restart_policy == "never"
    assert [s.restart_policy for s in config.services.values()] == ["never", "always"]


def test_restart_policy_must_be_known(tmp_path: Path) -> None:
    text = "services:\n  a: {command: x, restart_policy: allways}\n"
    found = one_problem(tmp_path, text)
    assert_problem(found, 2, "services.a.restart_policy", "never, once, always", "'always'")


def test_a_yaml_boolean_gets_a_quoting_hint(tmp_path: Path) -> None:
    found = one_problem(tmp_path, "manager: {hosts_management: off}\nservices: {a: {command: x}}\n")
    assert_problem(found, 1, "manager.hosts_management", "auto, manual, disabled", "quote it")


def test_ready_check_gets_defaults_and_needs_a_port(tmp_path: Path) -> None:
    config = load(tmp_path, "services:\n  a: {command: x, port: 5001, ready_check: {type: tcp}}\n")
    assert config.services["a"].ready_check == ReadyCheck("tcp")
    text = "services:\n  a:\n    command: x\n    ready_check: {type: http}\n"
    assert_problem(one_problem(tmp_path, text), 4, "services.a.ready_check", "'port'")


@pytest.mark.parametrize(
    ("check", "key", "word"),
    [
        ("{type: udp}", "type", "http, tcp"),
        ("{path: /}", "type", "required"),
        ("{type: http, path: health}", "path", "start with '/'"),
        ("{type: http, path: '/a b'}", "path", "spaces"),
        ("{type: http, timeout: 0}", "timeout", "positive"),
        ("{type: http, interval: -1}", "interval", "positive"),
        ("{type: http, interval: 1s}", "interval", "number of seconds"),
    ],
)
def test_ready_check_fields(tmp_path: Path, check: str, key: str, word: str) -> None:
    text = f"services:\n  a:\n    command: x\n    port: 5001\n    ready_check: {check}\n"
    assert_problem(one_problem(tmp_path, text), 5, f"services.a.ready_check.{key}", word)


# --------------------------------------------------------------------------- manager


@pytest.mark.parametrize(
    ("setting", "key", "word"),
    [
        ("port: 70000", "port", "1 to 65535"),
        ("host: ''", "host", "empty"),
        ("log_buffer_lines: 0", "log_buffer_lines", "at least 1"),
        ("log_buffer_lines: 1.5", "log_buffer_lines", "whole number"),
        ("config_poll_interval: 0", "config_poll_interval", "positive"),
        ("dependency_timeout: -5", "dependency_timeout", "positive"),
        ("hosts_management: sometimes", "hosts_management", "auto, manual, disabled"),
        ("hostsd_socket: run/h.sock", "hostsd_socket", "absolute"),
        ("bus_tcp: 0.0.0.0:5555", "bus_tcp", "loopback"),
        ("bus_tcp: 127.0.0.1", "bus_tcp", "127.0.0.1:PORT"),
        ("bus_tcp: 127.0.0.1:99999", "bus_tcp", "127.0.0.1:PORT"),
        ("domain: test", "domain", "a label of its own"),
        ("domain: localhost", "domain", "reserved"),
        ("domain: my_app.localhost", "domain", "label 'my_app'"),
        ("router: maybe", "router", "true or false"),
    ],
)
def test_manager_settings(tmp_path: Path, setting: str, key: str, word: str) -> None:
    text = f"manager:\n  {setting}\nservices: {{a: {{command: x}}}}\n"
    assert_problem(one_problem(tmp_path, text), 2, f"manager.{key}", word)


def test_manager_settings_load(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        manager:
          port: 9100
          host: localhost
          log_buffer_lines: 50
          config_poll_interval: 0.5
          hosts_management: manual
          hostsd_socket: /tmp/h.sock
          dependency_timeout: 10
          bus_tcp: 127.0.0.1:5555
          domain: shop.localhost
          router: false
        services: {a: {command: x}}
        """,
    )
    assert config.manager == ManagerConfig(
        9100, "localhost", 50, 0.5, "manual", "/tmp/h.sock", 10, "127.0.0.1:5555",
        domain="shop.localhost", router=False,
    )


def test_promenade_router_0_turns_the_router_off_unless_the_config_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test suite's switch: every manager it starts would otherwise start a router."""
    monkeypatch.setenv("PROMENADE_ROUTER", "0")
    assert not load(tmp_path, "services: {a: {command: x}}\n").manager.router
    text = "manager: {router: true}\nservices: {a: {command: x}}\n"
    assert load(tmp_path, text).manager.router


def test_bus_tcp_port_is_claimed_like_any_other(tmp_path: Path) -> None:
    text = "manager: {bus_tcp: '127.0.0.1:5001'}\nservices: {a: {command: x, port: 5001}}\n"
    assert_problem(one_problem(tmp_path, text), 2, "services.a.port", "manager.bus_tcp")


def test_hostsd_socket_env_changes_the_default_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMENADE_HOSTSD_SOCKET", "/tmp/from-env.sock")
    plain = "services: {a: {command: x}}\n"
    assert load(tmp_path, plain).manager.hostsd_socket == "/tmp/from-env.sock"
    explicit = "manager: {hostsd_socket: /tmp/explicit.sock}\n" + plain
    assert load(tmp_path, explicit).manager.hostsd_socket == "/tmp/explicit.sock"
    monkeypatch.delenv("PROMENADE_HOSTSD_SOCKET")
    assert load(tmp_path, plain).manager.hostsd_socket == "/run/promenade/hostsd.sock"


# --------------------------------------------------------------------------- paths and env


def test_directory_is_resolved_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "proj" / "backend").mkdir(parents=True)
    path = write(tmp_path / "proj", "services:\n  a: {command: x, directory: backend/../backend}\n")
    assert load_config(path).services["a"].directory == tmp_path / "proj" / "backend"
    home = Path("~").expanduser()
    config = load_config_text("services:\n  a: {command: x, directory: '~'}\n", path)
    assert config.services["a"].directory == home


def test_a_missing_directory_is_reported_at_load(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    found = problems(
        tmp_path,
        "services:\n  a: {command: x, directory: nope}\n  b: {command: x, directory: file}\n",
    )
    assert_problem(
        found[0], 2, "services.a.directory", f"directory {tmp_path / 'nope'} does not exist"
    )
    assert_problem(found[1], 3, "services.b.directory", "not a folder")


def test_env_merges_defaults_then_env_file_then_service_env(tmp_path: Path) -> None:
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / ".env").write_text("A=file\nB=file\n")
    config = load(
        tmp_path,
        """\
        defaults:
          env: {A: defaults, B: defaults, C: defaults}
        services:
          api:
            command: x
            env_file: backend/.env
            env: {B: service}
        """,
    )
    api = config.services["api"]
    assert dict(api.env) == {"A": "file", "B": "service", "C": "defaults"}
    assert dict(api.own_env) == {"B": "service"}
    assert config.defaults.env == {"A": "defaults", "B": "defaults", "C": "defaults"}


def test_a_missing_env_file_names_its_resolved_path_and_the_config_line(tmp_path: Path) -> None:
    text = "services:\n  api:\n    command: x\n    env_file: ../secrets/.env\n"
    found = one_problem(tmp_path, text)
    resolved = tmp_path.parent / "secrets" / ".env"
    assert_problem(found, 4, "services.api.env_file", f"env file {resolved} does not exist")


def test_a_malformed_env_file_line_names_the_env_file_and_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / ".env").write_text("A=1\n# note\nFOO\n")
    found = one_problem(tmp_path, "services:\n  api: {command: x, env_file: backend/.env}\n")
    assert str(found) == "backend/.env:3: malformed line (expected KEY=VALUE)"


@pytest.mark.parametrize(
    ("entry", "key", "word"),
    [
        ("1BAD: x", "1BAD", "invalid variable name '1BAD'"),
        ("MY-VAR: x", "MY-VAR", "invalid variable name"),
        ("EMPTY:", "EMPTY", 'EMPTY: ""'),
        ("LIST: [a, b]", "LIST", "single value"),
    ],
)
def test_env_names_and_values(tmp_path: Path, entry: str, key: str, word: str) -> None:
    text = f"services:\n  api:\n    command: x\n    env:\n      {entry}\n"
    assert_problem(one_problem(tmp_path, text), 5, f"services.api.env.{key}", word)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OK=1\nbroken line\n")
    found = problems(
        tmp_path,
        """\
        manager:
          port: 0
        services:
          api:
            command: flask run
            port: 5001
            env_file: .env
          web:
            command: npm run dev
            port: 5001
            hostname: web_app.local
            depends_on: [apii]
            restart_policy: sometimes
          worker:
            directory: ./missing
        """,
    )
    where = [(p.file.rsplit("/", 1)[-1], p.line, p.key) for p in found]
    assert where == [
        ("promenade.yaml", 2, "manager.port"),
        ("promenade.yaml", 10, "services.web.port"),
        ("promenade.yaml", 11, "services.web.hostname"),
        ("promenade.yaml", 12, "services.web.depends_on"),
        ("promenade.yaml", 13, "services.web.restart_policy"),
        ("promenade.yaml", 14, "services.worker.command"),
        ("promenade.yaml", 15, "services.worker.directory"),
        (".env", 2, ""),
    ]


# --------------------------------------------------------------------------- lookup


def test_find_config_lookup_order(tmp_path: Path) -> None:
    cwd, home = tmp_path / "proj", tmp_path / "home"
    user_config = write(home / ".config" / "promenade", "services: {}\n")
    cwd.mkdir()
    assert find_config(cwd=cwd, home=home) == user_config
    local = write(cwd, "services: {}\n")
    assert find_config(cwd=cwd, home=home) == local
    other = write(tmp_path, "services: {}\n", "other.yaml")
    assert find_config("../other.yaml", cwd=cwd, home=home) == other
    assert find_config(cwd / ".", cwd=cwd, home=home) == local  # a folder means its config


def test_find_config_explicit_missing_names_it(tmp_path: Path) -> None:
    write(tmp_path, "services: {}\n")
    with pytest.raises(ConfigError) as info:
        find_config("nope.yaml", cwd=tmp_path, home=tmp_path)
    assert f"config file {tmp_path / 'nope.yaml'} does not exist" in str(info.value)


def test_find_config_nothing_found_lists_where_it_looked(tmp_path: Path) -> None:
    home = tmp_path / "h"
    with pytest.raises(ConfigError) as info:
        find_config(cwd=home / "p", home=home)
    message = str(info.value)
    assert f"looked for promenade.yaml in {home / 'p'} and each parent up to {home}, " \
        in message
    assert str(home / ".config" / "promenade" / "promenade.yaml") in message
    assert "--config" in message
    assert "`promenade init`" in message


def test_no_config_found_shows_a_config_that_loads(tmp_path: Path) -> None:
    """The example in the error is meant to be pasted: it must be a valid config."""
    with pytest.raises(ConfigError) as info:
        find_config(cwd=tmp_path, home=tmp_path)
    example = str(info.value).split("The smallest promenade.yaml:\n", 1)[1]
    assert len(example.splitlines()) == 3
    lines = [line.removeprefix("    ") for line in example.splitlines()]
    config = load_config_text("\n".join(lines) + "\n", tmp_path / "promenade.yaml")
    assert list(config.services) == ["web"]


def test_find_config_from_a_nested_folder_takes_the_nearest(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = home / "code" / "shop"
    nested = project / "backend" / "app" / "models"
    nested.mkdir(parents=True)
    write(home / ".config" / "promenade", "services: {}\n")
    outer = write(home / "code", "services: {}\n")
    assert find_config(cwd=nested, home=home) == outer
    inner = write(project, "services: {}\n")
    assert find_config(cwd=nested, home=home) == inner
    assert find_config(cwd=project, home=home) == inner


def test_find_config_stops_at_the_home_folder(tmp_path: Path) -> None:
    """A promenade.yaml above home (here: in the folder holding it) belongs to no project
    of this user; the user's own config folder comes next."""
    home = tmp_path / "home"
    nested = home / "code"
    nested.mkdir(parents=True)
    write(tmp_path, "services: {}\n")
    user_config = write(home / ".config" / "promenade", "services: {}\n")
    assert find_config(cwd=nested, home=home) == user_config
    at_home = write(home, "services: {}\n")
    assert find_config(cwd=nested, home=home) == at_home


def test_find_config_outside_home_goes_up_to_the_root(tmp_path: Path) -> None:
    nested = tmp_path / "srv" / "app"
    nested.mkdir(parents=True)
    top = write(tmp_path, "services: {}\n")
    assert find_config(cwd=nested, home=tmp_path / "elsewhere") == top


def test_find_config_skips_a_folder_named_promenade_yaml(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    (nested / "promenade.yaml").mkdir(parents=True)
    top = write(tmp_path, "services: {}\n")
    assert find_config(cwd=nested, home=tmp_path) == top


def test_search_folders_nearest_first() -> None:
    assert search_folders(Path("/home/u/p/q"), Path("/home/u")) == [
        Path("/home/u/p/q"), Path("/home/u/p"), Path("/home/u")]
    assert search_folders(Path("/srv/x"), Path("/home/u")) == [
        Path("/srv/x"), Path("/srv"), Path("/")]
    assert search_folders(Path("/home/u"), Path("/home/u")) == [Path("/home/u")]
    assert search_folders(Path("/"), Path("/home/u")) == [Path("/")]


# --------------------------------------------------------------------------- security


@pytest.fixture
def secured(tmp_path: Path) -> Config:
    tmp_path.chmod(0o755)
    (tmp_path / ".env").write_text("A=1\n")
    for name in ("promenade.yaml", ".env"):
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(0o644)
    path = write(tmp_path, "services: {a: {command: x, env_file: .env}}\n")
    path.chmod(0o644)
    return load_config(path)


def test_a_private_config_has_no_warnings(secured: Config) -> None:
    assert security_warnings(secured) == []


def test_world_writable_config_and_env_file_are_warned_about(secured: Config) -> None:
    env_file = secured.path.parent / ".env"
    for path in (secured.path, env_file):
        path.chmod(0o666)
    warnings = security_warnings(secured)
    assert len(warnings) == 2
    assert str(secured.path) in warnings[0] and f"chmod o-w {secured.path}" in warnings[0]
    assert "commands" in warnings[0]
    assert str(env_file) in warnings[1] and "env" in warnings[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_a_config_owned_by_another_user_is_warned_about(secured: Config) -> None:
    os.chown(secured.path, 65534, 65534)
    (warning,) = security_warnings(secured)
    assert warning == (
        f"{secured.path} is owned by nobody, not by you, so they can change the commands "
        f"promenade runs; run: sudo chown root {secured.path}"
    )


def test_a_world_writable_folder_and_open_dashboard_are_warned_about(secured: Config) -> None:
    secured.path.parent.chmod(0o777)
    warnings = security_warnings(secured)
    assert warnings == [
        f"{secured.path.parent} is writable by every user, so anyone can replace the files in "
        f"it; run: chmod o-w {secured.path.parent}"
    ]
    secured.path.parent.chmod(0o1777)  # sticky, like /tmp: others cannot replace it
    assert security_warnings(secured) == []
    exposed = load_config_text(
        "manager: {host: 0.0.0.0}\nservices: {a: {command: x}}\n", secured.path
    )
    assert any("0.0.0.0" in w and "authentication" in w for w in security_warnings(exposed))


# --------------------------------------------------------------------------- issue 10.14


@pytest.mark.parametrize("name", ["api\n", "api\r\n"])
def test_service_name_ending_in_a_newline_is_refused(tmp_path: Path, name: str) -> None:
    """`"api\\n"` passed as a service name: the regex ended in `$`, which also matches
    before a final newline."""
    text = f"services:\n  {json.dumps(name)}: {{command: x}}\n"
    found = one_problem(tmp_path, text)
    assert found.line == 2 and "invalid service name" in found.message, str(found)


@pytest.mark.parametrize("section", ["services.api.env", "defaults.env"])
def test_env_key_ending_in_a_newline_is_refused(tmp_path: Path, section: str) -> None:
    """Env key `"FOO\\n"` passed validation (regex `$`) and reached the environment."""
    text = ("defaults:\n  env: {\"FOO\\n\": x}\nservices:\n  api: {command: x}\n"
            if section == "defaults.env" else
            "services:\n  api:\n    command: x\n    env: {\"FOO\\n\": x}\n")
    found = one_problem(tmp_path, text)
    assert found.key == f"{section}.FOO\n" and "invalid variable name" in found.message


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("services:\n  api:\n    command: x\n    env: {SECRET: \"a\\0b\"}\n", 4,
         "services.api.env.SECRET"),
        ("defaults:\n  env: {SECRET: \"a\\0b\"}\nservices:\n  api: {command: x}\n", 2,
         "defaults.env.SECRET"),
    ],
)
def test_nul_byte_in_an_env_value_is_refused_at_validation(
    tmp_path: Path, text: str, line: int, key: str
) -> None:
    """A NUL byte in an env value passed validation, then the spawn raised ValueError
    ("embedded null byte") and wedged the service; it is a config problem instead."""
    found = one_problem(tmp_path, text)
    assert (found.line, found.key) == (line, key), str(found)
    assert "NUL" in found.message and "a\x00b" not in found.message


def test_nul_byte_in_an_env_file_value_is_refused_at_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same NUL byte from an env_file: reported at the env file's line and key."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_bytes(b"A=1\nSECRET=hunter\x002\n")
    found = one_problem(tmp_path, "services:\n  api: {command: x, env_file: .env}\n")
    assert str(found).startswith(".env:2: SECRET: "), str(found)
    assert "NUL" in found.message and "hunter" not in str(found)


def test_env_file_through_a_non_folder_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    """`env_file: notdir/x.env` where notdir is a file: a problem that says why."""
    (tmp_path / "notdir").write_text("")
    text = "services:\n  api: {command: x, env_file: notdir/x.env}\n"
    found = one_problem(tmp_path, text)
    assert (found.line, found.key) == (2, "services.api.env_file"), str(found)
    assert "not a folder" in found.message


def test_config_check_names_a_fifo_and_an_oversize_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO given as the config was reported as "does not exist"; an env_file over the
    4 MiB cap was read whole. Both are problems that say what is wrong."""
    from click.testing import CliRunner

    from promenade_cli.main import cli

    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "fifo.yaml")
    result = CliRunner().invoke(cli, ["config", "check", "-c", "fifo.yaml"])
    assert result.exit_code == 2 and "is a FIFO (named pipe)" in result.output, result.output
    with open(tmp_path / "big.env", "wb") as out:
        out.truncate(4 * 1024 * 1024 + 1)
    found = one_problem(tmp_path, "services:\n  api: {command: x, env_file: big.env}\n")
    assert (found.line, found.key) == (2, "services.api.env_file"), str(found)
    assert "the limit is 4,194,304" in found.message


@pytest.mark.parametrize("origin", ["http://localhost:3000\\n", "http://local\\thost:3000"])
def test_cors_origin_with_a_newline_or_tab_is_refused(tmp_path: Path, origin: str) -> None:
    """urlsplit silently drops newlines and tabs, so `"http://localhost:3000\\n"` passed as
    an origin that no browser's Origin header can ever equal."""
    text = f'services:\n  api:\n    command: a\n    cors_allow_origins: ["{origin}"]\n'
    found = one_problem(tmp_path, text)
    assert (found.line, found.key) == (4, "services.api.cors_allow_origins"), str(found)
    assert "control characters" in found.message
