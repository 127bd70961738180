"""The load pipeline: promenade.yaml text in, a frozen Config (model.py) or every problem out.

Loading is four small steps, each adding to one list of problems so that the user sees
every mistake at once (`promenade.yaml:14: services.web.depends_on: unknown service
'apii' (did you mean 'api'?)`):

1. read     — YAML to plain data with line numbers (source.py)
2. load     — each section type-checked by its marshmallow schema (schema.py)
3. defaults — resolve paths, read env files, merge env, fill in defaults (here)
4. validate — rules across fields and services: ports, hostnames, dependencies
   (rules.py)

Finding the file is lookup.py's job, warning about who else can change it audit.py's.
Paths in messages are relative to the current folder when the file is under it
(`promenade.yaml:14`, `backend/.env:3`) and absolute otherwise. Paths in the Config are
absolute but symlinks are not resolved, so a service runs in the folder the user named.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promenade_core.config.choices import AUTO_PORT
from promenade_core.config.dotenv import read_env_file
from promenade_core.config.fields import describe, service_name_problem, suggest
from promenade_core.config.interpolate import interpolate_data
from promenade_core.config.lookup import absolute_path, display_path
from promenade_core.config.model import (
    DEFAULT_HOSTSD_SOCKET,
    Config,
    Defaults,
    FrozenMap,
    ManagerConfig,
    ReadyCheck,
    ServiceConfig,
    Watch,
)
from promenade_core.config.rules import validate
from promenade_core.config.schema import (
    TOP_LEVEL_KEYS,
    DefaultsSchema,
    ManagerSchema,
    ServiceSchema,
    key_label,
    load_section,
)
from promenade_core.config.source import Document, Path_, merge_documents, parse_yaml
from promenade_core.errors import ConfigError, Problem
from promenade_core.router.names import default_domain
from promenade_core.userfile import UnreadableFile, folder_problem, read_user_file

HOSTSD_SOCKET_ENV = "PROMENADE_HOSTSD_SOCKET"
#: `PROMENADE_ROUTER=0`: `manager.router: false` unless the config says otherwise (the
#: test harness runs its managers so, each in its own runtime folder)
ROUTER_ENV = "PROMENADE_ROUTER"
#: `promenade.override.yaml` beside `promenade.yaml`
OVERRIDE = ".override"
DOTENV = ".env"


def override_path(path: Path) -> Path:
    """`promenade.override.yaml` beside `promenade.yaml`: merged on top when present."""
    return path.with_name(f"{path.stem}{OVERRIDE}{path.suffix}")


def load_config(path: Path, extra_files: Sequence[Path] = ()) -> Config:
    """Load and check a config file, with `extra_files` merged on top of it in order
    (or, when none are given, its override file if there is one); raises ConfigError
    listing every problem."""
    path = absolute_path(Path(path).expanduser())
    extras = [absolute_path(Path(p).expanduser()) for p in extra_files]
    override = None if extras else override_path(path)
    if override is not None and os.path.lexists(override):
        extras = [override]
    sources: list[tuple[Path, str]] = []
    problems: list[Problem] = []
    for file in (path, *extras):
        try:
            sources.append((file, _read_config(file)))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return load_config_texts(sources, also_watch=() if override is None else (override,))


def _read_config(path: Path) -> str:
    try:
        return read_user_file(path).decode("utf-8")
    except UnreadableFile as exc:
        raise ConfigError(
            [Problem(display_path(path), None, "", f"config file {exc.reason}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(display_path(path), None, "", f"not UTF-8 text ({exc.reason})")]
        ) from None


def load_config_text(text: str, path: Path) -> Config:
    """Load a config from `text`; `path` names it in messages and anchors relative paths."""
    return load_config_texts([(absolute_path(Path(path).expanduser()), text)])


def load_config_texts(sources: Sequence[tuple[Path, str]],
                      also_watch: Sequence[Path] = ()) -> Config:
    """Load config files given as (path, text), later ones merged on top of earlier
    ones; the first names the project and anchors relative paths. `also_watch`: files
    that do not exist yet but would change the config (an override file)."""
    path = sources[0][0]
    file = display_path(path)
    docs: list[Document] = []
    problems: list[Problem] = []
    for source, text in sources:
        name = display_path(source)
        doc, yaml_problems = parse_yaml(text)
        problems += [Problem(name, p.line, key_label(p.path), p.message)
                     for p in yaml_problems]
        if doc is not None:
            doc.file = name
            docs.append(doc)
    if len(docs) < len(sources):
        raise ConfigError(problems)
    state = _State(path, file, functools.reduce(merge_documents, docs), problems)
    try:
        config = _build(state, [s for s, _ in sources], also_watch)
    except Exception as exc:  # no input may crash the loader
        state.add(state.at, f"cannot load this setting ({type(exc).__name__}: {exc})")
        config = None
    if config is None:
        # dict.fromkeys: a `.env` that is also an env_file is read twice, said once
        raise ConfigError(sorted(dict.fromkeys(state.problems),
                                 key=lambda p: (p.file != file, p.file, p.line or 0)))
    return config


def _build(state: _State, files: list[Path], also_watch: Sequence[Path]) -> Config | None:
    """Steps 2 to 4 on the merged document, after `.env` and interpolation."""
    dotenv = _dotenv(state)
    state.doc.data = interpolate_data(state.doc.data, _lookup(dotenv.values), state.add)
    built = _apply_defaults(state, _load_sections(state), dotenv.values)
    validate(state, built.manager, built.services)
    if state.problems:
        return None
    watched = [*files, *also_watch, *([dotenv.path] if dotenv.path else []),
               *built.env_files]
    return _freeze(state, built, files, watched, dotenv.values)


@dataclass(frozen=True)
class _Dotenv:
    path: Path | None          # None: `manager.dotenv: false`
    values: dict[str, str]


def _dotenv(state: _State) -> _Dotenv:
    """`.env` beside the (first) config file: for the services' environment and for
    interpolation. Absent is fine; `manager.dotenv: false` (as written: it is read
    before interpolation) turns it off."""
    if state.raw("manager", "dotenv") is False:
        return _Dotenv(None, {})
    path = state.path.parent / DOTENV
    if not os.path.lexists(path):
        return _Dotenv(path, {})
    try:
        values, problems = read_env_file(path, display_path(path))
    except UnreadableFile as exc:
        state.problems.append(Problem(display_path(path), None, "", f".env file {exc.reason}"))
        return _Dotenv(path, {})
    state.problems.extend(problems)
    return _Dotenv(path, values)


def _lookup(dotenv: dict[str, str]) -> Callable[[str], str | None]:
    """Where `${VAR}` looks: the process environment first, then `.env`."""
    def lookup(name: str) -> str | None:
        value = os.environ.get(name)
        return value if value is not None else dotenv.get(name)
    return lookup


@dataclass
class _State:
    path: Path
    file: str
    doc: Document
    problems: list[Problem]
    #: the section being loaded: the best-known line for a problem nobody foresaw
    at: Path_ = ()

    def add(self, path: Path_, message: str) -> None:
        """A problem at `path`, named by the file and line that set it."""
        file, line = self.doc.where(path)
        self.problems.append(Problem(file or self.file, line, key_label(path), message))

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
    #: what every service's env starts from: .env < defaults.env
    base_env: dict[str, str]


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


def _apply_defaults(state: _State, sections: _Sections, dotenv: dict[str, str]) -> _Built:
    """Step 3: resolve paths against the config folder, read env files, merge env."""
    manager_fields = dict(sections.manager)
    manager_fields.setdefault(
        "hostsd_socket", os.environ.get(HOSTSD_SOCKET_ENV) or DEFAULT_HOSTSD_SOCKET
    )
    manager_fields.setdefault("domain", default_domain(state.path.parent))
    manager_fields.setdefault("router", os.environ.get(ROUTER_ENV) != "0")
    manager = ManagerConfig(**manager_fields)
    defaults = Defaults(
        restart_policy=sections.defaults.get("restart_policy", Defaults.restart_policy),
        env=FrozenMap(sections.defaults.get("env", {})),
    )
    base_env = {**dotenv, **defaults.env}   # .env < defaults.env < env_file < env
    built = _Built(manager, defaults, {}, [], base_env)
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
    watch = loaded.get("watch")
    depends = loaded.get("depends_on", ())
    return {
        "name": name,
        "command": loaded.get("command"),
        "directory": directory,
        "port": None if loaded.get("port") == AUTO_PORT else loaded.get("port"),
        "port_auto": loaded.get("port") == AUTO_PORT,
        "hostname": loaded.get("hostname"),
        "env": FrozenMap({**built.base_env, **file_env, **own_env}),
        "own_env": FrozenMap(own_env),
        "env_file": env_file,
        "depends_on": tuple(name for name, _ in depends),
        "conditions": FrozenMap({name: cond for name, cond in depends if cond is not None}),
        "restart_policy": loaded.get("restart_policy", built.defaults.restart_policy),
        "ready_check": ReadyCheck(**ready) if ready else None,
        "cors_proxy": loaded.get("cors_proxy", False),
        "cors_proxy_port": loaded.get("cors_proxy_port"),
        "cors_allow_origins": loaded.get("cors_allow_origins", ()),
        "tty": loaded.get("tty", False),
        "autostart": loaded.get("autostart", True),
        "stop_signal": loaded.get("stop_signal", ServiceConfig.stop_signal),
        "stop_timeout": loaded.get("stop_timeout", ServiceConfig.stop_timeout),
        "stop_command": loaded.get("stop_command"),
        "watch": Watch(watch["paths"], watch.get("ignore", ())) if watch else None,
        "profiles": loaded.get("profiles", ()),
        "line": state.doc.lines.get(prefix),
    }


def _resolve(folder: Path, value: str) -> Path:
    return absolute_path(folder / Path(value).expanduser())


def _freeze(state: _State, built: _Built, files: list[Path], watched: list[Path],
            dotenv: dict[str, str]) -> Config:
    services = FrozenMap({name: ServiceConfig(**kw) for name, kw in built.services.items()})
    return Config(state.path, built.manager, built.defaults, services,
                  tuple(dict.fromkeys(watched)), FrozenMap(dotenv), tuple(files))
