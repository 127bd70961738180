"""Step 2 of loading promenade.yaml: each section type-checked by a marshmallow schema.

The fields check values themselves (rather than using marshmallow's stock Integer or
String) so that every message quotes what was given and says what would be right:
`must be a port from 1 to 65535, got 70000`, `must be one of never, once, always; got
'sometimes' (did you mean ...?)`. A bool where a number is expected is refused (YAML
reads `yes` as true, and Python counts True as 1).
"""

from __future__ import annotations

import difflib
import enum
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from ipaddress import ip_address
from typing import Any, ClassVar
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validates_schema

from promenade_core.config.choices import (
    Condition,
    HostsMode,
    ReadyType,
    RestartPolicy,
    StopSignal,
    words,
)
from promenade_core.config.interpolate import Interpolated
from promenade_core.config.source import Path_
from promenade_hostsd.hostnames import hostname_problem

TOP_LEVEL_KEYS = ("manager", "defaults", "services")
# Used with fullmatch: `$` also matches before a final newline, so "api\n" passed.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SERVICE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_UNKNOWN = "\x00unknown key"  # marker swapped for a did-you-mean message


def describe(value: Any) -> str:
    """How a wrong value reads in a message; hints at YAML's surprising booleans."""
    if isinstance(value, bool):
        word = "true" if value else "false"
        return f"{word} (YAML reads unquoted yes/no/on/off/true/false as booleans; quote it)"
    if isinstance(value, Interpolated):
        return f"{str(value)!r} (what ${{...}} gave)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 80 else text[:76] + "…" + text[0]


def suggest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Field(fields.Field):
    """A field that checks the value itself so messages can quote what was given."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", {})
        kwargs["error_messages"].setdefault("null", "is empty (null); give a value or remove it")
        kwargs["error_messages"].setdefault("required", "is required")
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return self.check(value)

    def check(self, value: Any) -> Any:
        raise NotImplementedError


class Text(_Field):
    def __init__(self, *, check: Callable[[str], str | None] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.extra = check

    def check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"must be text, got {describe(value)}")
        if not value.strip():
            raise ValidationError("must not be empty")
        if "\x00" in value:
            raise ValidationError("must not contain a NUL character")
        problem = self.extra(value) if self.extra else None
        if problem:
            raise ValidationError(problem)
        return value


class Choice(_Field):
    """One word of a closed set: loaded as its Enum member when the set is an Enum."""

    def __init__(self, choices: type[enum.Enum] | tuple[str, ...], **kw: Any) -> None:
        super().__init__(**kw)
        self.enum = None if isinstance(choices, tuple) else choices
        self.choices = choices if isinstance(choices, tuple) else words(choices)

    def check(self, value: Any) -> enum.Enum | str:
        if not isinstance(value, str) or value not in self.choices:
            hint = suggest(value, self.choices) if isinstance(value, str) else ""
            raise ValidationError(
                f"must be one of {', '.join(self.choices)}; got {describe(value)}{hint}"
            )
        return value if self.enum is None else self.enum(value)


def _interpolated_number(value: Any) -> Any:
    """What `${VAR}` produced, read as a number when it is one ("5001" -> 5001); any
    other value as it is. A number typed in quotes stays text, and is refused."""
    if isinstance(value, Interpolated):
        text = value.strip()
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                continue
    return value


def _whole_number(value: Any) -> int:
    value = _interpolated_number(value)
    if isinstance(value, bool) or not isinstance(value, int):
        extra = " (remove the quotes)" if isinstance(value, str) and value.isdigit() else ""
        raise ValidationError(f"must be a whole number, got {describe(value)}{extra}")
    return value


class Port(_Field):
    def check(self, value: Any) -> int:
        number = _whole_number(value)
        if not 1 <= number <= 65535:
            raise ValidationError(f"must be a port from 1 to 65535, got {number}")
        return number


class Count(_Field):
    def check(self, value: Any) -> int:
        number = _whole_number(value)
        if number < 1:
            raise ValidationError(f"must be at least 1, got {number}")
        return number


class Seconds(_Field):
    def check(self, value: Any) -> float:
        value = _interpolated_number(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"must be a number of seconds (e.g. 30), got {describe(value)}")
        if not math.isfinite(value) or value <= 0:
            raise ValidationError(f"must be a positive number of seconds, got {value}")
        return value


class Flag(_Field):
    def check(self, value: Any) -> bool:
        if isinstance(value, Interpolated) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ValidationError(f"must be true or false, got {describe(value)}")
        return value


class TextList(_Field):
    """A list of text; a single string is accepted as a one-item list."""

    def __init__(self, *, item: Callable[[str], str | None] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.item = item

    def check(self, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValidationError(f"must be a list, got {describe(value)}")
        errors: dict[int, list[str]] = {}
        for index, entry in enumerate(items):
            if not isinstance(entry, str):
                problem: str | None = f"must be text, got {describe(entry)}"
            elif not entry.strip():
                problem = "must not be empty"
            else:
                problem = self.item(entry) if self.item else None
            if problem:
                errors[index] = [problem]
        if errors:
            raise ValidationError(errors)
        return tuple(dict.fromkeys(items))  # a name listed twice means the same thing


class StopSignalChoice(Choice):
    """A signal name, with or without `SIG` (`INT` or `SIGINT`)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(StopSignal, **kw)

    def check(self, value: Any) -> enum.Enum | str:
        if isinstance(value, str) and value.upper().startswith("SIG"):
            value = value[3:]
        return super().check(value.upper() if isinstance(value, str) else value)


class Pattern(Text):
    """A regular expression (Python's `re` syntax), checked here so a bad one is a
    config error naming its key, not a crash when the first line arrives."""

    def check(self, value: Any) -> str:
        text = super().check(value)
        try:
            re.compile(text)
        except re.error as exc:
            raise ValidationError(f"is not a valid regular expression: {exc}") from None
        return text


class DependsOn(_Field):
    """`depends_on`: a list of names (each waits as before: running, and healthy when
    it has a ready_check), or a mapping of names to `{condition: WORD}`.

    Loads as a tuple of (name, Condition or None) pairs, in the order written.
    """

    #: what the mapping form's `condition` means (the JSON Schema shows it)
    condition_description = (
        "what to wait for: started (its process is running), healthy (running and its "
        "ready_check passed), completed_successfully (it ran and exited with code 0)")

    def check(self, value: Any) -> tuple[tuple[str, Condition | None], ...]:
        if isinstance(value, (str, list)):
            return tuple((name, None) for name in TextList().check(value))
        if not isinstance(value, dict):
            raise ValidationError(
                f"must be a list of service names or a mapping of names to "
                f"{{condition: ...}}, got {describe(value)}")
        errors: dict[str, Any] = {}
        pairs: list[tuple[str, Condition | None]] = []
        for name, spec in value.items():
            try:
                pairs.append((name, _condition(spec)))
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)
        return tuple(pairs)


def _condition(spec: Any) -> Condition:
    if not isinstance(spec, dict):
        raise ValidationError(
            f"must be a mapping like {{condition: healthy}}, got {describe(spec)}")
    unknown = [k for k in spec if k != "condition"]
    if unknown:
        raise ValidationError({unknown[0]: [f"unknown key {unknown[0]!r}"
                                            f"{suggest(str(unknown[0]), ['condition'])}"]})
    if "condition" not in spec:
        raise ValidationError({"condition": [
            f"is required: one of {', '.join(words(Condition))}"]})
    try:
        condition = Choice(Condition).check(spec["condition"])
    except ValidationError as exc:
        raise ValidationError({"condition": exc.messages}) from None
    assert isinstance(condition, Condition)
    return condition


class EnvMap(_Field):
    """Env names to text values; see the module docstring for how values stay as typed."""

    def check(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValidationError(f"must be a mapping of NAME: value, got {describe(value)}")
        errors: dict[str, list[str]] = {}
        for name, item in value.items():
            problem = env_name_problem(name)
            if problem is None and item is None:
                problem = f'has no value; write {name}: "" for an empty string'
            elif problem is None and not isinstance(item, str):
                problem = f"must be a single value, not {describe(item)}"
            elif problem is None:
                problem = env_value_problem(item)
            if problem:
                errors[name] = [problem]
        if errors:
            raise ValidationError(errors)
        return dict(value)


def env_name_problem(name: str, shown: bool = True) -> str | None:
    """`shown=False` for env_file lines: what precedes `=` on a malformed line may be a
    pasted secret (`postgres://app:pw@db/x?sslmode=require`), so it is not quoted."""
    if ENV_NAME.fullmatch(name):
        return None
    what = f"invalid variable name {name!r}" if shown else "invalid variable name"
    return f"{what}: use letters, digits and '_', not starting with a digit"


def env_value_problem(value: str) -> str | None:
    """A NUL cannot be in an environment: the spawn would fail ("embedded null byte").
    The value is never quoted: it may be a secret."""
    if "\x00" in value:
        return "the value contains a NUL character, which no environment can hold"
    return None


def url_path_problem(value: str) -> str | None:
    if not value.startswith("/"):
        return f"must start with '/', got {value!r}"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return f"must not contain spaces or control characters, got {value!r}"
    return None


def origin_problem(value: str) -> str | None:
    """`*` or `scheme://host[:port]`, exactly as browsers send the Origin header."""
    if value == "*":
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        # urlsplit drops "\n" and "\t" silently; the origin would then never match
        return f"{value!r} must not contain spaces or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return f"{value!r} is not an origin like http://localhost:3000"
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return f"{value!r} is not an origin like http://localhost:3000"
    if parts.path or parts.query or parts.fragment:
        return f"{value!r} is not an origin: drop the path (an origin is scheme://host[:port])"
    return None


def bus_tcp_problem(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"must be 127.0.0.1:PORT, got {value!r}"
    try:
        loopback = ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return (
            f"host must be a loopback address such as 127.0.0.1, got {host!r} "
            "(the bus has no authentication)"
        )
    return None


def absolute_problem(value: str) -> str | None:
    return None if value.startswith("/") else f"must be an absolute path, got {value!r}"


def profile_problem(name: str) -> str | None:
    if SERVICE_NAME.fullmatch(name):
        return None
    return f"invalid profile name {name!r}: use only letters, digits, '_' and '-'"


def service_name_problem(name: str) -> str | None:
    if SERVICE_NAME.fullmatch(name):
        return None
    return f"invalid service name {name!r}: use only letters, digits, '_' and '-'"


# --------------------------------------------------------------------------- schemas


def about(text: str) -> dict[str, str]:
    """A field's `metadata`: its description, the README's words for the key, which
    `promenade config schema` shows in editors (jsonschema.py reads it)."""
    return {"description": text}


class Section(Schema):
    """A mapping of settings; `description` says what the section is for (the JSON
    Schema shows it), as each field's `metadata` does for its key."""

    error_messages = {"unknown": _UNKNOWN, "type": "must be a mapping of settings"}
    description: ClassVar[str] = ""


#: Each ready_check type's own keys among READY_TYPED_KEYS (the others are refused),
#: the key a type cannot do without, and what a log check (which never probes) refuses.
READY_TYPED_KEYS = ("path", "command", "pattern")
READY_OWN_KEYS: Mapping[ReadyType, tuple[str, ...]] = {
    ReadyType.HTTP: ("path",), ReadyType.TCP: (),
    ReadyType.EXEC: ("command",), ReadyType.LOG: ("pattern",)}
READY_NEEDS: Mapping[ReadyType, str] = {ReadyType.EXEC: "command", ReadyType.LOG: "pattern"}
LOG_REFUSES = ("interval", "restart_after_failures")


class ReadyCheckSchema(Section):
    description = (
        "When the service counts as up (health: healthy); depends_on waits for that: "
        "{type: http, path: /}, {type: tcp}, {type: exec, command: CMD} or "
        "{type: log, pattern: REGEX}")
    type = Choice(ReadyType, required=True, metadata=about(
        "http: GET path answers 200-399; tcp: the port accepts a connection; "
        "exec: command exits 0; log: an output line matches pattern"))
    path = Text(check=url_path_problem, metadata=about(
        "http: the path to GET (default /)"))
    timeout = Seconds(metadata=about(
        "seconds to become healthy before it is reported unhealthy (default 30); "
        "an exec check's command is also killed after this long"))
    interval = Seconds(metadata=about(
        "seconds between probes (default 2; not for log)"))
    command = Text(metadata=about(
        "exec: run with /bin/sh -c in the service's directory and environment; "
        "healthy when it exits 0"))
    pattern = Pattern(metadata=about(
        "log: a Python regular expression found anywhere in an output line (re.search)"))
    restart_after_failures = Count(metadata=about(
        "restart a service that was healthy in its current run after N failed checks "
        "in a row (http, tcp, exec; not for log)"))

    @validates_schema
    def _fits_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        """Each type's own keys: exec needs `command`, log needs `pattern`, and a key
        another type uses is refused rather than silently ignored."""
        kind = data.get("type")
        if kind is None:
            return
        needed = READY_NEEDS.get(kind)
        errors: dict[str, list[str]] = {}
        if needed and needed not in data:
            errors[needed] = [f"is required for a ready_check of type {kind}"]
        for key in READY_TYPED_KEYS:
            if key in data and key not in READY_OWN_KEYS[kind]:
                errors[key] = [f"does not apply to a ready_check of type {kind}"]
        if kind == ReadyType.LOG:
            for key in LOG_REFUSES:
                if key in data:
                    errors[key] = ["does not apply to a ready_check of type log "
                                   "(it matches output lines and never probes)"]
        if errors:
            raise ValidationError(errors)


class WatchSchema(Section):
    description = (
        "Restart the service when these files change, e.g. "
        '{paths: [src, "*.toml"], ignore: ["*.log"]}')
    paths = TextList(required=True, error_messages={
        "required": "is required: files or folders (globs allowed) to watch"},
        metadata=about("files or folders (globs allowed) to watch, relative to the "
                       "service's directory"))
    ignore = TextList(allow_none=True, metadata=about(
        "files or folders (globs allowed) whose changes never restart it"))


class ServiceSchema(Section):
    description = "One service: a command Promenade runs, supervises and restarts"
    command = Text(
        required=True, error_messages={"required": "is required: the shell command to run"},
        metadata=about("run with /bin/sh -c, in its own process group; stdin stays open"),
    )
    directory = Text(allow_none=True, metadata=about(
        "working directory, relative to the config's folder (default: the config's folder)"))
    port = Port(allow_none=True, metadata=about(
        "the port it listens on; checked free before start; exported as PORT"))
    hostname = Text(check=hostname_problem, allow_none=True, metadata=about(
        "a local name (RFC 1123; needs port)"))
    env = EnvMap(allow_none=True, metadata=about(
        "environment (os.environ < .env < defaults.env < env_file < env); "
        "values are text: quote numbers and yes/no"))
    env_file = Text(allow_none=True, metadata=about(
        "dotenv file, relative to the config's folder"))
    depends_on = DependsOn(allow_none=True, metadata=about(
        "a list: start after these are running (and healthy, when they have a "
        "ready_check); or a mapping of names to "
        "{condition: started|healthy|completed_successfully}"))
    restart_policy = Choice(RestartPolicy, metadata=about(
        "never, once (retry once, then gave_up), always (back-off 1, 2, 4 ... 30 s; "
        "reset after 10 s of stable run); default: defaults.restart_policy"))
    ready_check = fields.Nested(ReadyCheckSchema, allow_none=True, metadata=about(
        ReadyCheckSchema.description))
    cors_proxy = Flag(metadata=about("put a CORS proxy in front of port (default false)"))
    cors_proxy_port = Port(allow_none=True, metadata=about(
        "where the CORS proxy listens (127.0.0.1)"))
    cors_allow_origins = TextList(item=origin_problem, allow_none=True, metadata=about(
        "origins allowed besides local ones (* for any), like http://localhost:3000"))
    tty = Flag(metadata=about(
        "a pseudo-terminal per stream, so tools that colour only on a terminal still do "
        "(default true); false gives plain pipes"))
    autostart = Flag(metadata=about(
        "false: promenade start leaves it stopped unless a started service depends on "
        "it (default true)"))
    stop_signal = StopSignalChoice(metadata=about(
        "the signal a stop sends to the whole tree: TERM (default), INT, QUIT, HUP, "
        "USR1, USR2, KILL (SIGINT also accepted)"))
    stop_timeout = Seconds(metadata=about(
        "seconds after the signal (and given to stop_command) before SIGKILL (default 5)"))
    stop_command = Text(allow_none=True, metadata=about(
        "run with /bin/sh -c (service's folder and environment) before the signal, "
        "e.g. docker stop pg"))
    watch = fields.Nested(WatchSchema, allow_none=True, metadata=about(
        WatchSchema.description))
    profiles = TextList(item=profile_problem, allow_none=True, metadata=about(
        "start it only when one of these profiles is active (promenade start --profile "
        "NAME or PROMENADE_PROFILES); without profiles it always starts"))


class ManagerSchema(Section):
    description = "The manager itself: dashboard, log buffer, config polling, hostnames"
    port = Port(metadata=about("dashboard port (default 9000; --port overrides)"))
    host = Text(metadata=about("dashboard bind address (default 127.0.0.1)"))
    log_buffer_lines = Count(metadata=about(
        "lines kept per service (default 1000; resized live on reload)"))
    config_poll_interval = Seconds(metadata=about(
        "seconds between config checks (default 5)"))
    hosts_management = Choice(HostsMode, metadata=about(
        "auto (through promenade-hostsd; the default), manual (print the lines to add), "
        "disabled"))
    hostsd_socket = Text(check=absolute_problem, metadata=about(
        "where hostsd listens (default /run/promenade/hostsd.sock; "
        "env PROMENADE_HOSTSD_SOCKET)"))
    dependency_timeout = Seconds(metadata=about(
        "seconds to wait for dependencies (default 60); then a list-form dependency is "
        "started anyway, a written condition fails the service"))
    bus_tcp = Text(check=bus_tcp_problem, allow_none=True, metadata=about(
        "127.0.0.1:PORT: also publish the event feed on TCP (loopback only)"))
    dotenv = Flag(metadata=about(
        "read the .env file beside the config, for the services' environment and for "
        "${VAR} interpolation (default true)"))


class DefaultsSchema(Section):
    description = "Settings every service gets unless it sets its own"
    restart_policy = Choice(RestartPolicy, metadata=about(
        "default restart_policy for every service: never, once (the default), always"))
    env = EnvMap(allow_none=True, metadata=about("environment for every service"))


def load_section(schema: Schema, data: Any) -> tuple[dict[str, Any], list[tuple[Path_, str]]]:
    """Load one section; returns what passed (None values dropped) and (path, message)s.

    A field that failed is simply absent from the result, so later steps never see a
    bad value and never report a follow-on problem about it.
    """
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, [((), f"must be a mapping of settings, got {describe(data)}")]
    try:
        loaded = schema.load(data)
        problems: list[tuple[Path_, str]] = []
    except ValidationError as exc:
        loaded = exc.valid_data if isinstance(exc.valid_data, dict) else {}
        problems = [
            (path, _unknown_message(schema, path) if message == _UNKNOWN else message)
            for path, message in _flatten(exc.messages, ())
        ]
    failed = {path[0] for path, _ in problems if path}  # a nested section may load partly
    return {k: v for k, v in loaded.items() if v is not None and k not in failed}, problems


def _flatten(messages: Any, prefix: Path_) -> Iterator[tuple[Path_, str]]:
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            yield from _flatten(value, prefix if key == "_schema" else (*prefix, key))
    elif isinstance(messages, list):
        for message in messages:
            yield from _flatten(message, prefix)
    else:
        yield prefix, str(messages)


def _unknown_message(schema: Schema, path: Path_) -> str:
    """`unknown key 'depend_on' (did you mean 'depends_on'?)` for the schema at path."""
    for segment in path[:-1]:
        nested = schema.fields.get(str(segment))
        if isinstance(nested, fields.Nested) and isinstance(nested.schema, Schema):
            schema = nested.schema
    word = str(path[-1])
    return f"unknown key {word!r}{suggest(word, list(schema.fields))}"


def key_label(path: Path_) -> str:
    """`services.web.depends_on` for a path; list indexes are left out (the line says which)."""
    return ".".join(str(p) for p in path if not isinstance(p, int))
