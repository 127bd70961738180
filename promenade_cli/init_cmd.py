"""`promenade init [--from PROCFILE]`: a first promenade.yaml in the current folder,
either a commented starter or the services of a Procfile (procfile.py parses it).

The file is created, never replaced (O_EXCL), and never through a symlink planted at
its name (O_NOFOLLOW). What is written is loaded by the real loader first: `init`
never leaves a config that `promenade config check` refuses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import click

from promenade_cli.common import ConfigArg, ExitCode, config_option
from promenade_cli.procfile import Conversion, ProcfileService, base_port_from, parse_procfile
from promenade_core.config.lookup import absolute_path, display_path
from promenade_core.errors import EXIT_USAGE, PromenadeError

CONFIG_NAME = "promenade.yaml"
DOTENV = ".env"

STARTER = """\
# promenade.yaml: the services of this project. `promenade start` runs them all,
# `promenade config check` validates this file, `promenade config show` prints it as
# Promenade reads it. Every key is in the README's "Config reference".
#
# ${VAR} takes a value from the environment or from .env beside this file; $$ is a
# literal $. Personal tweaks go in promenade.override.yaml (merged on top of this file).

# manager:
#   port: 9000                  # the dashboard, http://127.0.0.1:9000

services:
  web:
    command: python3 -m http.server $PORT   # run with /bin/sh -c
    port: 8000                  # checked free before start, exported as PORT
    # directory: ./frontend     # relative to this file's folder
    # ready_check: {type: http, path: /}
    # env:
    #   DEBUG: "1"

  # worker:
  #   command: python3 worker.py
  #   restart_policy: always    # never | once | always
  #   depends_on: [web]
"""


class InitError(PromenadeError):
    exit_code = EXIT_USAGE


@click.command("init")
@click.option("--from", "procfile", type=click.Path(dir_okay=False),
              help="Convert this Procfile (honcho/foreman format) into services")
@config_option
def init(procfile: str | None, config: ConfigArg) -> ExitCode:
    """Write a commented starter promenade.yaml in the current folder (or at -c PATH),
    or one with the services of a Procfile (--from Procfile). Never overwrites a file."""
    target = target_path(config)
    if os.path.lexists(target):   # said before any other problem; O_EXCL still decides
        raise _exists(target)
    if procfile is None:
        _check(STARTER, target)
        write_new_file(target, STARTER)
        click.echo(f"Wrote {display_path(target)}: edit it, then run `promenade start`.")
        return 0
    text, conversion = _from_procfile(Path(procfile), target)
    _check(text, target)
    write_new_file(target, text)
    _report(conversion, Path(procfile), target)
    return 0


def target_path(config: ConfigArg) -> Path:
    """Where to write: `-c PATH`, else ./promenade.yaml."""
    if len(config) > 1:
        raise click.UsageError("init writes one file: give -c once")
    return absolute_path(Path(config[0]).expanduser() if config else Path(CONFIG_NAME))


def _from_procfile(procfile: Path, target: Path) -> tuple[str, Conversion]:
    from promenade_core.config.dotenv import read_env_file
    from promenade_core.userfile import UnreadableFile, read_user_file

    try:
        text = read_user_file(procfile).decode("utf-8")
    except UnreadableFile as exc:
        raise InitError(f"{procfile} {exc.reason}") from None
    except UnicodeDecodeError as exc:
        raise InitError(f"{procfile} is not UTF-8 text ({exc.reason})") from None
    dotenv: dict[str, str] = {}
    dotenv_path = procfile.parent / DOTENV
    if os.path.exists(dotenv_path):
        try:
            dotenv, _ = read_env_file(dotenv_path, str(dotenv_path))
        except UnreadableFile:
            pass   # only PORT is read from it here; loading reports its problems
    conversion = parse_procfile(text, str(procfile), base_port_from(dotenv))
    if not conversion.services:
        for note in conversion.notes:
            click.echo(f"Warning: {note}", err=True)
        raise InitError(f"{procfile} has no `name: command` line to convert; nothing written")
    directory = os.path.relpath(os.path.abspath(procfile.parent), target.parent)
    return render_services(conversion.services, procfile.name, directory), conversion


def render_services(services: Sequence[ProcfileService], source: str,
                    directory: str = ".") -> str:
    """promenade.yaml text for converted services; `directory` is the Procfile's folder
    relative to the config's (honcho runs each process there)."""
    lines = [f"# promenade.yaml, converted from {source} by `promenade init --from`.",
             "# `promenade start` runs every service; keys: the README's Config reference.",
             "# $PORT in a command is the service's `port:` (Promenade exports it as PORT).",
             "", "services:"]
    for service in services:
        lines += [f"  {service.name}:", f"    command: {yaml_string(service.command)}"]
        if service.port is not None:
            lines.append(f"    port: {service.port}")
        if directory != ".":
            lines.append(f"    directory: {yaml_string(directory)}")
    return "\n".join(lines) + "\n"


def yaml_string(value: str) -> str:
    """`value` as a YAML scalar: plain when YAML reads it back as this same string,
    else double-quoted (a JSON string is a valid YAML double-quoted scalar)."""
    import yaml

    try:
        plain_ok = yaml.safe_load(f"k: {value}\n") == {"k": value}
    except yaml.YAMLError:
        plain_ok = False
    return value if plain_ok and "\n" not in value else json.dumps(value, ensure_ascii=False)


def write_new_file(path: Path, text: str) -> None:
    """Create `path` with `text`, mode 0644 (less the umask); never replace a file and
    never follow a symlink at its name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise _exists(path) from None
    except OSError as exc:
        raise InitError(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        os.unlink(path)   # ours: created above; a half-written config helps nobody
        raise InitError(f"cannot write {path}: {exc.strerror}") from None


def _exists(path: Path) -> InitError:
    return InitError(f"{path} already exists; init never overwrites it (edit it, or "
                     "remove it first)")


def _check(text: str, target: Path) -> None:
    """Load what would be written with the real loader (with the .env beside it)."""
    from promenade_core.config.load import load_config_text
    from promenade_core.errors import ConfigError

    try:
        load_config_text(text, target)
    except ConfigError as exc:
        raise InitError(f"the generated {CONFIG_NAME} would not load; nothing written:\n"
                        f"{exc}") from None


def _report(conversion: Conversion, procfile: Path, target: Path) -> None:
    names = ", ".join(s.name for s in conversion.services)
    count = len(conversion.services)
    click.echo(f"Wrote {display_path(target)}: {count} service{'s' if count != 1 else ''} from "
               f"{procfile} ({names}).")
    for service in conversion.services:
        if service.port is not None:
            click.echo(f"  {service.name}: port {service.port} (its command uses $PORT)")
    for note in conversion.notes:
        click.echo(f"Warning: {note}", err=True)
    _report_dotenv(procfile.parent / DOTENV, target.parent / DOTENV)
    click.echo("Next: `promenade config check`, then `promenade start`.")


def _report_dotenv(beside_procfile: Path, beside_config: Path) -> None:
    """honcho and foreman read `.env`; so does Promenade, from beside promenade.yaml."""
    if not os.path.exists(beside_procfile):
        return
    if os.path.abspath(beside_procfile) == os.path.abspath(beside_config):
        click.echo(f"{DOTENV} is kept as it is: Promenade reads {DOTENV} beside "
                   f"{CONFIG_NAME} itself (for every service's environment and for ${{VAR}}).")
    else:
        click.echo(f"Warning: {beside_procfile} is not beside {CONFIG_NAME}, so Promenade "
                   f"will not read it: move it, or add `env_file: {beside_procfile}` to the "
                   "services that need it.", err=True)
