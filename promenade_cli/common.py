"""What every command shares: the `-c/--config` option, the config lookup, finding the
running manager and asking it something over the bus.

Commands raise `PromenadeError`s and return an exit code; the group in main.py turns the
errors into `Error: …` lines. The bus client (zmq) and the config loader (YAML,
marshmallow) are imported when a command first needs them, so that `promenade --version`
and `--help` load neither.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from promenade_core.errors import NoManagerError, UnknownServiceError

if TYPE_CHECKING:
    from promenade_core.bus.client import ManagerInfo

ExitCode = int
F = TypeVar("F", bound=Callable[..., Any])

#: How long a command that stops or restarts services waits for the manager's answer.
STOP_TIMEOUT = 60.0


def config_option(fn: F) -> F:
    """`-c/--config PATH`, the same on every command."""
    option = click.option("-c", "--config", "config", type=click.Path(dir_okay=False),
                          default=None, help="Path to promenade.yaml (default: lookup)")
    return option(fn)


def resolve(config: str | None, home: Path | None = None) -> Path:
    """The config file a command works on: `--config`, else the lookup `start` uses."""
    from promenade_core.config.lookup import find_config

    return find_config(config, home=home)


def connect(path: Path) -> ManagerInfo:
    """The manager running for the config at `path` (exit 3 when there is none)."""
    from promenade_core.bus.client import find_manager

    info = find_manager(path)
    if info is None:
        raise NoManagerError(f"no Promenade manager is running for {path}")
    return info


def request(info: ManagerInfo, cmd: str, timeout: float = 10.0, **args: Any) -> Any:
    """One control request; an unknown service is a usage error (exit 2)."""
    from promenade_core.bus import protocol
    from promenade_core.bus.client import BusError, ControlClient

    try:
        with ControlClient(info.control, timeout=timeout) as bus:
            return bus.request(cmd, **args)
    except BusError as exc:
        if exc.code == protocol.UNKNOWN_SERVICE:
            raise UnknownServiceError(exc.message) from exc
        raise


def service_action(path: Path, action: str, service: str) -> ExitCode:
    """`start|stop|restart SERVICE` of a running manager; exit 1 if it ends up failed."""
    info = connect(path)
    status = request(info, action, timeout=STOP_TIMEOUT, service=service)
    pid = f" (pid {status['pid']})" if status.get("pid") else ""
    click.echo(f"{service}: {status['status']}{pid}")
    return 0 if status["status"] not in ("failed", "gave_up") else 1
