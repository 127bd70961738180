"""The terminal writer: every service's lines and the manager's events, on stdout.

How a line looks is logformat's (pure, shared with `promenade logs`); this module
only gets the text to the terminal without blocking the supervisor.

Output goes through a bounded queue drained by a greenlet that writes to a
non-blocking descriptor of its own (a reopened /proc/self/fd/1, so the terminal's
shared description stays blocking for the shell). When the queue passes HIGH_WATER the
services' readers wait for room: every line reaches the terminal intact, and a
terminal that is too slow slows the services down, as with any program writing to it.
A terminal that goes away (EPIPE) stops the output, never the manager.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time
from collections import deque
from typing import TextIO

import gevent
import gevent.event
from gevent.socket import wait_write

from promenade_core.logformat import Formatter, wants_colour
from promenade_core.supervise.logs import iso_timestamp

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


def _output_fd(fd: int) -> tuple[int, bool]:
    """A descriptor for `fd` that is ours to make non-blocking; (fd, non_blocking).

    A regular file never blocks for long and keeps its own offset, so it is used as it
    is; where /proc cannot reopen the output (a socket, macOS) writes stay blocking.
    """
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd, False
    try:
        return os.open(f"/proc/self/fd/{fd}",
                       os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY), True
    except OSError:
        return fd, False


class Printer:
    """Writes formatted output through a bounded queue drained by one greenlet."""

    def __init__(self, stream: TextIO | None = None, colour: bool | None = None,
                 verbose: bool = False) -> None:
        stream = stream or sys.stdout
        self.format = Formatter(wants_colour(stream) if colour is None else colour)
        stream.flush()
        self._fd, self._nonblocking = _output_fd(stream.fileno())
        self.verbose = verbose
        self._queue: deque[bytes] = deque()
        self._pending = 0
        self._broken = False
        self._room = gevent.event.Event()
        self._room.set()
        self._wake = gevent.event.Event()
        self._writer = gevent.spawn(self._write_loop)

    def lines(self, service: str, stream: str, timestamp: str, lines: list[str]) -> None:
        self._put(self.format.block(service, stream, timestamp, lines).encode())

    def message(self, text: str, level: str = "info") -> None:
        """A manager event (`api started (pid 123)`)."""
        if level == "debug" and not self.verbose:
            return
        self._put(self.format.message(iso_timestamp(), text, level).encode())

    def wait_room(self) -> None:
        """Readers call this before reading more: it returns once the queue has room."""
        self._room.wait()

    def _put(self, data: bytes) -> None:
        if self._broken:
            return
        self._queue.append(data)
        self._pending += len(data)
        self._wake.set()
        if self._pending > HIGH_WATER:
            self._room.clear()

    def _write_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._queue:
                data = b"".join(self._queue)
                self._queue.clear()
                self._write(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                wait_write(self._fd)
                continue
            except OSError:  # the terminal went away: drop output, keep running
                self._broken = True
                self._queue.clear()
                self._pending = 0
                self._room.set()
                return
            view = view[written:]
            self._pending -= written
            if self._pending < LOW_WATER:
                self._room.set()

    def flush(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while self._pending > 0 and not self._broken and time.monotonic() < deadline:
            gevent.sleep(0.01)

    def close(self) -> None:
        self.flush()
        self._writer.kill(block=False)
        if self._nonblocking:
            with contextlib.suppress(OSError):
                os.close(self._fd)
