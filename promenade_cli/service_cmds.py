"""The commands that act on a running manager's services: stop, restart, status,
reload (logs are logs_cmd.py's). They reach it over the bus (common.connect, request)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import click

from promenade_cli.common import (
    STOP_TIMEOUT,
    ConfigArg,
    ExitCode,
    config_option,
    connect,
    request,
    resolve,
    service_action,
    wait_for,
)
from promenade_cli.completion import complete_services
from promenade_core.bus.protocol import DEFAULT_WAIT, MAX_WAIT
from promenade_core.errors import UnknownServiceError
from promenade_core.supervise.states import ALIVE

if TYPE_CHECKING:
    from promenade_core.bus import protocol


@click.command("stop")
@click.argument("service", required=False, shell_complete=complete_services)
@config_option
def stop(service: str | None, config: ConfigArg) -> ExitCode:
    """Stop one SERVICE, or with no SERVICE the manager and all its services."""
    from promenade_core.bus.client import find_manager

    path = resolve(config)
    if service:
        return service_action(path, "stop", service)
    info = connect(path)
    request(info, "shutdown")
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if find_manager(path) is None:
            click.echo(f"Promenade stopped (pid {info.pid})")
            return 0
        time.sleep(0.05)
    click.echo(f"Error: the manager (pid {info.pid}) is still running", err=True)
    return 1


@click.command("restart")
@click.argument("service", required=False, shell_complete=complete_services)
@config_option
def restart(service: str | None, config: ConfigArg) -> ExitCode:
    """Restart one SERVICE, or every service when none is named."""
    path = resolve(config)
    if service:
        return service_action(path, "restart", service)
    result = request(connect(path), "restart_all", timeout=STOP_TIMEOUT, wait=True)
    click.echo("restarted " + ", ".join(result["services"]))
    return 0


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _exit_cell(service: protocol.StatusObject) -> str:
    """The last exit, only while no process runs: next to a running service, the
    previous run's `-15` (from a restart) read as the current process having died."""
    code = service["last_exit_code"]
    if code is None or service["status"] in {s.value for s in ALIVE}:
        return "-"
    return str(code)


def _reason_cell(service: protocol.StatusObject) -> str:
    """Why the service is in its status; last in the row, as it is the longest. A
    completed task says so even from a manager that gives no reason."""
    reason = service.get("status_reason")
    if reason:
        return " ".join(reason.split())   # one line, whatever the reason holds
    if service["status"] == "stopped" and service.get("completed"):
        return "completed"
    return ""


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


@click.command("status")
@click.argument("services", nargs=-1, shell_complete=complete_services)
@config_option
@click.option("--json", "as_json", is_flag=True, help="The whole status document as JSON")
def status(services: tuple[str, ...], config: ConfigArg, as_json: bool) -> ExitCode:
    """Every service (or only the SERVICES named): status, health, pid, port, URL,
    uptime, restarts, last exit and why it is in its status (after a `profiles:` line
    when profiles are active)."""
    doc: protocol.StatusDocument = request(connect(resolve(config)), "status")
    if services:
        doc = _only(doc, services)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return 0
    if doc.get("profiles"):
        click.echo(f"profiles: {', '.join(doc['profiles'])}")
    rows = [["NAME", "STATUS", "HEALTH", "PID", "PORT", "URL", "UPTIME", "RESTARTS", "EXIT",
             "REASON"]]
    for s in doc["services"].values():
        rows.append([s["name"], s["status"], s["health"], str(s["pid"] or "-"),
                     _port_cell(s), s["url"] or "-", _age(s["uptime_seconds"]),
                     str(s["restart_count"]), _exit_cell(s), _reason_cell(s)])
    click.echo(_table(rows))
    config_error = doc.get("config_error")
    if config_error:
        click.echo("\nconfig error (the previous config is still running):", err=True)
        for problem in config_error["problems"]:
            click.echo(f"  {problem}", err=True)
    return 0


def _port_cell(s: protocol.StatusObject) -> str:
    """`5001`; `41234 (auto)` for a port picked at start, `auto` before the first."""
    port = str(s["port"] or "-")
    if not s.get("port_auto"):
        return port
    return f"{port} (auto)" if s["port"] else "auto"


def _only(doc: protocol.StatusDocument, services: tuple[str, ...]) -> protocol.StatusDocument:
    """The status document with only `services`, in the order named; an unknown name is
    a usage error naming the known ones."""
    known = doc["services"]
    unknown = [s for s in services if s not in known]
    if unknown:
        raise UnknownServiceError(f"unknown service {unknown[0]!r} (known: {', '.join(known)})")
    return {**doc, "services": {s: known[s] for s in dict.fromkeys(services)}}


@click.command("wait")
@click.argument("services", nargs=-1, shell_complete=complete_services)
@config_option
@click.option("-t", "--timeout", type=click.FloatRange(0, MAX_WAIT, min_open=True),
              default=DEFAULT_WAIT, show_default=True, help="Seconds to wait at most")
def wait(services: tuple[str, ...], config: ConfigArg, timeout: float) -> ExitCode:
    """Wait until SERVICES (default: every autostart service) are up: running, healthy
    where they have a ready_check, tasks completed with code 0.

    Exits 0 once they are, 1 as soon as one fails, gives up or was never started, or
    when the timeout passes (naming the services and why), 3 when no manager runs.
    """
    return wait_for(connect(resolve(config)), services, timeout)


@click.command("reload")
@config_option
@click.option("--dry-run", is_flag=True, help="Print what would change, change nothing")
def reload(config: ConfigArg, dry_run: bool) -> ExitCode:
    """Apply config changes now (the manager also polls the file)."""
    result = request(connect(resolve(config)), "reload", timeout=STOP_TIMEOUT, dry_run=dry_run)
    if result.get("error"):
        click.echo("Error: the config is invalid; the running one is kept:", err=True)
        for problem in result["error"]["problems"]:
            click.echo(f"  {problem}", err=True)
        return 2
    prefix = "would apply: " if dry_run else ""
    click.echo(prefix + result["summary"])
    return 0

