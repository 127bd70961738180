"""No input may crash the config loader: any file gives a Config or a ConfigError.

Property-based: random structures dumped to YAML (shaped like promenade.yaml, so they
reach the schema and the rules), random YAML-ish text built from anchors, aliases and
merge keys, random text and random bytes. Each goes to `load_config` and to
`promenade config check` (click's CliRunner, in-process), which must exit 0 or 2 with
an `Error:` line, never a traceback. `PROMENADE_FUZZ_EXAMPLES=3000` digs deeper than the
default 150 examples per test (about 45 s instead of 4).
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promenade_cli.main import cli
from promenade_core.config.load import load_config
from promenade_core.config.model import Config
from promenade_core.errors import ConfigError

FUZZ = settings(max_examples=int(os.environ.get("PROMENADE_FUZZ_EXAMPLES", "150")),
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

WORDS = ["services", "manager", "defaults", "command", "env", "env_file", "directory",
         "port", "hostname", "depends_on", "restart_policy", "ready_check", "type", "path",
         "timeout", "interval", "cors_proxy", "cors_proxy_port", "cors_allow_origins", "tty",
         "log_buffer_lines", "config_poll_interval", "hosts_management", "hostsd_socket",
         "dependency_timeout", "bus_tcp", "host", "api", "web", "x-common", "A", "<<"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["never", "once", "always", "http", "tcp", "auto", "sleep 1", ".",
                     "api", "api.test", "127.0.0.1:5555", "/", "~", "nope/.env", "a\nb",
                     "api\n", "FOO\n", "a\x00b", "*", "http://localhost:3000", "yes", "1.10"]),
)
KEYS = st.one_of(st.sampled_from(WORDS), st.text(max_size=12))
STRUCTURES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=30,
)
SERVICE = st.dictionaries(st.sampled_from(WORDS), STRUCTURES, max_size=6)
CONFIGS = st.fixed_dictionaries(
    {"services": st.dictionaries(KEYS, st.one_of(SERVICE, STRUCTURES), max_size=3)},
    optional={"manager": STRUCTURES, "defaults": STRUCTURES, "x-common": STRUCTURES},
)
FRAGMENTS = st.sampled_from([
    "services:", "\n", "  ", "api:", "command: x", "env:", "&a ", "*a", "<<: ", "{", "}",
    "[", "]", ", ", "A: '1'", "- ", "!!python/object:os.system", "!!binary", "? ", ": ",
    "&b ", "*b", "<<: [*a, *b]", "---", "...", "%YAML 1.1", "'", '"', "#", "\t", "env_file: ",
    "directory: ", "port: 8000", "depends_on: [api]", "x-c: ", "\x00", "\ufeff", "\x85",
])
YAMLISH = st.lists(FRAGMENTS, max_size=40).map("".join)


def _flow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Flow mappings and lists whose entries may be aliases and `<<` merges."""
    entry = st.one_of(st.tuples(st.sampled_from(["A", "B", "api", "command", "env"]), inner)
                      .map(": ".join), inner.map("<<: {}".format))
    return st.one_of(
        st.lists(entry, max_size=4).map(lambda es: "{" + ", ".join(es) + "}"),
        st.lists(inner, max_size=4).map(lambda es: "[" + ", ".join(es) + "]"),
        st.tuples(st.sampled_from(["&a ", "&b "]), inner).map("".join),
    )


ANCHORED = st.recursive(st.sampled_from(['"1"', "x", "*a", "*b", "null", "[]", "{}"]),
                        _flow, max_leaves=12)
ANCHORED_CONFIGS = st.one_of(
    ANCHORED.map("services:\n  api: {{command: x, env: {}}}\n".format),
    ANCHORED.map("x-c: {}\nservices:\n  api: {{command: x}}\n".format),
    ANCHORED.map("services: {}\n".format),
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def _dump(data: object) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def _loads_or_reports(path: Path) -> None:
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        assert exc.problems and all(p.file and p.message for p in exc.problems)
    else:
        assert isinstance(loaded, Config)


def _check_cli(path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "check", "-c", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert "Error: " in result.output, result.output


def _both(folder: Path, content: bytes) -> None:
    path = folder / "promenade.yaml"
    path.write_bytes(content)
    _loads_or_reports(path)
    _check_cli(path)


@FUZZ
@given(CONFIGS)
def test_random_structures_load_or_report(folder: Path, data: dict[str, object]) -> None:
    _both(folder, _dump(data).encode())


@FUZZ
@given(YAMLISH)
def test_random_anchor_alias_and_merge_text_loads_or_reports(folder: Path, text: str) -> None:
    _both(folder, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(ANCHORED_CONFIGS)
def test_random_anchors_and_merges_load_or_report(folder: Path, text: str) -> None:
    _both(folder, text.encode())


@FUZZ
@given(st.text(max_size=300))
def test_random_text_loads_or_reports(folder: Path, text: str) -> None:
    _both(folder, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_load_or_report(folder: Path, content: bytes) -> None:
    _both(folder, content)


@FUZZ
@given(st.binary(max_size=300))
def test_random_env_file_bytes_load_or_report(folder: Path, content: bytes) -> None:
    (folder / "fuzz.env").write_bytes(content)
    _both(folder, b"services:\n  api: {command: x, env_file: fuzz.env}\n")


SELF_MERGE = textwrap.dedent("""\
    services:
      api:
        command: sleep 60
        env: &x {A: "1", <<: *x}
""")


def test_config_check_reports_a_self_merge_instead_of_a_traceback(tmp_path: Path) -> None:
    """`env: &x {A: "1", <<: *x}` raised a TypeError deep in the loader and `config
    check` printed a traceback (exit 1); it is a config problem with its line (exit 2)."""
    path = tmp_path / "promenade.yaml"
    path.write_text(SELF_MERGE)
    result = CliRunner().invoke(cli, ["config", "check", "-c", str(path)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert f"{path}:4: services.api.env: " in result.output, result.output
    assert "merge" in result.output and "Traceback" not in result.output
