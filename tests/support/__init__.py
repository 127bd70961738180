"""Shared test helpers, grouped by job.

- `waits`: the one bounded `wait_for` (reports what it saw last)
- `net`: free ports
- `scripts`: tiny programs written into `tmp_path`, the CLI's command line
- `manager`: the real-manager harness (`Manager`, isolated folders, leftover checks)
- `web`: the Dashboard harness (a manager with its web process, raw HTTP and WebSocket)
- `hostsd`: promenade-hostsd on a temp hosts file, its client, the sudo driver, and a
  private network namespace for the loopback 443/80 sockets it hands out
- `corsproxy`: real tiny upstreams and a real CorsProxy in processes of their own
- `router`: the router in temp folders and ports, control clients, a tiny backend,
  HTTPS requests with SNI for a name
- `fakerouter`: a fake router (a real Unix socket speaking the router's control
  protocol) where a manager looks for the router, for the manager's side of named URLs

Test modules import from here, never from each other (tests/unit/test_test_imports.py
checks it). The most used helpers are re-exported at the package level.
"""

from __future__ import annotations

from tests.support.manager import (
    Manager,
    isolated_env,
    line_entries,
    live_marked,
    stubborn_manager,
)
from tests.support.net import free_port, free_port6
from tests.support.scripts import (
    PROMENADE,
    ROOT,
    STUBBORN,
    cli_imports,
    write_script,
    write_toggle_server,
)
from tests.support.waits import wait_for

__all__ = [
    "PROMENADE",
    "ROOT",
    "STUBBORN",
    "Manager",
    "cli_imports",
    "free_port",
    "free_port6",
    "isolated_env",
    "line_entries",
    "live_marked",
    "stubborn_manager",
    "wait_for",
    "write_script",
    "write_toggle_server",
]
