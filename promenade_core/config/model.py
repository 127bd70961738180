"""The loaded config: frozen dataclasses all the way down, so a running Config is a value.

`load.py` builds them; the supervisor, the reload planner and the bus only read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from promenade_core.config.choices import (
    Condition,
    HostsMode,
    ReadyType,
    RestartPolicy,
    StopSignal,
)

DEFAULT_HOSTSD_SOCKET = "/run/promenade/hostsd.sock"

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
    type: ReadyType
    path: str = "/"                     # http: the path to GET
    #: seconds to become healthy before the service is reported unhealthy; an exec
    #: check's command is also killed after this long
    timeout: float = 30
    interval: float = 2                 # seconds between checks (http, tcp, exec)
    command: str | None = None          # exec: run with /bin/sh -c; healthy on exit 0
    pattern: str | None = None          # log: a regular expression for one output line
    #: restart a service that was healthy after this many failed checks in a row
    restart_after_failures: int | None = None

    @property
    def needs_port(self) -> bool:
        """http and tcp check the service's port; exec and log do not."""
        return self.type in (ReadyType.HTTP, ReadyType.TCP)


@dataclass(frozen=True)
class Watch:
    """`watch:`: files whose change restarts the service (relative to its directory)."""

    paths: tuple[str, ...]
    ignore: tuple[str, ...] = ()


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
    depends_on: tuple[str, ...]  # names, in the order written
    restart_policy: RestartPolicy
    ready_check: ReadyCheck | None
    cors_proxy: bool = False
    cors_proxy_port: int | None = None
    cors_allow_origins: tuple[str, ...] = ()
    line: int | None = None
    #: a pseudo-terminal per stream (for programs that need a terminal: a REPL, line
    #: editing); False, the default, gives pipes and the colour-forcing variables
    tty: bool = False
    #: the conditions of `depends_on`'s mapping form; a name listed in the list form is
    #: absent and waits as before: running, and healthy when it has a ready_check
    conditions: Mapping[str, Condition] = field(default_factory=FrozenMap)
    #: whether `promenade start` starts it (it can always be started by hand)
    autostart: bool = True
    stop_signal: StopSignal = StopSignal.TERM
    stop_timeout: float = 5   # seconds from the signal (and from stop_command) to SIGKILL
    stop_command: str | None = None   # run with /bin/sh -c before the signal
    watch: Watch | None = None
    #: started only when one of these profiles is active (none: always)
    profiles: tuple[str, ...] = ()
    #: `port: auto`: `port` is None and the supervisor picks a free loopback port at
    #: each start (supervise/autoport.py); `Service.port` is the port of the run
    port_auto: bool = False

    @property
    def has_port(self) -> bool:
        """It listens on a port: a fixed one, or one picked at each start."""
        return self.port is not None or self.port_auto

    def condition(self, dependency: str) -> Condition | None:
        """The condition written for `dependency`, None for the list form."""
        return self.conditions.get(dependency)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "command": self.command,
            "directory": str(self.directory),
            "port": self.port,
            "port_auto": self.port_auto,
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
            "conditions": dict(self.conditions),
            "autostart": self.autostart,
            "stop_signal": self.stop_signal,
            "stop_timeout": self.stop_timeout,
            "stop_command": self.stop_command,
            "watch": asdict(self.watch) if self.watch else None,
            "profiles": list(self.profiles),
            "line": self.line,
        }


@dataclass(frozen=True)
class LogFiles:
    """`manager.log_files`: every service's lines (and the manager's events) on disk,
    rotated by size. `enabled=False` is `log_files: false`."""

    enabled: bool = True
    #: a file is rotated before it would grow past this many bytes
    max_bytes: int = 10 * 1024 * 1024
    #: rotated files kept beside the current one (`api.log.1` … `api.log.<keep>`)
    keep: int = 3

    def __str__(self) -> str:
        """As a reload reports it: `off`, or `max_bytes=10485760 keep=3`."""
        return f"max_bytes={self.max_bytes} keep={self.keep}" if self.enabled else "off"


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
    #: read `.env` beside the config (environment and interpolation)
    dotenv: bool = True
    log_files: LogFiles = LogFiles()
    #: the project's domain: every service with a port is `SERVICE.DOMAIN` on the router
    #: (load.py fills in the config folder's name + `.localhost`; router/names.py)
    domain: str = "promenade.localhost"
    #: register the services' names with the user's router (false: URLs as before)
    router: bool = True


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
    #: every file the config was read from or depends on, for the watcher: the config
    #: files, their `.env` and every env_file (also those that do not exist yet, so
    #: creating one is seen)
    watched_files: tuple[Path, ...]
    #: the values of `.env` beside the config (empty when absent or `manager.dotenv:
    #: false`); already merged into every service's `env`
    dotenv_values: Mapping[str, str] = field(default_factory=FrozenMap)
    #: the config files merged, in order: `path` first, then overrides
    files: tuple[Path, ...] = ()

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


def with_dependencies(services: Mapping[str, ServiceConfig],
                      names: Iterable[str]) -> tuple[str, ...]:
    """`names` and everything they depend on, transitively, in dependency order."""
    wanted: set[str] = set()
    stack = [n for n in names if n in services]
    while stack:
        name = stack.pop()
        if name not in wanted:
            wanted.add(name)
            stack.extend(d for d in services[name].depends_on if d in services)
    return tuple(n for n in dependency_order(services) if n in wanted)


def dependants(services: Mapping[str, ServiceConfig]) -> dict[str, tuple[str, ...]]:
    """For every service, the services that depend on it directly."""
    found: dict[str, list[str]] = {name: [] for name in services}
    for name, svc in services.items():
        for dep in svc.depends_on:
            if dep in found:
                found[dep].append(name)
    return {name: tuple(users) for name, users in found.items()}
