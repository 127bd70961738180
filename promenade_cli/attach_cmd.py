"""`promenade attach SERVICE`: this terminal becomes the service's terminal.

Keys go to the service's stdin as they are typed (raw mode: Ctrl-C is byte 3, which the
service's pty turns into SIGINT for it), its output comes back byte for byte from the
bus's `raw/<service>/` topic, window size changes follow (SIGWINCH -> `resize`), and
Ctrl-] detaches, leaving the service running. The first attach has the keyboard; a
second one is read-only and says so, unless `--take-over` takes the keyboard from the
first (which then turns read-only and says so). The terminal is restored on every way
out: Ctrl-], an error, the manager going away, SIGTERM or SIGHUP.

Plain pyzmq (no gevent): one poll over the feed, stdin and a SIGWINCH wake-up pipe.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import sys
import termios
import time
from collections.abc import Iterator
from typing import Any

import click

from promenade_cli.common import ConfigArg, ExitCode, config_option, connect, request, resolve

#: Ctrl-]: the key that detaches (telnet's, docker's and overmind's choice).
DETACH = 0x1D
#: How often the lease is renewed, as a share of its lifetime.
RENEW_SHARE = 0.3
#: How often the manager's liveness is checked while nothing happens.
LIVENESS_EVERY = 1.0
READ_SIZE = 65536


def split_detach(data: bytes) -> tuple[bytes, bool]:
    """The bytes to send before a Ctrl-], and whether one was typed."""
    cut = data.find(DETACH)
    return (data, False) if cut < 0 else (data[:cut], True)


def raw_attrs(attrs: list[Any]) -> list[Any]:
    """Terminal attributes for attaching: input raw (every key, Ctrl-C and Ctrl-Z
    included, reaches the service; no local echo: the service's pty echoes), output
    still mapping `\\n` to `\\r\\n`, since the service's pty passes its bytes unchanged
    (osproc._raw_pty) and a program's plain `\\n` would otherwise leave the cursor in
    its column."""
    new = list(attrs)
    new[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP
                | termios.IXON)
    new[2] = (new[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    new[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
    new[6] = list(new[6])
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    return new


def keyboard_notice(service: str, writer: bool, was_writer: bool | None) -> str | None:
    """What to tell the user when the keyboard comes or goes (None: nothing new)."""
    if writer == was_writer:
        return None
    if writer:
        return None if was_writer is None else f"you have {service}'s keyboard now"
    if was_writer:
        return (f"another attach took {service}'s keyboard: read-only now "
                "(Ctrl-] detaches)")
    return (f"read-only: another client has {service}'s keyboard "
            "(promenade attach --take-over takes it; Ctrl-] detaches)")


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode on `fd` for the block, restored however it ends; nothing when `fd` is
    not a terminal (input from a pipe)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    termios.tcsetattr(fd, termios.TCSAFLUSH, raw_attrs(saved))
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def _exit_on(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _signals() -> Iterator[int]:
    """A pipe that SIGWINCH wakes; SIGTERM and SIGHUP exit through the finally blocks.
    Everything as it was afterwards."""
    read_end, write_end = os.pipe()
    for fd in (read_end, write_end):
        os.set_blocking(fd, False)
    old = {sig: signal.signal(sig, handler) for sig, handler in (
        (signal.SIGWINCH, lambda *_: None), (signal.SIGTERM, _exit_on),
        (signal.SIGHUP, _exit_on))}
    old_wakeup = signal.set_wakeup_fd(write_end)
    try:
        yield read_end
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old.items():
            signal.signal(sig, handler)
        os.close(read_end)
        os.close(write_end)


def _window(fd: int) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@click.command("attach")
@click.argument("service")
@click.option("--take-over", is_flag=True,
              help="Take the keyboard from another attached client.")
@click.option("-n", "--lines", "tail", type=click.IntRange(min=0), default=10,
              show_default=True, help="Recent log lines to show first.")
@config_option
def attach(service: str, take_over: bool, tail: int, config: ConfigArg) -> ExitCode:
    """Connect this terminal to SERVICE: keys go to its stdin, its output comes back
    as it is. Ctrl-] detaches and leaves it running."""
    from promenade_core.bus import protocol
    from promenade_core.bus.client import ControlClient, EventSubscriber, await_subscription

    info = connect(resolve(config))
    sub = EventSubscriber(info.events, (protocol.raw_topic(service),))
    bus = ControlClient(info.control)
    session = None
    try:
        await_subscription(sub, bus)
        grant = request(info, "attach", service=service, take=take_over)
        session = Session(service, bus, sub, grant, info.pid)
        session.show_recent(request(info, "logs", service=service, tail=tail))
        with _signals() as wakeup, raw_terminal(sys.stdin.fileno()):
            # only now: a key typed earlier would still be the local terminal's
            session.say(f"attached to {service}: Ctrl-] detaches")
            session.resize()
            reason = session.run(wakeup)
    finally:
        if session is not None:
            session.detach()
        sub.close()
        bus.close()
    click.echo(f"\r\n[{reason}]", err=True)
    return 0 if reason.startswith("detached") else 1


class Session:
    """One attach: the lease, the keyboard, and the loop that moves the bytes."""

    def __init__(self, service: str, bus: Any, sub: Any, grant: dict[str, Any],
                 manager_pid: int) -> None:
        self.service = service
        self.bus = bus
        self.sub = sub
        self.lease: str = grant["lease"]
        self.writer: bool = False
        self._renew_every = float(grant["lease_seconds"]) * RENEW_SHARE
        self._renewed = time.monotonic()
        self._manager_pid = manager_pid
        self._stdin = sys.stdin.fileno()
        self._stdout = sys.stdout.fileno()
        self._warned: set[str] = set()
        self._take(grant, first=True)

    def say(self, text: str) -> None:
        _write(self._stdout, f"\r\n[{text}]\r\n".encode())

    def _take(self, grant: dict[str, Any], first: bool = False) -> None:
        writer = bool(grant.get("writer"))
        notice = keyboard_notice(self.service, writer, None if first else self.writer)
        if notice:
            self.say(notice)
        self.writer = writer

    def show_recent(self, reply: dict[str, Any]) -> None:
        lines = [line for message in reply.get("messages", []) for line in message["lines"]]
        if lines:
            _write(self._stdout, ("\n".join(lines) + "\n").encode(errors="replace"))

    def run(self, wakeup: int) -> str:
        """Move bytes until Ctrl-], stdin's end or the manager's; returns why it ended."""
        import zmq

        poller = zmq.Poller()
        poller.register(self.sub._socket, zmq.POLLIN)
        poller.register(self._stdin, zmq.POLLIN)
        poller.register(wakeup, zmq.POLLIN)
        while True:
            ready = dict(poller.poll(int(LIVENESS_EVERY * 1000)))
            if self.sub._socket in ready:
                self._drain_output()
            if wakeup in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wakeup, 512)
                self.resize()
            if self._stdin in ready:
                ended = self._keys()
                if ended:
                    return ended
            ended = self._keep_alive()
            if ended:
                return ended

    def _drain_output(self) -> None:
        from promenade_core.bus import protocol

        while (got := self.sub.recv(timeout=0)) is not None:
            _write(self._stdout, protocol.raw_bytes(got[1]))

    def _keys(self) -> str | None:
        try:
            data = os.read(self._stdin, READ_SIZE)
        except OSError:
            data = b""
        if not data:
            return "detached: end of input"
        keys, detach = split_detach(data)
        if keys:
            self._send_input(keys)
        return "detached; the service keeps running" if detach else None

    def _send_input(self, keys: bytes) -> None:
        from promenade_core.bus.client import BusError

        if not self.writer:
            return
        try:
            self.bus.request("input", service=self.service, lease=self.lease,
                             data=base64.b64encode(keys).decode("ascii"))
        except BusError as exc:
            self._once(exc.code, exc.message)

    def _once(self, code: str, message: str) -> None:
        """An error shown once per kind, not once per key."""
        if code not in self._warned:
            self._warned.add(code)
            self.say(message)

    def resize(self) -> None:
        from promenade_core.bus.client import BusError

        size = _window(self._stdin) or _window(self._stdout)
        if size is None or not self.writer:
            return
        try:
            self.bus.request("resize", service=self.service, lease=self.lease,
                             rows=size[0], cols=size[1])
        except BusError as exc:   # not running, or no pty (tty: false): said once
            self._once(exc.code, exc.message)

    def _keep_alive(self) -> str | None:
        from promenade_core.bus.client import BusError, pid_alive

        now = time.monotonic()
        if now - self._renewed < self._renew_every:
            return None
        self._renewed = now
        if not pid_alive(self._manager_pid):
            return "the manager has exited"
        try:
            grant = self.bus.request("attach", service=self.service, lease=self.lease,
                                     timeout=5.0)
        except BusError as exc:
            return f"lost the attachment: {exc.message}"
        was = self.writer
        self._take(grant)
        if self.writer and not was:
            self.resize()
        return None

    def detach(self) -> None:
        from promenade_core.bus.client import BusError

        with contextlib.suppress(BusError):
            self.bus.request("detach", lease=self.lease, timeout=2.0)
