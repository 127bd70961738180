"""`promenade config check|path`: which config file a command uses, and is it valid."""

from __future__ import annotations

import click

from promenade_cli.common import ExitCode, config_option, resolve


@click.group("config")
def config_group() -> None:
    """Check the config file or show which one is used."""


@config_group.command("check")
@config_option
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
def config_path(config: str | None) -> ExitCode:
    """Print the resolved config path (with -c, even when the file does not exist yet)."""
    from promenade_core.config.lookup import explicit_config_path

    click.echo(str(explicit_config_path(config) if config is not None else resolve(config)))
    return 0
