"""Shell completion: `promenade completion bash|zsh|fish` prints click's own script, and
the functions here complete service and profile names from the current config.

The script calls `promenade` back with `_PROMENADE_COMPLETE=bash_complete` (zsh_…,
fish_…) and the words typed so far; click parses them (so `-c PATH` typed earlier on
the line is in `ctx.params`) and asks the argument's `shell_complete` function. The
config is loaded as `start` would load it; with no config or a broken one the answer is
simply empty: a completion must never print an error into the line being typed.
"""

from __future__ import annotations

# click.shell_completion is imported where a completion runs: every command module
# imports this one for its `shell_complete=` callbacks, and `promenade status` need not
# load it.
from typing import TYPE_CHECKING

import click

from promenade_cli.common import ExitCode, load
from promenade_core.errors import PromenadeError

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from promenade_core.config.model import Config

PROG = "promenade"
#: The variable click's scripts set; derived by click from the program's name.
COMPLETE_VAR = "_PROMENADE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> ExitCode:
    """Print the completion script for SHELL (bash, zsh or fish); see the README for
    where to put it. Service names complete after start, stop, restart, logs, status,
    wait and run, and profile names after --profile."""
    from click.shell_completion import get_completion_class

    complete_class = get_completion_class(shell)
    if complete_class is None:   # click.Choice has already refused other shells
        raise click.BadParameter(f"unsupported shell {shell!r}")
    script = complete_class(ctx.find_root().command, {}, PROG, COMPLETE_VAR).source()
    click.echo(script)
    return 0


def complete_services(ctx: click.Context, param: click.Parameter, incomplete: str,
                      ) -> list[CompletionItem]:
    """Service names of the config starting with `incomplete`, in file order; for an
    argument taking several, those already typed are left out."""
    from click.shell_completion import CompletionItem

    config = _quiet_config(ctx)
    if config is None:
        return []
    typed = ctx.params.get(param.name or "")
    already = set(typed) if isinstance(typed, tuple) else set()
    return [CompletionItem(name) for name in config.services
            if name.startswith(incomplete) and name not in already]


def complete_profiles(ctx: click.Context, param: click.Parameter, incomplete: str,
                      ) -> list[CompletionItem]:
    """Every profile named by a service of the config (`profiles: [debug]`), sorted;
    for `start --profile`."""
    from click.shell_completion import CompletionItem

    config = _quiet_config(ctx)
    if config is None:
        return []
    profiles = sorted({p for svc in config.services.values() for p in svc.profiles})
    return [CompletionItem(p) for p in profiles if p.startswith(incomplete)]


def complete_run_service(ctx: click.Context, param: click.Parameter, incomplete: str,
                         ) -> list[CompletionItem]:
    """`promenade run <TAB>`: the first word may be a SERVICE; after it comes a
    command, which is the shell's to complete."""
    if ctx.params.get(param.name or ""):
        return []
    return complete_services(ctx, param, incomplete)


def _quiet_config(ctx: click.Context) -> Config | None:
    """The config named by `-c` on the line (else the lookup's), or None when there is
    none or it does not load."""
    given = ctx.params.get("config")
    paths = tuple(given) if isinstance(given, tuple) else ()
    try:
        return load(paths)
    except (PromenadeError, OSError, ValueError):
        return None
