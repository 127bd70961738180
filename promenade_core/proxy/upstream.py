"""The CORS proxy's side towards the service: one kept-alive h11 client connection, and
the raw two-way copy that takes over after `101 Switching Protocols`.

gevent sockets only (the supervisor's hub is not monkey-patched).
"""

from __future__ import annotations

import contextlib
import select
import socket as stdlib_socket
from collections.abc import Callable

import gevent
import h11
from gevent import socket

from promenade_core.proxy.headers import ProxyPolicy, Refusal
from promenade_core.supervise.loopback import DIALER, LOOPBACK

RECV_SIZE = 64 * 1024
MAX_HEAD_SIZE = 64 * 1024  # request/response line plus headers (big cookies fit)
CONNECT_TIMEOUT = 5.0
SWITCHED_CLOSE_GRACE = 5.0  # after one side of a WebSocket closes, for the other


class UpstreamLost(Exception):
    """The service's side broke before its response began; the client gets a 502."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def connect_reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | stdlib_socket.timeout):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    return (exc.strerror or str(exc)).lower()


# What h11's next_event() returns: an event, or a sentinel class.
Step = h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]


def nodelay(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _still_idle(sock: socket.socket) -> bool:
    """A kept-alive upstream socket the service has neither closed nor written to since.

    A zero-timeout select never blocks the hub; anything readable here is an EOF or bytes
    nobody asked for, and either way the connection cannot carry the next request.
    """
    try:
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class Upstream:
    """One connection to the service, kept alive across a client's requests."""

    def __init__(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        self.sock = sock
        self.addr = addr  # the policy's upstream (host, port), whichever loopback answered
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_SIZE)
        self.answered = False  # any byte came back for the current request

    @classmethod
    def open(cls, policy: ProxyPolicy) -> Upstream:
        addr = (policy.upstream_host, policy.upstream_port)
        try:
            if policy.upstream_host == LOOPBACK[0]:
                # A dev server bound to ::1 only must be reachable too.
                sock, _ = DIALER.connect(policy.upstream_port, CONNECT_TIMEOUT)
            else:
                sock = socket.create_connection(addr, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            reason = connect_reason(exc)
            if policy.upstream_host == LOOPBACK[0]:
                reason += ", on ::1 as well"
            raise UpstreamLost(policy.unavailable(reason)) from exc
        sock.settimeout(None)
        nodelay(sock)
        return cls(sock, addr)

    def reusable_for(self, policy: ProxyPolicy) -> bool:
        return self.addr == (policy.upstream_host, policy.upstream_port) and _still_idle(self.sock)

    def read_event(self, before_wait: Callable[[], None], on_idle: Callable[[], None]) -> Step:
        """The next event, reading as needed.

        `before_wait` runs before each read; `on_idle` when a read outlasts the socket's
        timeout (set while nobody watches the client), after which reads wait forever.
        """
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            before_wait()
            try:
                data = self.sock.recv(RECV_SIZE)
            except TimeoutError:
                self.sock.settimeout(None)
                on_idle()
                continue
            self.answered = self.answered or bool(data)
            self.conn.receive_data(data)

    def recycle(self) -> bool:
        """Readies the connection for the next request; False if it cannot carry one."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            self.answered = False
            return True
        return False

    def abort(self) -> None:
        """Wakes whoever is reading it (with an EOF) from another greenlet."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()


def copy_both_ways(a: socket.socket, b: socket.socket) -> None:
    """Relays raw bytes between two sockets until both directions have ended.

    Each side's EOF is passed on as a half-close; once one direction is done the other
    gets a grace period, so a peer that never closes cannot hold the relay forever.
    """
    pipes = [gevent.spawn(_copy, a, b), gevent.spawn(_copy, b, a)]
    try:
        gevent.wait(pipes, count=1)
        gevent.joinall(pipes, timeout=SWITCHED_CLOSE_GRACE)
    finally:
        gevent.killall(pipes, block=True)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(RECV_SIZE)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
