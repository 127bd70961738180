"""`promenade config check|path|schema`: which config file a command uses, is it valid,
and the JSON Schema editors can check it with."""

from __future__ import annotations

import click

from promenade_cli.common import ConfigArg, ExitCode, config_option, load, resolve


@click.group("config")
def config_group() -> None:
    """Check the config file or show which one is used."""


@config_group.command("check")
@config_option
def config_check(config: ConfigArg) -> ExitCode:
    """Validate the config; every problem with file, line and key (exit 0 or 2)."""
    from promenade_core.config.audit import security_warnings

    path = resolve(config)
    loaded = load(config)
    for warning in security_warnings(loaded):
        click.echo(f"Warning: {warning}", err=True)
    click.echo(f"{path}: ok ({len(loaded.services)} services)")
    return 0


@config_group.command("path")
@config_option
def config_path(config: ConfigArg) -> ExitCode:
    """Print the resolved config path (with -c, even when the file does not exist yet)."""
    from promenade_core.config.lookup import explicit_config_path

    click.echo(str(explicit_config_path(config[0]) if config else resolve(config)))
    return 0


@config_group.command("show")
@config_option
def config_show(config: ConfigArg) -> ExitCode:
    """Print the config as Promenade reads it (merged files, .env, ${VAR} resolved,
    defaults filled in) as YAML, secrets masked; exit 2 with every problem if invalid."""
    from promenade_core.config.show import show_config

    click.echo(show_config(load(config)), nl=False)
    return 0


@config_group.command("schema")
@click.option("--override", is_flag=True,
              help="The schema for override files: the same keys, none required.")
def config_schema(override: bool) -> ExitCode:
    """Print the JSON Schema of promenade.yaml (draft 2020-12), for editors."""
    from promenade_core.config.jsonschema import render

    click.echo(render(override), nl=False)
    return 0
