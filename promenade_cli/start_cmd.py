"""`promenade start`: the manager in the foreground or in the background (with all its
services or only some), or more services of a running manager.

Under sudo, root only starts a private hostsd: the config, its env_files and the
daemon's error output are opened by the user (privileges.run_as_user), and every process
that lives on runs as the user.

With -d the manager's terminal output goes nowhere: everything it prints is in the log
files (`promenade logs`). Its stderr goes to `daemon.out` in the state folder, emptied
at each start, so what a failing start says (a config error, a taken port, a traceback)
reaches the user without a file that grows for ever.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from promenade_cli.common import (
    START_WATCH,
    ConfigArg,
    ExitCode,
    config_option,
    connect,
    extra_configs,
    report_started,
    resolve,
    start_services,
    wait_for,
    watch_started,
)
from promenade_cli.completion import complete_profiles, complete_services

if TYPE_CHECKING:
    from promenade_core.config.model import Config
from promenade_core.bus.protocol import DEFAULT_WAIT, MAX_WAIT
from promenade_core.errors import PromenadeError, UnknownServiceError

DAEMON_TIMEOUT = 30.0
#: The daemon's stderr, in the state folder: emptied at each start.
DAEMON_OUT = "daemon.out"


@dataclass(frozen=True)
class Shown:
    """Which services' lines the terminal shows (`--only`, `--hide`), as given."""

    only: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()

    def check(self, known: list[str]) -> None:
        """Every name is a service of the config (a usage error, exit 2, otherwise)."""
        from promenade_core.supervise.visibility import unknown_names

        for option, names in (("--only", self.only), ("--hide", self.hide)):
            unknown = unknown_names(names, known)
            if unknown:
                raise UnknownServiceError(
                    f"{option}: unknown service {unknown[0]!r} "
                    f"(known: {', '.join(known) or 'none'})")

    def args(self) -> list[str]:
        """The same choice on the daemon's command line."""
        return ([f"--only={','.join(self.only)}"] if self.only else []) + \
            ([f"--hide={','.join(self.hide)}"] if self.hide else [])


@dataclass(frozen=True)
class Plan:
    """What `start` learnt, as the user, before anything runs."""

    path: Path
    hosts_auto: bool
    hostsd_socket: str
    log: Path | None = None  # the daemon's stderr, daemon.out (with -d), opened as log_fd
    log_fd: int | None = None
    logs: Path | None = None  # the log files' folder (with -d, to tell the user)
    #: a manager already runs for this config: `start SERVICE…` asks it instead
    running: bool = False
    #: more config files merged on top of `path` (`-c` given again)
    extras: tuple[Path, ...] = ()
    #: the active profiles, checked against the config
    profiles: tuple[str, ...] = ()
    #: which services' lines the terminal shows
    shown: Shown = Shown()
    #: the config as validated here (without sudo): the manager need not read it again
    loaded: Config | None = None


@click.command("start")
@click.argument("services", nargs=-1, shell_complete=complete_services)
@config_option
@click.option("-p", "--port", type=click.IntRange(1, 65535), help="Override the dashboard port")
@click.option("-d", "--daemon", is_flag=True, help="Run in the background")
@click.option("--no-ui", is_flag=True, help="No dashboard (CLI only)")
@click.option("-v", "--verbose", is_flag=True, help="Also print debug messages")
@click.option("--wait", "wait", is_flag=True,
              help="With -d (or a manager running): exit once the services are up "
                   "(like `promenade wait`)")
@click.option("--timeout", type=click.FloatRange(0, MAX_WAIT, min_open=True),
              default=DEFAULT_WAIT, show_default=True, help="Seconds --wait waits at most")
@click.option("--profile", "profile", multiple=True, metavar="NAME",
              shell_complete=complete_profiles,
              help="Also start the services of this profile (repeatable, or "
                   "comma-separated; added to PROMENADE_PROFILES)")
@click.option("--only", "only", multiple=True, metavar="NAMES",
              help="Show only these services' lines on the terminal (comma-separated or "
                   "repeated); everything is still logged")
@click.option("--hide", "hide", multiple=True, metavar="NAMES",
              help="Hide these services' lines on the terminal (comma-separated or "
                   "repeated); everything is still logged")
def start(services: tuple[str, ...], config: ConfigArg, port: int | None, daemon: bool,
          no_ui: bool, verbose: bool, wait: bool, timeout: float,
          profile: tuple[str, ...], only: tuple[str, ...], hide: tuple[str, ...]) -> ExitCode:
    """Start the manager and every autostart service of the active profiles; with
    SERVICES, only those and what they depend on. With a manager running, start
    SERVICES in it (their stopped dependencies first) and exit 1 if one fails within a
    few seconds."""
    from promenade_core.config.profiles import ENV_PROFILES
    from promenade_core.hosts.privileges import become, drop_to_sudo_user, sudo_user
    from promenade_core.supervise.visibility import split_names

    owner = sudo_user()
    profiles = active_profiles(profile, os.environ.get(ENV_PROFILES, ""))
    shown = Shown(tuple(split_names(only)), tuple(split_names(hide)))
    plan = _prepare(config, owner, daemon, services, profiles, shown)
    if plan.running:
        if profile:
            raise click.UsageError("--profile applies when the manager starts; it already "
                                   "runs: name the services to start instead")
        if shown.only or shown.hide:
            raise click.UsageError("--only and --hide choose what a new manager's terminal "
                                   "shows; a manager already runs for this config")
        if owner:
            become(owner)
        info = connect(plan.path)
        start_services(info, services)
        if wait:
            return wait_for(info, services, timeout)
        # a service that dies a second after its start exits 1 with its reason
        return report_started(watch_started(info, services, START_WATCH))
    if wait and not daemon:
        raise click.UsageError("--wait needs -d (a manager in the foreground never returns)")
    if daemon:
        code = _daemonize(plan, port, no_ui, verbose, owner, services)
        return code or (wait_for(connect(plan.path), services, timeout) if wait else 0)
    hostsd_socket = None
    if owner:
        hostsd_socket = drop_to_sudo_user(plan.hostsd_socket, start_hostsd=plan.hosts_auto)
    _refuse_if_running(plan.path)
    return _foreground(plan, port, no_ui, verbose, hostsd_socket, services)


def active_profiles(options: tuple[str, ...], env: str) -> tuple[str, ...]:
    """`--profile` (repeatable, comma-separated) and PROMENADE_PROFILES, combined."""
    from promenade_core.config.profiles import parse_profiles

    return parse_profiles((env, *options))


def _prepare(config: ConfigArg, owner: pwd.struct_passwd | None, daemon: bool,
             services: tuple[str, ...] = (), profiles: tuple[str, ...] = (),
             shown: Shown = Shown()) -> Plan:
    """Find and validate the config (and open the daemon's log), as the user.

    Under sudo this runs in a child that has dropped root; without sudo, right here.
    Either way an invalid config fails now, before anything is forked (exit 2).
    """
    from promenade_core.hosts.privileges import run_as_user

    kept: list[Config] = []

    def task() -> tuple[dict[str, Any], list[int]]:
        answer, fds = _prepare_here(config, Path(owner.pw_dir) if owner else None, daemon,
                                    services, profiles, shown)
        loaded = answer.pop("loaded", None)
        if loaded is not None and owner is None:   # in this process: keep it
            kept.append(loaded)
        return answer, fds

    answer, fds = run_as_user(owner, task) if owner else task()
    if answer.get("running"):
        return Plan(Path(answer["path"]), False, "", running=True)
    return Plan(Path(answer["path"]), bool(answer["hosts_auto"]), str(answer["hostsd_socket"]),
                Path(answer["log"]) if answer.get("log") else None, fds[0] if fds else None,
                Path(answer["logs"]) if answer.get("logs") else None,
                extras=tuple(Path(p) for p in answer["extras"]), profiles=profiles,
                shown=shown, loaded=kept[0] if kept else None)


def _prepare_here(config: ConfigArg, home: Path | None, daemon: bool,
                  services: tuple[str, ...] = (), profiles: tuple[str, ...] = (),
                  shown: Shown = Shown()) -> tuple[dict[str, Any], list[int]]:
    from promenade_core.bus.client import find_manager
    from promenade_core.config.load import load_config
    from promenade_core.config.profiles import check_profiles
    from promenade_core.runtime import logs_dir, open_private_file, state_dir

    path = resolve(config, home=home)
    if services and find_manager(path) is not None:
        # The running manager judges the names; the file on disk may be mid-edit.
        return {"path": str(path), "running": True}, []
    extras = extra_configs(config)
    loaded = load_config(path, extras)
    check_targets(services, list(loaded.services))
    check_profiles(profiles, loaded.services)
    shown.check(list(loaded.services))
    manager = loaded.manager
    answer: dict[str, Any] = {"path": str(path), "hosts_auto": manager.hosts_management == "auto",
                              "hostsd_socket": manager.hostsd_socket,
                              "extras": [str(p) for p in extras], "loaded": loaded}
    if not daemon:
        return answer, []
    _refuse_if_running(path)
    log = state_dir(path) / DAEMON_OUT
    answer["log"] = str(log)
    answer["logs"] = str(logs_dir(path))
    fd = open_private_file(log, os.O_WRONLY | os.O_APPEND)
    os.ftruncate(fd, 0)   # after open_private_file's checks: only a file of ours
    return answer, [fd]


def check_targets(services: tuple[str, ...], known: list[str]) -> None:
    """Every name `start` was given is a service of the config (exit 2 otherwise),
    checked before anything starts."""
    for name in services:
        if name not in known:
            raise UnknownServiceError(
                f"unknown service {name!r} (known: {', '.join(known) or 'none'})")


def _refuse_if_running(path: Path) -> None:
    from promenade_core.bus.client import find_manager

    info = find_manager(path)
    if info is not None:
        raise PromenadeError(
            f"Promenade is already running for {path} (pid {info.pid}, dashboard "
            f"{info.dashboard_url or 'off'})")


def _foreground(plan: Plan, port: int | None, no_ui: bool, verbose: bool,
                hostsd_socket: str | None = None, services: tuple[str, ...] = ()) -> ExitCode:
    from promenade_core.manager import Manager
    from promenade_core.supervise.terminal import Printer
    from promenade_core.supervise.visibility import Visibility

    visibility = Visibility(plan.shown.only or None, plan.shown.hide)
    printer = Printer(sys.stdout, verbose=verbose, visibility=visibility)
    try:
        return Manager(plan.path, printer, port=port, no_ui=no_ui,
                       hostsd_socket=hostsd_socket, targets=services or None,
                       extra_configs=plan.extras, profiles=plan.profiles).run(plan.loaded)
    finally:
        printer.close()


def _daemonize(plan: Plan, port: int | None, no_ui: bool, verbose: bool,
               owner: pwd.struct_passwd | None, services: tuple[str, ...] = ()) -> ExitCode:
    """Start a detached manager; return once it answers `ping`.

    Under sudo the child is the one that starts the private hostsd and drops to the
    user, so that hostsd lives as long as the manager, not as long as this command;
    this process drops to the user as soon as the child is started.
    """
    from promenade_core.bus.client import ControlClient, find_manager
    from promenade_core.hosts.privileges import become

    assert plan.log is not None and plan.log_fd is not None
    args = [sys.executable, "-m", "promenade_cli", "start", "-c", str(plan.path)]
    for extra in plan.extras:
        args += ["-c", str(extra)]
    args += ["--port", str(port)] if port else []
    args += ["--no-ui"] if no_ui else []
    args += ["--verbose"] if verbose else []
    for profile in plan.profiles:
        args += ["--profile", profile]
    args += plan.shown.args()
    args += ["--", *services] if services else []
    with os.fdopen(plan.log_fd, "ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True, close_fds=True)
    if owner:
        become(owner)
    deadline = time.monotonic() + DAEMON_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = plan.log.read_text(errors="replace").splitlines()[-10:]
            raise PromenadeError("the manager exited at start:\n" + "\n".join(tail)
                                 + f"\n(its error output: {plan.log}; its log: "
                                 "promenade logs promenade)")
        info = find_manager(plan.path)
        if info is not None:
            try:
                with ControlClient(info.control, timeout=1.0) as bus:
                    bus.request("ping")
            except PromenadeError:
                pass
            else:
                click.echo(f"Promenade is running in the background (pid {info.pid})")
                if info.dashboard_url:
                    click.echo(f"dashboard: {info.dashboard_url}")
                click.echo(f"logs: {plan.logs} (promenade logs)")
                return 0
        time.sleep(0.05)
    raise PromenadeError(f"the manager did not answer within {DAEMON_TIMEOUT:g} s "
                         f"(its error output: {plan.log}; promenade logs promenade)")
