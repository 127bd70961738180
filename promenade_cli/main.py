"""`promenade`: the click group. Every command finds its config (and so its running
manager) with the same lookup as `start` (common.py); errors are `Error: …` with the exit
codes of DESIGN.md (0 ok, 1 failure, 2 usage or config error, 3 no manager running).

The commands live in their own modules and are listed in the group below; they import
common.py, never this module, so there is no import cycle and nothing registers itself.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from promenade_cli.attach_cmd import attach
from promenade_cli.completion import completion
from promenade_cli.config_cmd import config_group
from promenade_cli.hosts_cmd import hosts
from promenade_cli.init_cmd import init
from promenade_cli.logs_cmd import logs
from promenade_cli.run_cmd import run
from promenade_cli.service_cmds import reload, restart, status, stop, wait
from promenade_cli.start_cmd import start
from promenade_cli.trust_cmd import trust
from promenade_core import __version__
from promenade_core.errors import PromenadeError


class PromenadeGroup(click.Group):
    """The one place where a command's outcome becomes the process's exit status.

    Commands return an exit code or raise a `PromenadeError`; library code never exits.
    Subcommands of nested groups (`config check`) run inside this `invoke` too.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            code = super().invoke(ctx)
        except PromenadeError as exc:
            click.echo(f"Error: {exc}", err=True)
            code = exc.exit_code
        if code:
            ctx.exit(code)
        return None


@click.group(cls=PromenadeGroup, context_settings={"help_option_names": ["-h", "--help"]},
             commands=[start, stop, restart, status, wait, logs, reload, attach, run,
                       config_group, hosts, trust, init, completion])
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
