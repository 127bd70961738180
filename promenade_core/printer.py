"""The manager's terminal output: every service's lines, prefixed and coloured.

Writes happen on a thread of their own behind a bounded queue, so a slow terminal (or
a pipe nobody reads) never stalls the supervisor and so never stalls a service. When
the queue is full, lines are counted instead of shown, and a notice says so; they stay
in the buffers, the dashboard and `promenade logs`.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections import deque
from typing import TextIO

from promenade_core.logs import iso_timestamp

ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
PALETTE = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)
RESET = "\x1b[0m"
LEVEL_COLOURS = {"info": "", "warning": "\x1b[33m", "error": "\x1b[1;31m"}
MAX_PENDING = 8 * 1024 * 1024


def wants_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text) if "\x1b" in text else text


class Formatter:
    """`2024-01-15T10:23:45.123Z [api] [stderr] text`, the service name in its colour."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self._names: dict[str, str] = {}

    def _label(self, service: str) -> str:
        label = self._names.get(service)
        if label is None:
            label = f"[{service}]"
            if self.colour:
                colour = PALETTE[len(self._names) % len(PALETTE)]
                label = f"\x1b[{colour}m{label}{RESET}"
            self._names[service] = label
        return label

    def block(self, service: str, stream: str, timestamp: str, lines: list[str]) -> str:
        """Many lines of one stream sharing a timestamp, as one string (the hot path)."""
        prefix = f"{timestamp} {self._label(service)} "
        if stream == "stderr":
            prefix += "[stderr] "
        body = ("\n" + prefix).join(lines)
        if self.colour:
            body = body.replace("\n", RESET + "\n") + RESET if "\x1b" in body else body
        else:
            body = strip_ansi(body)
        return f"{prefix}{body}\n"


class Printer(Formatter):
    def __init__(self, stream: TextIO | None = None, colour: bool | None = None,
                 verbose: bool = False) -> None:
        stream = stream or sys.stdout
        super().__init__(wants_colour(stream) if colour is None else colour)
        self._fd = stream.fileno()
        self.verbose = verbose
        self._queue: deque[bytes] = deque()
        self._pending = 0
        self._dropped = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._write_loop, name="printer", daemon=True)
        self._thread.start()

    def lines(self, service: str, stream: str, timestamp: str, lines: list[str]) -> None:
        self._put(self.block(service, stream, timestamp, lines).encode(), len(lines))

    def message(self, text: str, level: str = "info") -> None:
        """A manager event (`api started (pid 123)`)."""
        if level == "debug" and not self.verbose:
            return
        label = "[promenade]"
        if self.colour:
            label = f"\x1b[1m{label}{RESET}"
            text = f"{LEVEL_COLOURS.get(level, '')}{text}{RESET}" if LEVEL_COLOURS.get(level) \
                else text
        self._put(f"{iso_timestamp()} {label} {text}\n".encode(), 0, force=True)

    def _put(self, data: bytes, count: int, force: bool = False) -> None:
        with self._cond:
            if self._pending > MAX_PENDING and not force:
                self._dropped += count
                return
            if self._dropped and self._pending < MAX_PENDING // 2:
                notice = (f"{iso_timestamp()} [promenade] {self._dropped} lines not shown: "
                          "the terminal was too slow (they are in `promenade logs`)\n")
                self._queue.append(notice.encode())
                self._dropped = 0
            self._queue.append(data)
            self._pending += len(data)
            self._cond.notify()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                chunks = list(self._queue)
                self._queue.clear()
            data = b"".join(chunks)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError:
                pass  # the terminal went away; the manager keeps running
            with self._cond:
                self._pending -= len(data)
                self._cond.notify_all()

    def flush(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._pending <= 0, timeout)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=2.0)
