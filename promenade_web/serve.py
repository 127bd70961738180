"""Run the web process: bind, join the bus, serve until SIGTERM or the supervisor is gone.

The supervisor starts it as
`python -m promenade_web --control ENDPOINT --events ENDPOINT --host HOST --port PORT`
and restarts it if it dies. It must never outlive the supervisor: it exits when its
parent changes (the supervisor died and it was re-parented) or when the manager stops
answering `ping`.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import signal
import socket as stdsocket
import sys
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.pool
import gevent.socket
import zmq.green as zmq
from gevent.pywsgi import WSGIServer

from promenade_core.bus.client import BusError
from promenade_core.errors import PromenadeError
from promenade_core.supervise import ports
from promenade_web.app import Backend, create_app
from promenade_web.bus import ControlPool
from promenade_web.hub import Hub

PING_EVERY_SECONDS = 30.0
#: Connections served at once (WebSockets included). Any local user can connect to the
#: dashboard's port: with a full pool the server stops accepting and further clients
#: wait in the kernel's backlog, so a flood of connections costs the process no
#: descriptors (it used to run out of them, and libzmq aborts when it cannot make a socket).
MAX_CONNECTIONS = 512
PING_TIMEOUT_SECONDS = 5.0
PING_FAILURES_TO_EXIT = 3


class ListenError(PromenadeError):
    pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m promenade_web", description=__doc__)
    parser.add_argument("--control", required=True, help="the manager's control endpoint")
    parser.add_argument("--events", required=True, help="the manager's events endpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    return parser.parse_args(argv)


def open_listener(host: str, port: int) -> gevent.socket.socket:
    try:
        family, kind, proto, _, address = stdsocket.getaddrinfo(
            host, port, type=stdsocket.SOCK_STREAM)[0]
    except stdsocket.gaierror as exc:
        raise ListenError(f"cannot listen on {host!r}: {exc}; check manager.host") from exc
    listener = gevent.socket.socket(family, kind, proto)
    listener.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(1024)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError(
                f"cannot listen on {host}:{port}: {ports.describe_port_in_use(port)}; "
                "stop it or choose another dashboard port with --port or manager.port"
            ) from exc
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return listener


def _die_with_parent() -> None:
    """Linux: have the kernel send us SIGTERM when the manager dies, so no polling is
    needed for the common case (idle CPU matters: this runs all day)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def watch_supervisor(request: Callable[..., Any], gone: Callable[[str], None]) -> None:
    """Call `gone(reason)` once the supervisor has died or stopped answering.

    A death is caught at once by PDEATHSIG where there is one; the slow loop here
    catches the rest (another OS, a manager that hangs) without waking up often.
    """
    parent = os.getppid()
    _die_with_parent()
    failures = 0
    while True:
        if os.getppid() != parent:
            gone(f"the supervisor (pid {parent}) exited")
            return
        gevent.sleep(PING_EVERY_SECONDS)
        try:
            request("ping", timeout=PING_TIMEOUT_SECONDS)
            failures = 0
        except BusError:
            failures += 1
            if failures >= PING_FAILURES_TO_EXIT:
                gone(f"the manager did not answer ping {failures} times in a row")
                return


def run(args: argparse.Namespace) -> int:
    stopping = gevent.event.Event()
    outcome = {"code": 0}

    def stop(reason: str, code: int = 0) -> None:
        if reason:
            print(f"promenade_web: {reason}; exiting", file=sys.stderr)
        outcome["code"] = code
        stopping.set()

    # Before anything slow: a SIGTERM during start-up must still end cleanly.
    gevent.signal_handler(signal.SIGTERM, stop, "")
    gevent.signal_handler(signal.SIGINT, stop, "")
    try:
        listener = open_listener(args.host, args.port)
    except ListenError as exc:
        print(f"promenade_web: {exc}", file=sys.stderr)
        return 1
    context = zmq.Context()
    pool = ControlPool(args.control, context)
    hub = Hub(args.events, pool.request, context)
    try:
        hub.connect(timeout=10.0)
    except BusError as exc:
        print(f"promenade_web: cannot reach the manager at {args.control}: {exc.message}",
              file=sys.stderr)
        return 1
    app = create_app(Backend(pool.request, hub), bind_host=args.host)
    server = WSGIServer(listener, app, log=None, spawn=gevent.pool.Pool(MAX_CONNECTIONS))
    feed = gevent.spawn(hub.run)
    feed.link_exception(lambda g: stop(f"the events feed failed: {g.exception!r}", 1))
    watcher = gevent.spawn(watch_supervisor, pool.request, stop)
    server.start()
    stopping.wait()
    hub.close_all()
    server.stop(timeout=1.0)
    gevent.killall([feed, watcher], timeout=1.0)
    pool.close()
    context.destroy(linger=0)
    return outcome["code"]


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))
