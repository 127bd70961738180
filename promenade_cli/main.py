"""`promenade`: the click group. Every command finds its config (and so its running
manager) with the same lookup as `start`; errors are `Error: …` with the exit codes of
DESIGN.md (0 ok, 1 failure, 2 usage or config error, 3 no manager running)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from promenade_core import __version__
from promenade_core.errors import PromenadeError

ExitCode = int


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-c", "--config", "config", type=click.Path(dir_okay=False),
                        default=None, help="Path to promenade.yaml (default: lookup)")(fn)


def reports_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn PromenadeError into `Error: …` and its exit code; library code never exits."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            code = fn(*args, **kwargs)
        except PromenadeError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code or 0)

    return wrapper


def resolve(config: str | None, home: Path | None = None) -> Path:
    from promenade_core.config.lookup import find_config

    return find_config(config, home=home)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="promenade")
def cli() -> None:
    """Run every service of a local development project from one promenade.yaml."""


@cli.group("config")
def config_group() -> None:
    """Check the config file or show which one is used."""


@config_group.command("check")
@config_option
@reports_errors
def config_check(config: str | None) -> ExitCode:
    """Validate the config; every problem with file, line and key (exit 0 or 2)."""
    from promenade_core.config.audit import security_warnings
    from promenade_core.config.load import load_config

    path = resolve(config)
    loaded = load_config(path)
    for warning in security_warnings(loaded):
        click.echo(f"Warning: {warning}", err=True)
    click.echo(f"{path}: ok ({len(loaded.services)} services)")
    return 0


@config_group.command("path")
@config_option
@reports_errors
def config_path(config: str | None) -> ExitCode:
    """Print the resolved config path (with -c, even when the file does not exist yet)."""
    from promenade_core.config.lookup import explicit_config_path

    click.echo(str(explicit_config_path(config) if config is not None else resolve(config)))
    return 0


def _register() -> None:
    from promenade_cli import control_cmds, start_cmd

    cli.add_command(start_cmd.start)
    for command in control_cmds.COMMANDS:
        cli.add_command(command)
    try:
        from promenade_cli.hosts_cmd import hosts
    except ImportError:  # pragma: no cover - hosts commands ship with hostsd
        return
    cli.add_command(hosts)


_register()


def main() -> None:
    try:
        cli(prog_name="promenade")
    finally:
        _close_bus()


def _close_bus() -> None:
    """Close whatever bus sockets are still open: a ZeroMQ context left with an open
    socket makes the interpreter's exit wait forever (say, after a Ctrl-C)."""
    zmq = sys.modules.get("zmq")
    context = getattr(zmq.Context, "_instance", None) if zmq is not None else None
    if context is not None:
        context.destroy(linger=0)
