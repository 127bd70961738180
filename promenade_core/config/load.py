"""promenade.yaml: where it is, what it says, and whether it makes sense.

Loading is four small steps, each adding to one list of problems so that the user sees
every mistake at once (`promenade.yaml:14: services.web.depends_on: unknown service
'apii' (did you mean 'api'?)`):

1. read     — YAML to plain data with line numbers (config_yaml)
2. load     — each section type-checked by its marshmallow schema (config_schema)
3. defaults — resolve paths, read env files, merge env, fill in defaults (here)
4. validate — rules across fields and services: ports, hostnames, dependencies
   (config_rules)

Paths in messages are relative to the current folder when the file is under it
(`promenade.yaml:14`, `backend/.env:3`) and absolute otherwise. Paths in the Config are
absolute but symlinks are not resolved, so a service runs in the folder the user named.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from promenade_core.config.choices import HostsMode, RestartPolicy
from promenade_core.config.dotenv import read_env_file
from promenade_core.config.rules import validate
from promenade_core.config.schema import (
    TOP_LEVEL_KEYS,
    DefaultsSchema,
    ManagerSchema,
    ServiceSchema,
    describe,
    key_label,
    load_section,
    service_name_problem,
    suggest,
)
from promenade_core.config.source import Document, Path_, parse_yaml
from promenade_core.errors import ConfigError, Problem
from promenade_core.origins import is_local_hostname
from promenade_core.userfile import (
    UnreadableFile,
    folder_problem,
    os_reason,
    read_user_file,
)

CONFIG_NAME = "promenade.yaml"
DEFAULT_HOSTSD_SOCKET = "/run/promenade/hostsd.sock"
HOSTSD_SOCKET_ENV = "PROMENADE_HOSTSD_SOCKET"

V = TypeVar("V")


class FrozenMap(Mapping[str, V]):
    """A read-only, hashable dict, so config dataclasses stay frozen all the way down."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, V] | Iterable[tuple[str, V]] = ()) -> None:
        self._data: dict[str, V] = dict(data)

    def __getitem__(self, key: str) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._data == dict(other.items())

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


@dataclass(frozen=True)
class ReadyCheck:
    type: str  # "http" | "tcp"
    path: str = "/"
    timeout: float = 30
    interval: float = 2


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    command: str
    directory: Path
    port: int | None
    hostname: str | None
    env: Mapping[str, str]  # defaults.env < env_file < env (the manager's environ comes first)
    own_env: Mapping[str, str]  # the service's own `env:`, for display
    env_file: Path | None
    depends_on: tuple[str, ...]
    restart_policy: RestartPolicy
    ready_check: ReadyCheck | None
    cors_proxy: bool = False
    cors_proxy_port: int | None = None
    cors_allow_origins: tuple[str, ...] = ()
    line: int | None = None
    #: a pseudo-terminal per stream (colours as on a terminal); False gives plain pipes
    tty: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "command": self.command,
            "directory": str(self.directory),
            "port": self.port,
            "hostname": self.hostname,
            "env": dict(self.env),
            "own_env": dict(self.own_env),
            "env_file": str(self.env_file) if self.env_file else None,
            "depends_on": list(self.depends_on),
            "restart_policy": self.restart_policy,
            "ready_check": asdict(self.ready_check) if self.ready_check else None,
            "cors_proxy": self.cors_proxy,
            "cors_proxy_port": self.cors_proxy_port,
            "cors_allow_origins": list(self.cors_allow_origins),
            "tty": self.tty,
            "line": self.line,
        }


@dataclass(frozen=True)
class ManagerConfig:
    port: int = 9000
    host: str = "127.0.0.1"
    log_buffer_lines: int = 1000
    config_poll_interval: float = 5
    hosts_management: HostsMode = HostsMode.AUTO
    hostsd_socket: str = DEFAULT_HOSTSD_SOCKET
    dependency_timeout: float = 60
    bus_tcp: str | None = None


@dataclass(frozen=True)
class Defaults:
    restart_policy: RestartPolicy = RestartPolicy.ONCE
    env: Mapping[str, str] = field(default_factory=FrozenMap)


@dataclass(frozen=True)
class Config:
    path: Path
    manager: ManagerConfig
    defaults: Defaults
    services: Mapping[str, ServiceConfig]  # in file order
    watched_files: tuple[Path, ...]  # the config and every env_file, for the watcher

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (GET /api/config); env is unmasked, the caller masks it."""
        return {
            "path": str(self.path),
            "manager": asdict(self.manager),
            "defaults": {
                "restart_policy": self.defaults.restart_policy,
                "env": dict(self.defaults.env),
            },
            "services": {name: svc.to_dict() for name, svc in self.services.items()},
            "watched_files": [str(p) for p in self.watched_files],
        }


# --------------------------------------------------------------------------- lookup


def find_config(
    explicit: str | os.PathLike[str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> Path:
    """The config to use: `--config` > ./promenade.yaml > ~/.config/promenade/promenade.yaml.

    A folder given with --config means its promenade.yaml.
    """
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    if explicit is not None:
        given = explicit_config_path(explicit, cwd)
        why = _lookup_problem(given)
        if why:
            raise ConfigError(
                [Problem(str(explicit), None, "", f"config file {_abs(given)} {why}")]
            )
        return _abs(given)
    home = Path(home) if home is not None else Path.home()
    candidates = [cwd / CONFIG_NAME, home / ".config" / "promenade" / CONFIG_NAME]
    for candidate in candidates:
        if _lookup_problem(candidate) is None:
            return _abs(candidate)
    looked = ", ".join(str(_abs(c)) for c in candidates)
    message = f"no config file found (looked for {looked}); create one or pass --config PATH"
    raise ConfigError([Problem(CONFIG_NAME, None, "", message)])


def _lookup_problem(path: Path) -> str | None:
    """Why no config is at `path`, or None when a file is there (load_config judges it: a
    FIFO or an oversize file is its problem). os.stat, not Path.is_file, which raises
    PermissionError for a folder we cannot enter."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return os_reason(exc)
    return "is a folder without a promenade.yaml" if stat.S_ISDIR(info.st_mode) else None


def explicit_config_path(explicit: str | os.PathLike[str], cwd: Path | None = None) -> Path:
    """What `--config X` names, absolute, whether or not it exists (`config path`)."""
    given = (Path(cwd) if cwd is not None else Path.cwd()) / Path(explicit).expanduser()
    if folder_problem(given) is None and _lookup_problem(given / CONFIG_NAME) is None:
        given = given / CONFIG_NAME
    return _abs(given)


def _abs(path: Path) -> Path:
    return Path(os.path.abspath(path))


def display_path(path: Path) -> str:
    """How a file is named in messages: relative to the current folder when under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):
        return str(path)


# --------------------------------------------------------------------------- loading


def load_config(path: Path) -> Config:
    """Load and check a config file; raises ConfigError listing every problem."""
    path = _abs(Path(path).expanduser())
    try:
        text = read_user_file(path).decode("utf-8")
    except UnreadableFile as exc:
        raise ConfigError(
            [Problem(display_path(path), None, "", f"config file {exc.reason}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(display_path(path), None, "", f"not UTF-8 text ({exc.reason})")]
        ) from None
    return load_config_text(text, path)


def load_config_text(text: str, path: Path) -> Config:
    """Load a config from `text`; `path` names it in messages and anchors relative paths."""
    path = _abs(Path(path).expanduser())
    file = display_path(path)
    doc, yaml_problems = parse_yaml(text)
    problems = [Problem(file, p.line, key_label(p.path), p.message) for p in yaml_problems]
    if doc is None:
        raise ConfigError(problems)
    state = _State(path, file, doc, problems)
    try:
        built = _apply_defaults(state, _load_sections(state))
        validate(state, built.manager, built.services)
        config = None if state.problems else _freeze(state, built)
    except Exception as exc:  # no input may crash the loader
        state.add(state.at, f"cannot load this setting ({type(exc).__name__}: {exc})")
        config = None
    if config is None:
        raise ConfigError(
            sorted(state.problems, key=lambda p: (p.file != file, p.file, p.line or 0))
        )
    return config


@dataclass
class _State:
    path: Path
    file: str
    doc: Document
    problems: list[Problem]
    #: the section being loaded: the best-known line for a problem nobody foresaw
    at: Path_ = ()

    def add(self, path: Path_, message: str) -> None:
        self.problems.append(Problem(self.file, self.doc.line(path), key_label(path), message))

    def raw(self, *path: str) -> Any:
        """The YAML value at path, before any checking (None when absent)."""
        value = self.doc.data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value


@dataclass
class _Sections:
    manager: dict[str, Any]
    defaults: dict[str, Any]
    services: dict[str, dict[str, Any]]  # name -> loaded fields (failed ones absent)


@dataclass
class _Built:
    manager: ManagerConfig
    defaults: Defaults
    services: dict[str, dict[str, Any]]  # name -> ServiceConfig keyword arguments
    env_files: list[Path]


def _load_sections(state: _State) -> _Sections:
    """Step 2: the top-level shape, then each section through its schema."""
    data = state.doc.data
    if not isinstance(data, dict):
        state.add((), f"the file must be a mapping with a 'services:' key, got {describe(data)}")
        return _Sections({}, {}, {})
    for key in data:
        if key not in TOP_LEVEL_KEYS and not key.startswith("x-"):
            state.add((key,), f"unknown key {key!r}{suggest(key, TOP_LEVEL_KEYS)}")
    state.at = ("manager",)
    manager = _load_one(state, ("manager",), ManagerSchema(), data.get("manager"))
    state.at = ("defaults",)
    defaults = _load_one(state, ("defaults",), DefaultsSchema(), data.get("defaults"))
    return _Sections(manager, defaults, _load_services(state, data))


def _load_one(state: _State, prefix: Path_, schema: Any, data: Any) -> dict[str, Any]:
    loaded, problems = load_section(schema, data)
    for path, message in problems:
        state.add((*prefix, *path), message)
    return loaded


def _load_services(state: _State, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = data.get("services")
    if "services" not in data:
        state.add((), "'services' is required: a mapping of service names to settings")
        return {}
    if not isinstance(services, dict):
        state.add(("services",), f"must map service names to settings, got {describe(services)}")
        return {}
    if not services:
        state.add(("services",), "needs at least one service")
        return {}
    loaded = {}
    for name, raw in services.items():
        state.at = ("services", name)
        problem = service_name_problem(name)
        if problem:
            state.add(("services", name), problem)
        if raw is None or not isinstance(raw, dict):
            state.add(
                ("services", name), f"must be a mapping with a 'command', got {describe(raw)}"
            )
            continue
        loaded[name] = _load_one(state, ("services", name), ServiceSchema(), raw)
    return loaded


def _apply_defaults(state: _State, sections: _Sections) -> _Built:
    """Step 3: resolve paths against the config folder, read env files, merge env."""
    manager_fields = dict(sections.manager)
    manager_fields.setdefault(
        "hostsd_socket", os.environ.get(HOSTSD_SOCKET_ENV) or DEFAULT_HOSTSD_SOCKET
    )
    manager = ManagerConfig(**manager_fields)
    defaults = Defaults(
        restart_policy=sections.defaults.get("restart_policy", Defaults.restart_policy),
        env=FrozenMap(sections.defaults.get("env", {})),
    )
    built = _Built(manager, defaults, {}, [])
    for name, loaded in sections.services.items():
        state.at = ("services", name)
        built.services[name] = _service_fields(state, name, loaded, built)
    return built


def _service_fields(
    state: _State, name: str, loaded: dict[str, Any], built: _Built
) -> dict[str, Any]:
    prefix = ("services", name)
    directory = _resolve(state.path.parent, loaded.get("directory", "."))
    why = folder_problem(directory) if "directory" in loaded else None
    if why:
        state.add((*prefix, "directory"), f"directory {directory} {why}")
    file_env: dict[str, str] = {}
    env_file = None
    if "env_file" in loaded:
        env_file = _resolve(state.path.parent, loaded["env_file"])
        built.env_files.append(env_file)
        try:
            file_env, problems = read_env_file(env_file, display_path(env_file))
        except UnreadableFile as exc:
            state.add((*prefix, "env_file"), f"env file {env_file} {exc.reason}")
        else:
            state.problems.extend(problems)
    own_env = loaded.get("env", {})
    ready = loaded.get("ready_check")
    return {
        "name": name,
        "command": loaded.get("command"),
        "directory": directory,
        "port": loaded.get("port"),
        "hostname": loaded.get("hostname"),
        "env": FrozenMap({**built.defaults.env, **file_env, **own_env}),
        "own_env": FrozenMap(own_env),
        "env_file": env_file,
        "depends_on": loaded.get("depends_on", ()),
        "restart_policy": loaded.get("restart_policy", built.defaults.restart_policy),
        "ready_check": ReadyCheck(**ready) if ready else None,
        "cors_proxy": loaded.get("cors_proxy", False),
        "cors_proxy_port": loaded.get("cors_proxy_port"),
        "cors_allow_origins": loaded.get("cors_allow_origins", ()),
        "tty": loaded.get("tty", True),
        "line": state.doc.lines.get(prefix),
    }


def _resolve(folder: Path, value: str) -> Path:
    return _abs(folder / Path(value).expanduser())


def _freeze(state: _State, built: _Built) -> Config:
    services = FrozenMap({name: ServiceConfig(**kw) for name, kw in built.services.items()})
    watched = tuple(dict.fromkeys([state.path, *built.env_files]))
    return Config(state.path, built.manager, built.defaults, services, watched)


def dependency_order(services: Mapping[str, ServiceConfig]) -> tuple[str, ...]:
    """Service names, dependencies before dependents, file order otherwise."""
    done: dict[str, None] = {}
    remaining = list(services)
    while remaining:
        ready = [
            n
            for n in remaining
            if all(d in done or d not in services for d in services[n].depends_on)
        ]
        for name in ready or remaining[:1]:  # a cycle cannot happen in a loaded config
            done[name] = None
        remaining = [n for n in remaining if n not in done]
    return tuple(done)


# --------------------------------------------------------------------------- security


def security_warnings(config: Config) -> list[str]:
    """Files that someone else could change to run commands as this user.

    promenade runs whatever `command:` says; a config or env file (or a folder holding
    one) that another user can write is a way for them to run code as you.
    """
    warnings: list[str] = []
    euid = os.geteuid()
    for path in config.watched_files:
        what = "the commands promenade runs" if path == config.path else "your services' env"
        warnings.extend(_file_warnings(path, what, euid))
    for folder in dict.fromkeys(p.parent for p in config.watched_files):
        warnings.extend(_folder_warnings(folder))
    if not is_local_hostname(config.manager.host):
        warnings.append(
            f"manager.host is {config.manager.host!r}: the dashboard has no authentication and "
            "anyone who can reach this address can start and stop your services; "
            "use 127.0.0.1 unless you mean it"
        )
    return warnings


def _file_warnings(path: Path, what: str, euid: int) -> Iterator[str]:
    try:
        info = path.stat()
    except OSError:
        return
    quoted = shlex.quote(str(path))
    if info.st_mode & stat.S_IWOTH:
        yield f"{path} is writable by every user, so anyone can change {what}; " + (
            f"run: chmod o-w {quoted}"
        )
    if info.st_uid not in (euid, 0):
        owner = _user_name(info.st_uid) or f"uid {info.st_uid}"
        yield (
            f"{path} is owned by {owner}, not by you, so they can change {what}; "
            f"run: sudo chown {_user_name(euid) or euid} {quoted}"
        )


def _folder_warnings(folder: Path) -> Iterator[str]:
    try:
        info = folder.stat()
    except OSError:
        return
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        yield (
            f"{folder} is writable by every user, so anyone can replace the files in it; "
            f"run: chmod o-w {shlex.quote(str(folder))}"
        )


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None
