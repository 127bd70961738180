"""What every command shares: the `-c/--config` option, the config lookup, finding the
running manager and asking it something over the bus.

Commands raise `PromenadeError`s and return an exit code; the group in main.py turns the
errors into `Error: …` lines. The bus client (zmq) and the config loader (YAML,
marshmallow) are imported when a command first needs them, so that `promenade --version`
and `--help` load neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from promenade_core.errors import NoManagerError, UnknownServiceError

if TYPE_CHECKING:
    from promenade_core.bus import protocol
    from promenade_core.bus.client import ManagerInfo
    from promenade_core.config.model import Config

ExitCode = int
F = TypeVar("F", bound=Callable[..., Any])

#: How long a command that stops or restarts services waits for the manager's answer.
STOP_TIMEOUT = 60.0
#: How long `promenade start SERVICE` watches what it started: a service that crashes
#: within this is reported (exit 1), not printed as running.
START_WATCH = 3.0
#: ... but no longer than this once each runs (waiting.proven_up).
START_STEADY = 1.5
WATCH_POLL = 0.1
#: A `wait` request's reply may take the wait's whole timeout; the request's own
#: timeout is longer by this.
WAIT_MARGIN = 10.0


#: What `-c/--config` gives a command: every PATH given, in order (often none).
ConfigArg = tuple[str, ...]


def config_option(fn: F) -> F:
    """`-c/--config PATH`, the same on every command; repeatable: later files are
    merged on top of earlier ones (the first names the project)."""
    option = click.option("-c", "--config", "config", type=click.Path(dir_okay=False),
                          multiple=True,
                          help="Path to promenade.yaml (default: lookup); give it again to "
                               "merge more files on top, later ones winning")
    return option(fn)


def resolve(config: ConfigArg, home: Path | None = None) -> Path:
    """The config file that names the project: the first `--config`, else the lookup
    `start` uses. A running manager is found by it."""
    from promenade_core.config.lookup import find_config

    return find_config(config[0] if config else None, home=home)


def extra_configs(config: ConfigArg) -> tuple[Path, ...]:
    """The files given after the first `--config`, merged on top of it in order."""
    from promenade_core.config.lookup import find_config

    return tuple(find_config(path) for path in config[1:])


def load(config: ConfigArg, home: Path | None = None) -> Config:
    """The config a command works on: every file `--config` named, merged."""
    from promenade_core.config.load import load_config

    return load_config(resolve(config, home=home), extra_configs(config))


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


def wait_for(info: ManagerInfo, services: Sequence[str] | None, timeout: float) -> ExitCode:
    """`promenade wait`: ask the manager to wait, print the outcome; 0 when all are up."""
    result: protocol.WaitResult = request(
        info, "wait", timeout=timeout + WAIT_MARGIN, services=list(services or ()) or None,
        timeout_seconds=timeout)
    return report_wait(result, timeout)


def report_wait(result: protocol.WaitResult, timeout: float) -> ExitCode:
    """Each service's line when all are up (stdout); otherwise why not (stderr), exit 1."""
    from promenade_core.supervise.waiting import explain, status_line

    if result["ok"]:
        for status in result["services"].values():
            click.echo(status_line(status))
        return 0
    if result["failed"]:
        click.echo("Error: not every service can come up:", err=True)
        entries = result["failed"]
    else:
        click.echo(f"Error: still not up after {timeout:g} s:", err=True)
        entries = result["waiting"]
    for entry in entries:
        click.echo(f"  {explain(entry)}", err=True)
    return 1


def start_services(info: ManagerInfo, services: Sequence[str]) -> None:
    """Ask a running manager to start each service (it starts their stopped
    dependencies first); an unknown name is a usage error."""
    for service in services:
        request(info, "start", timeout=STOP_TIMEOUT, service=service)


def watch_started(info: ManagerInfo, services: Sequence[str], watch: float,
                  ) -> list[protocol.StatusObject]:
    """The services' status objects once all are up, one failed, or `watch` passed."""
    from promenade_core.bus.client import ControlClient
    from promenade_core.supervise.waiting import Verdict, after_start, proven_up

    deadline = time.monotonic() + watch
    with ControlClient(info.control) as bus:
        while True:
            statuses = [bus.request("service", service=s) for s in services]
            failed = {after_start(s) for s in statuses} & {Verdict.FAILED, Verdict.NOT_STARTED}
            if failed or all(proven_up(s, START_STEADY) for s in statuses) \
                    or time.monotonic() >= deadline:
                return statuses
            time.sleep(WATCH_POLL)


def report_started(statuses: Sequence[protocol.StatusObject]) -> ExitCode:
    """One line per service; exit 1 when one of them failed, gave up or is retrying."""
    from promenade_core.supervise.waiting import Verdict, after_start, status_line

    failed = False
    for status in statuses:
        click.echo(status_line(status))
        failed = failed or after_start(status) in (Verdict.FAILED, Verdict.NOT_STARTED)
    return 1 if failed else 0


def service_action(path: Path, action: str, service: str) -> ExitCode:
    """`start|stop|restart SERVICE` of a running manager; exit 1 if it ends up failed."""
    info = connect(path)
    status = request(info, action, timeout=STOP_TIMEOUT, service=service)
    pid = f" (pid {status['pid']})" if status.get("pid") else ""
    click.echo(f"{service}: {status['status']}{pid}")
    return 0 if status["status"] not in ("failed", "gave_up") else 1
