"""Print every stderr line and every service failure of a running Promenade manager.

A user script built on the bus client, the way you would write your own (a desktop
notifier, a Slack hook, a test watcher):

    python scripts/examples/errors_feed.py -c scripts/demo-project/promenade.yaml

It finds the manager that runs this config (`promenade_core.bus.client.find_manager`),
subscribes to the `log/` and `state/` topics of its events feed and prints:

    2024-01-15T10:23:47.012Z [worker] [stderr] warn job 4: storage slow
    2024-01-15T10:23:49.500Z [flaky-export] FAILED (exit code 1)
    2024-01-15T10:23:50.510Z [flaky-export] GAVE UP after 1 restart (exit code 1)

It exits when the manager stops (exit code 0), or at once with exit code 3 when no
manager runs for the config. Only what happens after it joins is printed: use
`promenade logs` for the past. With `--tcp` it follows the manager's TCP feed
(`manager.bus_tcp`) instead of the ipc socket, with the token from `manager.json`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from promenade_core.bus import protocol
from promenade_core.bus.client import (
    ControlClient,
    ManagerInfo,
    await_subscription,
    find_manager,
    open_events,
)
from promenade_core.errors import PromenadeError

NO_MANAGER = 3
FAILURES = {"failed": "FAILED", "gave_up": "GAVE UP"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def show(text: str, colour: bool) -> None:
    print(text if colour else ANSI.sub("", text), flush=True)


def describe_failure(service: str, status: dict[str, Any]) -> str | None:
    """`[api] FAILED (exit code 1)` for a failure state, None for any other state."""
    label = FAILURES.get(str(status.get("status")))
    if label is None:
        return None
    detail = f"exit code {status.get('last_exit_code')}"
    restarts = status.get("restart_count") or 0
    if label == "GAVE UP" and restarts:
        detail = f"after {restarts} restart{'s' if restarts != 1 else ''}, {detail}"
    return f"[{service}] {label} ({detail})"


def print_event(topic: str, msg: dict[str, Any], colour: bool) -> None:
    kind, service = protocol.parse_topic(topic)
    if kind == "log":
        if msg["stream"] == "stderr":
            for line in msg["lines"]:
                show(f"{msg['timestamp']} [{service}] [stderr] {line}", colour)
    elif kind == "state":
        line = describe_failure(str(service), msg.get("status") or {})
        if line is not None:
            now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            show(f"{now.replace('+00:00', 'Z')} {line}", colour)


def still_running(info: ManagerInfo) -> bool:
    """The manager lives while its pid does (`manager.json` may outlive a crash)."""
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def follow(info: ManagerInfo, colour: bool, tcp: bool = False) -> None:
    with open_events(info, topics=("log/", "state/"), tcp=tcp) as sub:
        # A SUB socket misses what is published before it connects; wait until it is
        # live so that "following" means nothing after this line is lost.
        with ControlClient(info.control, timeout=5) as bus:
            await_subscription(sub, bus)
        print(f"errors_feed: following manager pid {info.pid} ({info.config_path})", flush=True)
        while True:
            got = sub.recv(timeout=1.0)
            if got is not None:
                print_event(*got, colour=colour)
            elif not still_running(info):
                print("errors_feed: the manager has stopped", flush=True)
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", type=Path, default=Path("promenade.yaml"))
    parser.add_argument("--tcp", action="store_true",
                        help="follow the manager.bus_tcp feed instead of the ipc socket")
    args = parser.parse_args(argv)
    info = find_manager(args.config)
    if info is None:
        print(f"errors_feed: no manager is running for {args.config}", file=sys.stderr)
        return NO_MANAGER
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    try:
        follow(info, colour, tcp=args.tcp)
    except PromenadeError as exc:
        print(f"errors_feed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
