"""Step 2 of loading promenade.yaml: each section type-checked by a marshmallow schema.

The sections list their settings with the field (fields.py) that checks each and a
description (the JSON Schema, jsonschema.py, is built from both); `load_section` turns
marshmallow's errors into (path, message) problems.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from promenade_core.config.choices import (
    HostsMode,
    ReadyType,
    RestartPolicy,
)
from promenade_core.config.fields import (
    Choice,
    Count,
    DependsOn,
    EnvMap,
    Flag,
    LogFilesField,
    Pattern,
    Port,
    Seconds,
    ServicePort,
    StopSignalChoice,
    Text,
    TextList,
    absolute_problem,
    bus_tcp_problem,
    describe,
    origin_problem,
    profile_problem,
    suggest,
    url_path_problem,
)
from promenade_core.config.marshmallow_lazy import (
    Schema,
    ValidationError,
    fields,
    validates_schema,
)
from promenade_core.config.source import Path_
from promenade_core.router.names import domain_problem
from promenade_hostsd.hostnames import hostname_problem

TOP_LEVEL_KEYS = ("manager", "defaults", "services")
# Used with fullmatch: `$` also matches before a final newline, so "api\n" passed.
_UNKNOWN = "\x00unknown key"  # marker swapped for a did-you-mean message


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
    port = ServicePort(allow_none=True, metadata=about(
        "the port it listens on; checked free before start; exported as PORT. auto: a "
        "free loopback port picked at each start (the last run's when still free)"))
    hostname = Text(check=hostname_problem, allow_none=True, metadata=about(
        "a local name (RFC 1123; needs port, a number or auto)"))
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
        "a pseudo-terminal per stream, for programs that need a terminal (a REPL, "
        "line editing, tools that ignore FORCE_COLOR); default false: pipes, with "
        "FORCE_COLOR, CLICOLOR_FORCE, PY_COLORS and PYTHONUNBUFFERED set"))
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
    log_files = LogFilesField(metadata=about(
        "each service's output and the manager's events written to "
        "$XDG_STATE_HOME/promenade/<id>/logs/, rotated by size: false turns it off, "
        "true or {max_bytes: 10485760, keep: 3} (the default)"))
    domain = Text(check=domain_problem, metadata=about(
        "the project's domain: each service with a port is https://SERVICE.DOMAIN, the "
        "dashboard https://DOMAIN (default: the config folder's name + .localhost); "
        "names outside .localhost (myapp.test) are mapped through hostsd like hostnames "
        "and need a CA made with `promenade trust --name test`"))
    router = Flag(metadata=about(
        "serve the services at named HTTPS URLs through the user's router (default true; "
        "false: URLs with ports as before)"))


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
