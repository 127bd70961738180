"""`promenade`: the click group. Every command finds its config (and so its running
manager) with the same lookup as `start` (common.py); errors are `Error: …` with the exit
codes of DESIGN.md (0 ok, 1 failure, 2 usage or config error, 3 no manager running).

The commands live in their own modules, listed in COMMANDS below and imported only when
the command runs (or `--help` lists them): `promenade status` then loads neither attach's
nor init's code, and starts faster. They import common.py, never this module, so there
is no import cycle and nothing registers itself.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from promenade_core import __version__
from promenade_core.errors import PromenadeError

#: Each command's name: the module that defines it and the name it has there.
COMMANDS: dict[str, tuple[str, str]] = {
    "start": ("promenade_cli.start_cmd", "start"),
    "stop": ("promenade_cli.service_cmds", "stop"),
    "restart": ("promenade_cli.service_cmds", "restart"),
    "status": ("promenade_cli.service_cmds", "status"),
    "wait": ("promenade_cli.service_cmds", "wait"),
    "logs": ("promenade_cli.logs_cmd", "logs"),
    "reload": ("promenade_cli.service_cmds", "reload"),
    "attach": ("promenade_cli.attach_cmd", "attach"),
    "run": ("promenade_cli.run_cmd", "run"),
    "config": ("promenade_cli.config_cmd", "config_group"),
    "hosts": ("promenade_cli.hosts_cmd", "hosts"),
    "trust": ("promenade_cli.trust_cmd", "trust"),
    "init": ("promenade_cli.init_cmd", "init"),
    "completion": ("promenade_cli.completion", "completion"),
}


class PromenadeGroup(click.Group):
    """The one place where a command's outcome becomes the process's exit status, and
    where commands are loaded, each when first asked for (COMMANDS).

    Commands return an exit code or raise a `PromenadeError`; library code never exits.
    Subcommands of nested groups (`config check`) run inside this `invoke` too.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, name = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), name)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            code = super().invoke(ctx)
        except PromenadeError as exc:
            click.echo(f"Error: {exc}", err=True)
            code = exc.exit_code
        if code:
            ctx.exit(code)
        return None


@click.group(cls=PromenadeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="promenade")
def cli() -> None:
    """Run every service of a local development project from one promenade.yaml."""


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


if __name__ == "__main__":
    main()
