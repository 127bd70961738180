"""`promenade start`: the manager in the foreground, in the background, or one service."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import click

from promenade_cli.main import ExitCode, config_option, reports_errors, resolve
from promenade_core.errors import PromenadeError

DAEMON_TIMEOUT = 30.0


@click.command("start")
@click.argument("service", required=False)
@config_option
@click.option("-p", "--port", type=click.IntRange(1, 65535), help="Override the dashboard port")
@click.option("-d", "--daemon", is_flag=True, help="Run in the background")
@click.option("--no-ui", is_flag=True, help="No dashboard (CLI only)")
@click.option("-v", "--verbose", is_flag=True, help="Also print debug messages")
@reports_errors
def start(service: str | None, config: str | None, port: int | None, daemon: bool,
          no_ui: bool, verbose: bool) -> ExitCode:
    """Start the manager and every service, or start one SERVICE of a running manager."""
    from promenade_core.client import find_manager

    owner = _sudo_user()
    path = resolve(config, home=Path(owner.pw_dir) if owner else None)
    if service:
        from promenade_cli.control_cmds import service_action

        return service_action(path, "start", service)
    if daemon:
        return _daemonize(path, port, no_ui, verbose, owner)
    hostsd_socket = _drop_privileges(path) if owner else None
    info = find_manager(path)
    if info is not None:
        raise PromenadeError(
            f"Promenade is already running for {path} (pid {info.pid}, dashboard "
            f"{info.dashboard_url or 'off'})")
    return _foreground(path, port, no_ui, verbose, hostsd_socket)


def _sudo_user() -> pwd.struct_passwd | None:
    """The user behind `sudo promenade start`, or None when not under sudo."""
    user = os.environ.get("SUDO_USER")
    if os.geteuid() != 0 or not user or user == "root":
        return None
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise PromenadeError(f"SUDO_USER is {user!r}, which is not a user here") from None


def _drop_privileges(path: Path) -> str:
    """Keep root only for a private hostsd; run the manager and services as the user."""
    from promenade_core.config import load_config
    from promenade_core.privileges import drop_to_sudo_user

    manager = load_config(path).manager
    return drop_to_sudo_user(manager.hostsd_socket,
                             start_hostsd=manager.hosts_management == "auto")


def _foreground(path: Path, port: int | None, no_ui: bool, verbose: bool,
                hostsd_socket: str | None = None) -> ExitCode:
    from promenade_core.manager import Manager
    from promenade_core.printer import Printer

    printer = Printer(sys.stdout, verbose=verbose)
    try:
        return Manager(path, printer, port=port, no_ui=no_ui, hostsd_socket=hostsd_socket).run()
    finally:
        printer.close()


def _log_file(path: Path, owner: pwd.struct_passwd | None) -> Path:
    """The daemon's log in the user's state folder, owned by the user even under sudo."""
    from promenade_core.runtime import state_dir

    if owner is None:
        return state_dir(path) / "manager.log"
    saved = os.environ.get("HOME")
    os.environ["HOME"] = owner.pw_dir
    try:
        folder = state_dir(path)
    finally:
        if saved is not None:
            os.environ["HOME"] = saved
    log = folder / "manager.log"
    log.touch()
    home = Path(owner.pw_dir)
    for item in [log, *[p for p in log.parents if home in p.parents]]:
        os.chown(item, owner.pw_uid, owner.pw_gid)
    return log


def _daemonize(path: Path, port: int | None, no_ui: bool, verbose: bool,
               owner: pwd.struct_passwd | None) -> ExitCode:
    """Start a detached manager; return once it answers `ping`.

    Under sudo the child is the one that starts the private hostsd and drops to the
    user, so that hostsd lives as long as the manager, not as long as this command.
    """
    from promenade_core.client import ControlClient, find_manager

    info = find_manager(path, uid=owner.pw_uid if owner else None)
    if info is not None:
        raise PromenadeError(
            f"Promenade is already running for {path} (pid {info.pid}, dashboard "
            f"{info.dashboard_url or 'off'})")
    log_path = _log_file(path, owner)
    args = [sys.executable, "-m", "promenade_cli", "start", "-c", str(path)]
    args += ["--port", str(port)] if port else []
    args += ["--no-ui"] if no_ui else []
    args += ["--verbose"] if verbose else []
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    deadline = time.monotonic() + DAEMON_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-10:]
            raise PromenadeError("the manager exited at start:\n" + "\n".join(tail)
                                 + f"\n(full log: {log_path})")
        info = find_manager(path, uid=owner.pw_uid if owner else None)
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
                click.echo(f"log: {log_path}")
                return 0
        time.sleep(0.05)
    raise PromenadeError(f"the manager did not answer within {DAEMON_TIMEOUT:g} s "
                         f"(log: {log_path})")
