"""`promenade start`: the manager in the foreground, in the background, or one service."""

from __future__ import annotations

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

    path = resolve(config)
    if service:
        from promenade_cli.control_cmds import service_action

        return service_action(path, "start", service)
    info = find_manager(path)
    if info is not None:
        raise PromenadeError(
            f"Promenade is already running for {path} (pid {info.pid}, dashboard "
            f"{info.dashboard_url or 'off'})")
    if daemon:
        return _daemonize(path, port, no_ui, verbose)
    return _foreground(path, port, no_ui, verbose)


def _foreground(path: Path, port: int | None, no_ui: bool, verbose: bool) -> ExitCode:
    from promenade_core.manager import Manager
    from promenade_core.printer import Printer

    printer = Printer(sys.stdout, verbose=verbose)
    try:
        return Manager(path, printer, port=port, no_ui=no_ui).run()
    finally:
        printer.close()


def _daemonize(path: Path, port: int | None, no_ui: bool, verbose: bool) -> ExitCode:
    """Start a detached manager; return once it answers `ping`."""
    from promenade_core.client import ControlClient, find_manager
    from promenade_core.runtime import state_dir

    log_path = state_dir(path) / "manager.log"
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
        info = find_manager(path)
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
