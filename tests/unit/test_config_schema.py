"""The JSON Schema of promenade.yaml agrees with the validator it is built from.

Good configs (the README's, the demo's, a corpus of the tests' kinds) pass both; configs
the validator refuses for a wrong type or an unknown key, at every level, fail both;
the shipped file is what `promenade config schema` prints today.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from marshmallow import fields

from promenade_cli.main import cli
from promenade_core.config import jsonschema as built
from promenade_core.config.fields import Text, TextList
from promenade_core.config.load import load_config
from promenade_core.config.schema import (
    DefaultsSchema,
    ManagerSchema,
    Section,
    ServiceSchema,
    load_section,
)
from promenade_core.config.source import parse_yaml
from promenade_core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "promenade_core" / "config" / built.SHIPPED_FILE
VALIDATOR = jsonschema.Draft202012Validator(built.config_schema())
OVERRIDE = jsonschema.Draft202012Validator(built.override_schema())
#: Editors' YAML servers (yaml-language-server) implement draft-07: the schema keeps to
#: its keywords, so a draft-07 validator must give every verdict the 2020-12 one gives.
DRAFT7 = jsonschema.Draft7Validator(built.config_schema())


def schema_errors(document: Any) -> list[str]:
    errors = [error.message for error in VALIDATOR.iter_errors(document)]
    assert DRAFT7.is_valid(document) == (errors == []), document
    return errors


def validator_problems(tmp_path: Path, text: str) -> list[str]:
    """The keys the validator reports for `text` (none when it loads)."""
    path = tmp_path / "promenade.yaml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError as exc:
        return [f"{p.key}: {p.message}" for p in exc.problems]
    return []


# ------------------------------------------------------------------ the file itself


@pytest.mark.parametrize(("name", "option"), [
    (built.SHIPPED_FILE, ""), (built.SHIPPED_OVERRIDE_FILE, " --override")])
def test_shipped_files_are_what_config_schema_prints_today(name: str, option: str) -> None:
    assert (SHIPPED.parent / name).read_text() == built.render(bool(option)), (
        f"{name} is stale: regenerate it with "
        f"`promenade config schema{option} > promenade_core/config/{name}`")


@pytest.mark.parametrize(("args", "title"), [
    ([], "promenade.yaml"), (["--override"], "promenade.override.yaml")])
def test_config_schema_command_prints_the_schema(args: list[str], title: str) -> None:
    result = CliRunner().invoke(cli, ["config", "schema", *args])
    assert result.exit_code == 0, result.output
    assert result.stdout == built.render(bool(args))
    document = json.loads(result.stdout)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"].endswith(title) and document["title"] == title


@pytest.mark.parametrize("schema", [built.config_schema(), built.override_schema()])
def test_schema_is_a_valid_draft_2020_12_and_draft_7_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft7Validator.check_schema(schema)


def _sections(schema_class: type[Section]) -> Iterator[type[Section]]:
    yield schema_class
    for field in schema_class().fields.values():
        if isinstance(field, fields.Nested):
            yield from _sections(type(field.schema))


SECTIONS = [s for top in (ManagerSchema, DefaultsSchema, ServiceSchema) for s in _sections(top)]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.__name__)
def test_every_field_has_a_description_and_a_json_mapping(section: type[Section]) -> None:
    assert section.description, f"{section.__name__} has no description"
    for name, field in section().fields.items():
        assert field.metadata.get("description"), f"{section.__name__}.{name}: no description"
        built.field_schema(name, field)  # raises NoMapping for a class it cannot express


def _walk_properties(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            yield f"{path}.{key}", value
        for key, value in node.items():
            yield from _walk_properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _walk_properties(item, path)


def test_every_key_of_the_json_schema_has_a_description() -> None:
    keys = list(_walk_properties(built.config_schema()))
    assert len(keys) > 40
    missing = [path for path, value in keys
               if value is not False and "const" not in value and "description" not in value]
    assert missing == []


def test_a_field_class_without_a_mapping_is_refused() -> None:
    with pytest.raises(built.NoMapping, match="String"):
        built.field_schema("x", fields.String(metadata={"description": "d"}))
    with pytest.raises(built.NoMapping, match="description"):
        built.field_schema("x", Text())


def test_a_text_check_without_a_pattern_is_refused() -> None:
    def shouty(value: str) -> str | None:
        return None if value.isupper() else "must be upper case"

    with pytest.raises(built.NoMapping, match="shouty"):
        built.field_schema("x", Text(check=shouty, metadata={"description": "d"}))
    with pytest.raises(built.NoMapping, match="shouty"):
        built.field_schema("x", TextList(item=shouty, metadata={"description": "d"}))


# ------------------------------------------------------------------ the same rules


@pytest.mark.parametrize(("check", "samples"), [
    (built.url_path_problem, ["/", "/health", "/a?b=1", "health", "/a b", "/a\tb", ""]),
    (built.absolute_problem, ["/run/x.sock", "run/x.sock", "~/x"]),
    (built.bus_tcp_problem, ["127.0.0.1:5555", "[::1]:5555", "127.1.2.3:1", "0.0.0.0:5555",
                             "localhost:5555", "127.0.0.1", "127.0.0.1:x"]),
    (built.origin_problem, ["*", "http://localhost:3000", "https://app.test",
                            "HTTP://x.test", "http://[::1]:8080", "ftp://x.test",
                            "http://x.test/", "http://u@x.test", "http://x test", "x.test",
                            "http://x.test:1:2"]),
    (built.profile_problem, ["debug", "docs-2", "a_b", "de bug", "a.b", "é"]),
    (built.hostname_problem, ["api.test", "api", "a-b.c-d.test", "api.localhost",
                              "localhost", "LocalHost", "1.2.3.4", "api.123", "123.api",
                              "-api.test", "api-.test", "a..b", "api.test.", "a_b.test",
                              "ü.test", "a" * 63 + ".test", "a" * 64 + ".test",
                              ".".join(["a" * 50] * 5), ".".join(["a" * 50] * 4)]),
    (built.domain_problem, ["myapp.localhost", "My-App.LocalHost", "a.b.localhost",
                            "localhost", ".localhost", "myapp.test", "my_app.localhost",
                            "-a.localhost", "a" * 63 + ".localhost", "a" * 64 + ".localhost",
                            "myapp.localhost.", "x.localhostx", ".".join(["a" * 60] * 5),
                            "test", "myapp.123", "a.b.test", "myapp.test.", "TEST"]),
])
def test_text_check_patterns_accept_what_the_checks_accept(
    check: Any, samples: list[str]
) -> None:
    pattern = built.CHECK_PATTERNS[check]
    for sample in samples:
        assert (re.search(pattern, sample) is not None) == (check(sample) is None), sample


def test_ready_check_rules_follow_the_validator_tables() -> None:
    """exec needs command, log needs pattern; other types' keys are refused."""
    for check, ok in [
        ({"type": "exec"}, False), ({"type": "exec", "command": "true"}, True),
        ({"type": "log"}, False), ({"type": "log", "pattern": "x"}, True),
        ({"type": "log", "pattern": "x", "interval": 1}, False),
        ({"type": "log", "pattern": "x", "restart_after_failures": 2}, False),
        ({"type": "http", "command": "x"}, False), ({"type": "tcp", "path": "/"}, False),
        ({"type": "http", "path": "/", "restart_after_failures": 2}, True),
    ]:
        document = {"services": {"a": {"command": "x", "port": 1, "ready_check": check}}}
        assert (schema_errors(document) == []) == ok, check


# ------------------------------------------------------------------ good configs


def readme_configs() -> list[str]:
    """The README's ```yaml blocks that are promenade configs: mappings of top-level
    keys the schema knows (`services`, `manager`, `defaults`, `x-…`)."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    return [b for b in blocks if isinstance(yaml.safe_load(b), dict) and set(
        yaml.safe_load(b)) & {"services", "manager", "defaults"}]


def is_override_example(text: str) -> bool:
    """An example of an override file says so in a comment before its first key."""
    for line in text.splitlines():
        if not line.startswith("#"):
            return False
        if "override" in line:
            return True
    return False


def test_readme_has_config_examples() -> None:
    assert len([t for t in readme_configs() if not is_override_example(t)]) >= 4


@pytest.mark.parametrize("text", readme_configs())
def test_every_readme_example_passes_the_schema(text: str) -> None:
    document = yaml.safe_load(text)
    if is_override_example(text):
        assert OVERRIDE.is_valid(document), list(OVERRIDE.iter_errors(document))
    else:
        assert schema_errors(document) == []


def test_the_demo_config_passes_the_schema() -> None:
    demo = ROOT / "scripts" / "demo-project" / "promenade.yaml"
    assert schema_errors(yaml.safe_load(demo.read_text())) == []


#: Valid configs of the kinds tests/unit/test_config*.py load, one key form each.
GOOD = [
    "services:\n  api: {command: flask run}\n",
    # text by nature is kept as typed (source.keep_text): `true` runs the program
    "defaults: {env: {N: 1}}\nservices:\n  api:\n    command: true\n"
    "    env: {DEBUG: yes, VERSION: 1.10, N: 3}\n  b: {command: 123}\n",
    "manager:\ndefaults:\nservices:\n  api: {command: x}\n",
    """\
manager:
  port: 9100
  host: 127.0.0.1
  log_buffer_lines: 50
  config_poll_interval: 0.5
  hosts_management: manual
  hostsd_socket: /tmp/h.sock
  dependency_timeout: 10
  bus_tcp: 127.0.0.1:5555
  dotenv: false
defaults:
  restart_policy: always
  env: {A: "1", B: ""}
x-common: &common
  restart_policy: never
services:
  api:
    <<: *common
    command: x
    directory: .
    port: 5001
    hostname: api.test
    env: {DEBUG: "yes", EMPTY: ""}
    env_file: null
    cors_proxy: true
    cors_proxy_port: 5011
    cors_allow_origins: ["http://localhost:3000", "*"]
    tty: false
    autostart: false
    stop_signal: SIGINT
    stop_timeout: 2.5
    stop_command: docker stop pg
    profiles: [debug, docs]
    ready_check: {type: http, path: /health, timeout: 5, interval: 1,
                  restart_after_failures: 3}
  worker:
    command: y
    depends_on: api
    stop_signal: int
    cors_allow_origins: http://localhost:3000
    watch: {paths: src}
    profiles: debug
  log:
    command: z
    depends_on: [api, worker]
    ready_check: {type: log, pattern: 'ready in \\d+ ms', timeout: 3}
    watch: {paths: [src, "*.toml"], ignore: ["*.log"]}
  task:
    command: w
    port: 5002
    depends_on: {api: {condition: healthy}, log: {condition: started}}
    ready_check: {type: tcp}
  probe:
    command: u
    ready_check: {type: exec, command: "true", interval: 2}
  ex:
    command: v
    depends_on: {task: {condition: completed_successfully}}
    directory: null
    port: null
    hostname: null
    env: null
    watch: null
    ready_check: null
""",
]


@pytest.mark.parametrize("text", GOOD)
def test_configs_the_validator_accepts_pass_the_schema(tmp_path: Path, text: str) -> None:
    assert validator_problems(tmp_path, text) == []
    assert schema_errors(yaml.safe_load(text)) == []


@pytest.mark.parametrize("value", [
    {"manager": {"port": "${DASH_PORT}", "dotenv": "${USE_DOTENV}",
                 "dependency_timeout": "${T}", "hosts_management": "${MODE}"}},
    {"services": {"a": {"command": "x", "port": "${PORT:-5001}", "tty": "${TTY}",
                        "stop_timeout": "${STOP}", "stop_signal": "${SIG}",
                        "hostname": "${HOST}.test", "restart_policy": "${POLICY}",
                        "ready_check": {"type": "http", "path": "${HEALTH}",
                                        "restart_after_failures": "${N}"}}}},
])
def test_values_still_to_be_interpolated_pass_the_schema(value: dict[str, Any]) -> None:
    document = {"services": {"b": {"command": "y"}}, **value}
    assert schema_errors(document) == []


@pytest.mark.parametrize(("value", "ok"), [
    ("${PORT}", True), ("${PORT:-5001}", True), ("50${N}", True), ("$$$${X}${Y}", True),
    ("$${PORT}", False), ("$$$${PORT}", False), ("5001", False), ("$PORT", False),
])
def test_an_escaped_dollar_is_not_interpolation(value: str, ok: bool) -> None:
    """`$${X}` is the literal text `${X}`: as a port it stays wrong after interpolation."""
    document = {"services": {"a": {"command": "x", "port": value}}}
    assert (schema_errors(document) == []) == ok


def readme_table_keys() -> list[str]:
    """`manager.port`, `services.NAME.ready_check`…: the keys the config reference lists."""
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^\| `((?:manager|defaults|services\.NAME)\.[a-z_]+)` \|", text, re.M)


def test_every_key_the_readme_lists_is_in_the_schema() -> None:
    properties = built.config_schema()["properties"]
    sections = {"manager": properties["manager"]["anyOf"][0],
                "defaults": properties["defaults"]["anyOf"][0],
                "services.NAME": properties["services"]["additionalProperties"]}
    keys = readme_table_keys()
    assert len(keys) > 25
    for key in keys:
        where, _, name = key.rpartition(".")
        assert name in sections[where]["properties"], key


# ------------------------------------------------------------------ bad configs

S = "services:\n  a:\n    command: x\n"
#: Configs that lack a required key, which an override file may well leave out.
MISSING = ["services: {a: {port: 1}}\n", S + "    ready_check: {type: exec}\n",
           S + "    watch: {ignore: [x]}\n"]

#: (config, the key the validator names): a wrong type or an unknown key at each level.
BAD = [
    ("services: {a: {command: x}}\nmanagre: {}\n", "managre"),
    ("services: []\n", "services"),
    ("manager: []\n" + S, "manager"),
    ("manager: {prot: 1}\n" + S, "manager.prot"),
    ("manager: {port: '9000'}\n" + S, "manager.port"),
    ("manager: {port: 70000}\n" + S, "manager.port"),
    ("manager: {log_buffer_lines: 0}\n" + S, "manager.log_buffer_lines"),
    ("manager: {config_poll_interval: soon}\n" + S, "manager.config_poll_interval"),
    ("manager: {hosts_management: yes}\n" + S, "manager.hosts_management"),
    ("manager: {dotenv: 'no'}\n" + S, "manager.dotenv"),
    ("defaults: {envv: {}}\n" + S, "defaults.envv"),
    ("defaults: {env: [A=1]}\n" + S, "defaults.env"),
    ("defaults: {env: {A: [1]}}\n" + S, "defaults.env.A"),
    ("defaults: {env: {A: null}}\n" + S, "defaults.env.A"),
    ("defaults: {restart_policy: sometimes}\n" + S, "defaults.restart_policy"),
    ("services: {a: {command: x, depend_on: [b]}}\n", "services.a.depend_on"),
    (MISSING[0], "services.a.command"),
    ("services: {a: flask run}\n", "services.a"),
    ("services: {'a b': {command: x}}\n", "services.a b"),
    (S + "    command2: y\n", "services.a.command2"),
    ("services: {a: {command: [x]}}\n", "services.a.command"),
    ("services: {a: {command: null}}\n", "services.a.command"),
    ("services: {a: {command: ''}}\n", "services.a.command"),
    (S + "    hostname: 123\n    port: 1\n", "services.a.hostname"),
    (S + "    stop_command: true\n", "services.a.stop_command"),
    (S + "    env_file: [a.env]\n", "services.a.env_file"),
    (S + "    port: '5001'\n", "services.a.port"),
    (S + "    port: true\n", "services.a.port"),
    (S + "    tty: 1\n", "services.a.tty"),
    (S + "    stop_timeout: -1\n", "services.a.stop_timeout"),
    (S + "    stop_signal: TERMINATE\n", "services.a.stop_signal"),
    (S + "    env: {1A: x}\n", "services.a.env.1A"),
    (S + "    profiles: [de bug]\n", "services.a.profiles"),
    (S + "    cors_allow_origins: [ftp://x]\n", "services.a.cors_allow_origins"),
    (S + "    port: 1\n    ready_check: tcp\n", "services.a.ready_check"),
    (S + "    port: 1\n    ready_check: {type: tcp, timout: 3}\n",
     "services.a.ready_check.timout"),
    (S + "    port: 1\n    ready_check: {type: tcp, timeout: '3'}\n",
     "services.a.ready_check.timeout"),
    (MISSING[1], "services.a.ready_check.command"),
    (S + "    ready_check: {type: smoke}\n", "services.a.ready_check.type"),
    (S + "    watch: [src]\n", "services.a.watch"),
    (S + "    watch: {paths: [src], ignroe: [x]}\n", "services.a.watch.ignroe"),
    (S + "    watch: {paths: [1]}\n", "services.a.watch.paths"),
    (MISSING[2], "services.a.watch.paths"),
    ("services:\n  b: {command: y}\n  a:\n    command: x\n    depends_on: {b: healthy}\n",
     "services.a.depends_on.b"),
    ("services:\n  b: {command: y}\n  a:\n    command: x\n"
     "    depends_on: {b: {condition: healthy, timeout: 3}}\n", "services.a.depends_on.b.timeout"),
    ("services:\n  b: {command: y}\n  a:\n    command: x\n"
     "    depends_on: {b: {condition: ready}}\n", "services.a.depends_on.b.condition"),
    ("services:\n  b: {command: y}\n  a:\n    command: x\n    depends_on: 3\n",
     "services.a.depends_on"),
]


@pytest.mark.parametrize(("text", "key"), BAD)
def test_configs_the_validator_refuses_fail_the_schema(
    tmp_path: Path, text: str, key: str
) -> None:
    found = validator_problems(tmp_path, text)
    assert any(problem.startswith(f"{key}:") for problem in found), found
    assert schema_errors(yaml.safe_load(text)) != []


# ------------------------------------------------------------------ field by field

#: YAML values of every shape, tried in every key: the schema and the validator must
#: agree on each (no `${`: the validator sees values after interpolation).
VALUES = ["1", "0", "70000", "-1", "2.5", "true", "no", "'5'", "abc", "''", "'  '", "[a]",
          "[]", "[a, '']", "{a: b}", "{}", "{A: '1'}", "{1A: x}", "null", "/x", "TERM",
          "sigint", "always", "http", "api.test", "127.0.0.1:5555", "http://localhost:3000",
          "{condition: healthy}", "{a: {condition: started}}", "{a: {condition: done}}"]


def _sections_at() -> Iterator[tuple[str, type[Section], str]]:
    """(YAML around the key, its section, the schema's path to the section)."""
    yield "manager:\n  {key}: {value}\nservices: {{a: {{command: x}}}}\n", ManagerSchema, "m"
    yield "defaults:\n  {key}: {value}\nservices: {{a: {{command: x}}}}\n", DefaultsSchema, "d"
    yield "services:\n  a:\n    command: x\n    {key}: {value}\n", ServiceSchema, "s"


def _validator_accepts(text: str, section: type[Section], where: str) -> bool:
    document, problems = parse_yaml(text)
    assert document is not None and not problems
    data = document.data
    raw = data["services"]["a"] if where == "s" else data["manager" if where == "m" else
                                                          "defaults"]
    return load_section(section(), raw)[1] == []


def test_schema_and_validator_agree_on_every_key_and_value_shape() -> None:
    disagreements = []
    for template, section, where in _sections_at():
        for key, field in section().fields.items():
            if isinstance(field, fields.Nested):
                continue  # ready_check and watch: test_ready_check_rules_*, BAD
            for value in VALUES:
                text = template.format(key=key, value=value)
                if key == "command":
                    text = text.replace("    command: x\n", "", 1)
                ours = _validator_accepts(text, section, where)
                theirs = schema_errors(yaml.safe_load(text)) == []
                if ours != theirs:
                    disagreements.append(f"{key}: {value} (validator {ours}, schema {theirs})")
    assert disagreements == []


# ------------------------------------------------------------------ override files

@pytest.mark.parametrize(("text", "key"), BAD)
def test_the_override_schema_refuses_what_is_wrong_but_not_what_is_missing(
    text: str, key: str
) -> None:
    assert OVERRIDE.is_valid(yaml.safe_load(text)) == (text in MISSING), text


def test_an_override_file_may_hold_only_what_it_changes() -> None:
    document = yaml.safe_load(
        "services:\n  api:\n    port: 5002\n    ready_check: {timeout: 60}\n"
        "    watch: {ignore: [tmp]}\n"
        "  docs:\n    command: mkdocs serve\n    profiles: [docs]\n")
    assert OVERRIDE.is_valid(document)
    assert not VALIDATOR.is_valid(document)
    assert OVERRIDE.is_valid({"manager": {"port": 9100}})


# ------------------------------------------------------------------ keys combined

#: For each key, a value it takes and values it refuses.
_SERVICE_KEYS: dict[str, list[Any]] = {
    "command": ["x", 1, ""], "directory": [".", ""], "port": [5001, 0, "5001"],
    "hostname": ["api.test", "1"], "env": [{"A": 1}, {"1A": "x"}, ["A=1"]],
    "env_file": ["a.env", 1], "depends_on": [{"b": {"condition": "healthy"}}, {"b": "x"}, [1]],
    "restart_policy": ["always", "sometimes"], "cors_proxy": [True, "yes"],
    "cors_proxy_port": [5002, 70000], "cors_allow_origins": [["http://a.test"], ["a"]],
    "tty": [False, 0], "autostart": [None, "no"], "stop_signal": ["sigquit", "STOP"],
    "stop_timeout": [2.5, 0], "stop_command": ["docker stop pg", True],
    "profiles": ["docs", ["a b"]], "prot": [1],
}
#: ready_check keys with a value each takes (the field-by-field test tries bad ones).
_READY_KEYS = {"path": "/h", "timeout": 2.5, "interval": 2, "command": "true",
               "pattern": "ready", "restart_after_failures": 3}


def _agree(service: dict[str, Any]) -> str | None:
    """None when both give the same verdict, else what differs. The YAML text goes
    through the loader's parser, which keeps `command: 1` as text."""
    text = yaml.safe_dump({"services": {"a": service}})
    document, problems = parse_yaml(text)
    assert document is not None and not problems
    ours = load_section(ServiceSchema(), document.data["services"]["a"])[1] == []
    theirs = schema_errors(yaml.safe_load(text)) == []
    return None if ours == theirs else f"{service} (validator {ours}, schema {theirs})"


def test_schema_and_validator_agree_on_every_ready_check_of_known_keys() -> None:
    """Each type with every subset of the other keys: the per-type rules, all of them."""
    disagreements = []
    for kind in ("http", "tcp", "exec", "log", "smoke"):
        for chosen in itertools.product([False, True], repeat=len(_READY_KEYS)):
            check = {"type": kind, **{key: value for (key, value), take
                                      in zip(_READY_KEYS.items(), chosen, strict=True) if take}}
            disagreements.append(_agree({"command": "x", "port": 1, "ready_check": check}))
    assert [d for d in disagreements if d] == []


def test_schema_and_validator_agree_on_every_pair_of_service_values() -> None:
    pairs = [(key, value) for key, values in _SERVICE_KEYS.items() for value in values]
    disagreements = [
        _agree({"command": "x", **dict([first, second])})
        for first, second in itertools.combinations(pairs, 2) if first[0] != second[0]
    ]
    assert [d for d in disagreements if d] == []
