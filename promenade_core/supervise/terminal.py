"""The terminal writer: every service's lines and the manager's events, on stdout.

How a line looks is logformat's (pure, shared with `promenade logs`); what is shown
when the terminal cannot keep up is termqueue's; which services are shown is
visibility's. This module only gets the bytes to the terminal without ever making the
supervisor wait.

Output goes through a bounded queue drained by a greenlet that writes to a
non-blocking descriptor of its own (a reopened /proc/self/fd/1, so the terminal's
shared description stays blocking for the shell). The services' readers never wait for
the terminal: when it is too slow (Ctrl-S, a pager that stopped reading, a slow link)
it skips lines, with a marker per skipped run, and every line still reaches the ring
buffer, the bus and the log files. A terminal that goes away (EPIPE) stops the output,
never the manager.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import sys
import time
from typing import TextIO

import gevent
import gevent.event
from gevent.socket import wait_write

from promenade_core.logformat import Formatter, wants_colour
from promenade_core.supervise.logs import iso_timestamp
from promenade_core.supervise.termqueue import MANAGER, TerminalQueue, skip_marker
from promenade_core.supervise.visibility import Visibility

#: What we ask a pipe on stdout to hold (`promenade start | less`, a benchmark's reader).
#: The 64 KiB default needs a wake-up of the writer per 64 KiB: while the services'
#: readers keep the event loop busy, that alone caps the output near 60 MB/s and a
#: reader that keeps up would still see lines skipped. Linux grants up to
#: /proc/sys/fs/pipe-max-size (1 MiB by default) without privileges.
PIPE_SIZE = 1024 * 1024


#: Seconds `close` waits for the terminal to take what is queued.
CLOSE_FLUSH = 5.0


def _grow_pipe(fd: int) -> None:
    if stat.S_ISFIFO(os.fstat(fd).st_mode):
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


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
                 verbose: bool = False, visibility: Visibility | None = None,
                 queue: TerminalQueue | None = None) -> None:
        stream = stream or sys.stdout
        self.format = Formatter(wants_colour(stream) if colour is None else colour)
        stream.flush()
        _grow_pipe(stream.fileno())
        self._fd, self._nonblocking = _output_fd(stream.fileno())
        self.verbose = verbose
        #: which services' lines are shown (the keys and `--only/--hide` change it)
        self.visibility = visibility or Visibility()
        self._queue = queue or TerminalQueue()
        self._broken = False
        self._wake = gevent.event.Event()
        self._writer = gevent.spawn(self._write_loop)

    def lines(self, service: str, stream: str, timestamp: str, lines: list[str]) -> None:
        """The hot path: decided before formatting, so a skipped batch costs nothing."""
        if self._broken or not self.visibility.shows(service):
            return
        queue = self._queue
        if not queue.admits_lines(service):
            queue.skip(len(lines), service)
            return
        if queue.needs_marker(service):
            self._put_marker(service)
        self._put(self.format.block(service, stream, timestamp, lines).encode(), service)

    def message(self, text: str, level: str = "info") -> None:
        """A manager event (`api started (pid 123)`): admitted into a reserve past the
        queue's bound, so a slow terminal gets it late rather than never."""
        if self._broken or (level == "debug" and not self.verbose):
            return
        data = self.format.message(iso_timestamp(), text, level).encode()
        if not self._queue.admits_message(len(data)):
            self._queue.skip(1, MANAGER)
            return
        if self._queue.needs_marker(MANAGER):
            self._put_marker(MANAGER)
        self._put(data)

    def _put_marker(self, source: str) -> None:
        """The marker of `source`'s skipped run, in `source`'s own order."""
        count = self._queue.take_marker(source)
        text = skip_marker(count, source)
        self._put(self.format.message(iso_timestamp(), text, "warning").encode(), source)

    def _put(self, data: bytes, source: str = MANAGER) -> None:
        self._queue.put(data, source)
        self._wake.set()

    def _write_loop(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait()
            self._wake.clear()
            while queue.has_chunks() and not self._broken:
                self._write(queue.take())
                if not queue.has_chunks():
                    # the terminal caught up after skipped runs
                    for source in queue.marker_sources():
                        self._put_marker(source)

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
                self._queue.discard()
                return
            view = view[written:]
            self._queue.written(written)

    def flush(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue.pending > 0 and not self._broken and time.monotonic() < deadline:
            gevent.sleep(0.01)

    def close(self) -> None:
        """At exit: a skipped run still open gets its marker, and what is queued gets a
        few seconds to reach a terminal that reads again (never longer: one nobody
        reads must not hold the exit)."""
        if not self._broken:
            for source in self._queue.skipped_sources():
                self._put_marker(source)
        self.flush(CLOSE_FLUSH)
        self._writer.kill(block=False)
        if self._nonblocking:
            with contextlib.suppress(OSError):
                os.close(self._fd)
