"""`promenade run [SERVICE] -- COMMAND…`: a one-off command with a service's environment,
like `honcho run` and `foreman run`.

The command replaces this process (exec): its exit status is its own, a signal that
kills it reaches the shell as 128+N exactly as if it had been run directly, Ctrl-C and
a terminal's job control go straight to it, and nothing of Promenade stays in between.
ARGV is executed as given, without a shell (like `honcho run`), so `$VAR` in it is
expanded by the shell you typed it in, not with the service's environment: for that,
run a shell yourself (`promenade run api -- sh -c 'echo $DATABASE_URL'`).

No manager needs to be running, and a running one is never asked: this reads the config
(`.env`, interpolation, override files included) the way `promenade start` would. A
`port: auto` service's command gets a free port of its own as PORT, as a start would.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from promenade_cli.common import ConfigArg, ExitCode, config_option, load
from promenade_cli.completion import complete_run_service
from promenade_core.config.model import Config, ServiceConfig
from promenade_core.errors import PromenadeError, UnknownServiceError

#: What a shell answers for a command it cannot find, and for one it cannot execute.
EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126
SEPARATORS = "promenade.run.separators"


class RunError(PromenadeError):
    """The command could not be started; the exit code follows the shell's convention."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class OneOff:
    """What to execute: argv, in which folder, with which environment."""

    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str]


class RunCommand(click.Command):
    """Notes how many `--` were typed: click drops the first one when it comes before
    every argument (`run -- env`), which is the only way to tell `run -- env` (no
    SERVICE) from `run env` (a mistake)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[SEPARATORS] = args.count("--")
        return super().parse_args(ctx, args)


@click.command("run", cls=RunCommand,
               context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": False})
@config_option
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED,
                metavar="[SERVICE] -- COMMAND [ARG]...", shell_complete=complete_run_service)
@click.pass_context
def run(ctx: click.Context, config: ConfigArg, args: tuple[str, ...]) -> ExitCode:
    """Run a one-off COMMAND in the foreground with SERVICE's environment and folder, or
    with the project's (os.environ < .env < defaults.env, in the config's folder).

    \b
    promenade run api -- python manage.py migrate
    promenade run -- env
    promenade run api -- sh -c 'echo $DATABASE_URL'

    Its exit status is the command's (it replaces promenade).
    """
    from promenade_core.config.environment import project_environment, service_environment

    service, argv = split_args(args, dropped=ctx.meta[SEPARATORS] > args.count("--"))
    loaded = load(config)
    if service is None:
        one_off = OneOff(argv, loaded.path.parent, project_environment(loaded, os.environ))
    elif service in loaded.services:
        svc = loaded.services[service]
        one_off = OneOff(argv, svc.directory,
                         service_environment(svc, os.environ, _one_off_port(loaded, svc),
                                             loaded.manager))
    else:
        raise UnknownServiceError(
            f"unknown service {service!r} (known: {', '.join(loaded.services)})")
    execute(one_off)
    return 0   # never reached: execute replaces the process or raises


def _one_off_port(config: Config, svc: ServiceConfig) -> int | None:
    """For `port: auto`, a free port of the command's own (what a start would give), as
    no manager is asked: a running service's port is `promenade status`'s to tell."""
    if not svc.port_auto:
        return None
    from promenade_core.supervise import autoport

    return autoport.pick(None, autoport.claimed_ports(config))


def split_args(args: Sequence[str], dropped: bool) -> tuple[str | None, tuple[str, ...]]:
    """(SERVICE or None, ARGV) from what follows `run`'s options. `dropped`: click took
    a `--` typed before every argument (`run -- cmd…`), so there is no SERVICE; else
    the first `--` left separates SERVICE from the command (`run api -- cmd…`). A
    command's own later `--` (`npm run dev -- --port 3`) is kept."""
    args = list(args)
    if dropped:
        service, argv = None, args
    elif "--" in args:
        cut = args.index("--")
        if cut != 1:
            raise click.UsageError(
                f"one SERVICE before '--', got {' '.join(args[:cut])!r} (options such as "
                "-c go before SERVICE)" if cut else "no SERVICE before '--'")
        service, argv = args[0], args[cut + 1:]
    else:
        raise click.UsageError(
            "put '--' before the command: promenade run [SERVICE] -- COMMAND [ARG]…")
    if not argv:
        raise click.UsageError("no command to run: promenade run [SERVICE] -- COMMAND [ARG]…")
    return service, tuple(argv)


def execute(one_off: OneOff) -> None:
    """Replace this process with the command; return only by raising RunError."""
    try:
        os.chdir(one_off.cwd)
    except OSError as exc:
        raise RunError(f"cannot enter {one_off.cwd}: {exc.strerror}", EXIT_CANNOT_EXECUTE) \
            from None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(one_off.argv[0], list(one_off.argv), one_off.env)
    except OSError as exc:
        raise exec_error(one_off.argv, one_off.env, exc, one_off.cwd) from None


def exec_error(argv: Sequence[str], env: Mapping[str, str], exc: OSError, cwd: Path,
               ) -> RunError:
    """The shell's answer (127 not found, 126 not executable) with a hint: a whole
    command line in one argument is the usual mistake."""
    name = argv[0]
    if isinstance(exc, FileNotFoundError):
        where = f" in {cwd}" if "/" in name else f" in PATH ({env.get('PATH', os.defpath)})"
        hint = (f"; to run a shell command line, use: promenade run [SERVICE] -- sh -c {name!r}"
                if len(argv) == 1 and " " in name.strip() else "")
        return RunError(f"command not found: {name!r}{where}{hint}", EXIT_NOT_FOUND)
    return RunError(f"cannot execute {name!r}: {exc.strerror or exc}", EXIT_CANNOT_EXECUTE)
