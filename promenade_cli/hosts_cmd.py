"""`promenade hosts show|add|remove|install|uninstall`: hostnames outside a running manager.

`add` and `remove` go through promenade-hostsd with `persist: true`, so the names stay
after the command exits (and across hostsd restarts) until `remove`. They need no sudo:
hostsd checks who is asking. `show` prints the plain lines for pasting by hand; they
carry no `# promenade:` marker on purpose, since hostsd treats marked lines as its own.
`install` and `uninstall` set hostsd up as a system service (hosts_install.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from promenade_cli.common import ConfigArg, ExitCode, config_option, load

if TYPE_CHECKING:
    from promenade_core.config.model import Config


def _named(config: Config) -> list[tuple[str, str]]:
    """(service, hostname) for every service that has a hostname, in config order."""
    return [(name, svc.hostname) for name, svc in config.services.items() if svc.hostname]


def _load(config: ConfigArg) -> tuple[Config, list[tuple[str, str]]]:
    """The names that need a hosts entry; `*.localhost` ones resolve by themselves."""
    from promenade_hostsd.hostnames import resolves_by_itself

    loaded = load(config)
    named = _named(loaded)
    for service, hostname in named:
        if resolves_by_itself(hostname):
            click.echo(f"{service}: {hostname} needs no hosts entry (*.localhost resolves "
                       "to loopback in browsers by itself)", err=True)
    needed = [(s, h) for s, h in named if not resolves_by_itself(h)]
    if not named:
        click.echo(f"no service in {loaded.path} has a hostname", err=True)
    return loaded, needed


@click.group("hosts")
def hosts() -> None:
    """The config's hostnames in /etc/hosts (through promenade-hostsd)."""


@hosts.command("show")
@config_option
def show(config: ConfigArg) -> ExitCode:
    """Print the /etc/hosts lines for the config's hostnames."""
    from promenade_core.hosts.client import host_lines

    _loaded, named = _load(config)
    for _service, hostname in named:
        for line in host_lines(hostname):
            click.echo(line)
    return 0


@hosts.command("add")
@config_option
def add(config: ConfigArg) -> ExitCode:
    """Map every hostname of the config until `promenade hosts remove`."""
    from promenade_core.hosts.client import hostsd_request

    loaded, named = _load(config)
    socket_path = loaded.manager.hostsd_socket
    failed = 0
    for service, hostname in named:
        request = {"op": "add", "service": service, "hostname": hostname, "persist": True}
        reply = hostsd_request(socket_path, request)
        if reply.get("ok"):
            click.echo(f"{service}: {hostname} -> 127.0.0.1")
        else:
            failed += 1
            click.echo(f"Error: {service}: {_message(reply)}", err=True)
    return 1 if failed else 0


@hosts.command("remove")
@config_option
def remove(config: ConfigArg) -> ExitCode:
    """Remove the hostnames that `promenade hosts add` mapped for this config."""
    from promenade_core.hosts.client import hostsd_request

    loaded, named = _load(config)
    socket_path = loaded.manager.hostsd_socket
    listed = hostsd_request(socket_path, {"op": "list"}).get("entries") or []
    # Persisted entries are keyed by service name: leave another project's `api` alone.
    mine = {(e["service"], e["hostname"]) for e in listed if e.get("mine") and e.get("persist")}
    failed = 0
    for service, hostname in named:
        if (service, hostname.lower()) not in mine:
            click.echo(f"{service}: {hostname} is not mapped by `promenade hosts add`")
            continue
        reply = hostsd_request(socket_path, {"op": "remove", "service": service, "persist": True})
        if reply.get("ok"):
            click.echo(f"{service}: removed {', '.join(reply['removed'])}")
        else:
            failed += 1
            click.echo(f"Error: {service}: {_message(reply)}", err=True)
    return 1 if failed else 0


def _message(reply: dict[str, object]) -> str:
    error = reply.get("error")
    return str(error.get("message") if isinstance(error, dict) else error)


_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True,
                 "help_option_names": []}


@hosts.command("install", context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def install(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Run promenade-hostsd as a system service (sudo; --help for options)."""
    from promenade_cli.hosts_install import main

    ctx.exit(main(["install", *args]))


@hosts.command("uninstall", context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def uninstall(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Stop and remove the hostsd service (sudo; --purge: the group and state too)."""
    from promenade_cli.hosts_install import main

    ctx.exit(main(["uninstall", *args]))
