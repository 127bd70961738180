"""Attach to a service over the bus: print its raw output, send it a line of input.

What `promenade attach` does, as a script you can adapt (a test driver that answers a
prompt, a bot that types into a REPL):

    python scripts/examples/attach_feed.py -c promenade.yaml api --send "c" --seconds 5

It subscribes to `raw/<service>/` (the bytes the service writes, as written: colours
and prompts without a newline included), takes an attach lease (the `attach` command:
the raw stream is published only while someone is attached), sends the `--send` text
plus a newline with the `input` command, and copies the raw bytes to its own stdout
for `--seconds` (renewing the lease meanwhile), then detaches. Exit code 3 when no
manager runs for the config, 2 for an unknown service, 1 when the input was refused
(another client has the keyboard: `--take-over` takes it).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

from promenade_core.bus import protocol
from promenade_core.bus.client import (
    BusError,
    ControlClient,
    EventSubscriber,
    await_subscription,
    find_manager,
)

NO_MANAGER, UNKNOWN, REFUSED = 3, 2, 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service")
    parser.add_argument("-c", "--config", default="promenade.yaml", type=Path)
    parser.add_argument("--send", help="a line to type into the service")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="how long to show its output (default 3)")
    parser.add_argument("--take-over", action="store_true",
                        help="take the keyboard from another attached client")
    args = parser.parse_args()

    info = find_manager(args.config.resolve())
    if info is None:
        print(f"attach_feed: no manager runs for {args.config}", file=sys.stderr)
        return NO_MANAGER
    with EventSubscriber(info.events, [protocol.raw_topic(args.service)]) as sub, \
            ControlClient(info.control) as bus:
        await_subscription(sub, bus)   # subscribed before the first byte is published
        try:
            grant = bus.request("attach", service=args.service, take=args.take_over)
        except BusError as exc:
            print(f"attach_feed: {exc.message}", file=sys.stderr)
            return UNKNOWN if exc.code == protocol.UNKNOWN_SERVICE else REFUSED
        try:
            return _session(sub, bus, args, grant)
        finally:
            bus.request("detach", lease=grant["lease"])


def _session(sub: EventSubscriber, bus: ControlClient, args: argparse.Namespace,
             grant: dict[str, object]) -> int:
    lease = str(grant["lease"])
    code = 0
    if args.send is not None:
        data = base64.b64encode((args.send + "\n").encode()).decode("ascii")
        try:
            bus.request("input", service=args.service, lease=lease, data=data)
        except BusError as exc:
            print(f"attach_feed: input refused: {exc.message}", file=sys.stderr)
            code = REFUSED
    renew_every = float(str(grant["lease_seconds"])) / 3
    renewed = time.monotonic()
    deadline = time.monotonic() + args.seconds
    while (left := deadline - time.monotonic()) > 0:
        got = sub.recv(timeout=min(left, 0.2))
        if got is not None:
            os.write(sys.stdout.fileno(), protocol.raw_bytes(got[1]))
        if time.monotonic() - renewed > renew_every:
            bus.request("attach", service=args.service, lease=lease)
            renewed = time.monotonic()
    return code


if __name__ == "__main__":
    sys.exit(main())
