"""Turning what a service writes into log lines, and keeping the last N of them.

This is the hot path: a flooding service produces millions of lines a second, so work
is done per read, not per line. A read is split into lines with one decode and one
`split`, stamped with one timestamp, stored as one batch and published as one message.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from promenade_core.bus import protocol

#: Longer lines are cut into pieces of this size (never dropped).
MAX_LINE = 64 * 1024


#: (second, its text) of the last call; one tuple, read and replaced whole (threads)
_second_text: tuple[int, str] = (0, "1970-01-01T00:00:00")


def iso_timestamp(now: float | None = None) -> str:
    """`2024-01-15T10:23:45.123Z` (UTC, milliseconds). The seconds' text is kept from
    one call to the next: during a flood thousands of reads a second share it, and
    strftime was 3 % of the manager's time."""
    global _second_text
    now = time.time() if now is None else now
    second = math.floor(now)
    cached = _second_text
    if cached[0] != second:
        cached = _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                       time.gmtime(second)))
    return f"{cached[1]}.{int(now * 1000) % 1000:03d}Z"


def _utf8_cut(data: bytes, limit: int) -> int:
    """A cut point <= limit that does not split a UTF-8 character."""
    cut = limit
    while cut > limit - 4 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > limit - 4 and cut > 0 else limit


def _overwrite(line: str) -> str:
    """What a terminal shows for a line with carriage returns: the last non-empty part.

    Progress bars redraw with `\\r`; keeping every frame would flood the log.
    """
    parts = [p for p in line.split("\r") if p]
    return parts[-1] if parts else ""


class LineSplitter:
    """Cuts one stream's bytes into text lines, carrying a partial line between reads."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._pending = b""
        self._max = max_line

    @property
    def pending(self) -> bool:
        """A partial line is waiting for its newline."""
        return bool(self._pending)

    def feed(self, data: bytes) -> list[str]:
        """The complete lines in `data` (plus what was pending)."""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        end = data.rfind(b"\n")
        if end < 0:
            self._pending = data
            return self._split_long() if len(data) > self._max else []
        if end + 1 < len(data):
            self._pending = data[end + 1 :]
        text = str(memoryview(data)[:end], "utf-8", "replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = self._clean(lines)
        if end > self._max and max(map(len, lines)) > self._max:
            lines = [piece for line in lines for piece in _pieces(line, self._max)]
        if len(self._pending) > self._max:
            lines.extend(self._split_long())
        return lines

    def _split_long(self) -> list[str]:
        """Emit full-size pieces of an over-long pending line, keep the rest pending."""
        out: list[str] = []
        data = self._pending
        while len(data) > self._max:
            cut = _utf8_cut(data, self._max)
            out.append(data[:cut].decode("utf-8", "replace"))
            data = data[cut:]
        self._pending = data
        return self._clean(out) if any("\r" in piece for piece in out) else out

    @staticmethod
    def _clean(lines: list[str]) -> list[str]:
        return [
            line if "\r" not in line
            else line[:-1] if line.endswith("\r") and "\r" not in line[:-1]
            else _overwrite(line)
            for line in lines
        ]

    def flush(self) -> list[str]:
        """The last line without a final newline, when the stream ends."""
        if not self._pending:
            return []
        data, self._pending = self._pending, b""
        return self._clean([data.decode("utf-8", "replace")])


def _pieces(line: str, size: int) -> Iterator[str]:
    if len(line) <= size:
        yield line
        return
    for start in range(0, len(line), size):
        yield line[start : start + size]


@dataclass(frozen=True)
class Batch:
    """The lines of one read of one stream: line i has seq first_seq + i."""

    first_seq: int
    timestamp: str
    stream: str
    lines: list[str]

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.lines) - 1

    def message(self, service: str) -> dict[str, Any]:
        """This read as a `log/` message, the shape the bus publishes live."""
        return protocol.log_message(service, self.first_seq, self.timestamp, self.stream,
                                    self.lines)


class LogBuffer:
    """The last `capacity` lines of one service, stored as batches.

    Appending is one deque append per read; trimming drops whole batches and slices
    the oldest one, so a flood costs no per-line work here.
    """

    def __init__(self, capacity: int) -> None:
        self._batches: deque[Batch] = deque()
        self._count = 0
        self.capacity = capacity

    def __len__(self) -> int:
        return self._count

    def append(self, batch: Batch) -> None:
        if len(batch.lines) > self.capacity:
            drop = len(batch.lines) - self.capacity
            batch = Batch(batch.first_seq + drop, batch.timestamp, batch.stream,
                          batch.lines[drop:])
        self._batches.append(batch)
        self._count += len(batch.lines)
        self._trim()

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        self._trim()

    def _trim(self) -> None:
        excess = self._count - self.capacity
        while excess > 0:
            oldest = self._batches[0]
            if len(oldest.lines) <= excess:
                self._batches.popleft()
                self._count -= len(oldest.lines)
                excess -= len(oldest.lines)
            else:
                self._batches[0] = Batch(oldest.first_seq + excess, oldest.timestamp,
                                         oldest.stream, oldest.lines[excess:])
                self._count -= excess
                excess = 0

    def messages(self, service: str, since: int | None = None,
                 until: int | None = None) -> list[dict[str, Any]]:
        """Buffered reads as `log/` messages (oldest first), only lines newer than
        `since` and up to `until`."""
        out = (batch.message(service) for batch in self._batches
               if (since is None or batch.last_seq > since)
               and (until is None or batch.first_seq <= until))
        if since is None and until is None:
            return list(out)
        return [cut for m in out
                if (cut := protocol.log_between(m, since, until)) is not None]


class LogStore:
    """Every service's buffer, by name: services append through it, the bus commands
    read from it, and a reload resizes or drops buffers here (a service object never
    holds its own, so replacing a service keeps or drops its lines by decision, not by
    accident)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buffers: dict[str, LogBuffer] = {}

    def append(self, service: str, batch: Batch) -> None:
        buffer = self._buffers.get(service)
        if buffer is None:
            buffer = self._buffers[service] = LogBuffer(self.capacity)
        buffer.append(batch)

    def resize(self, service: str, lines: int) -> None:
        """Keep at most `lines` lines of `service` from now on (the oldest go first)."""
        buffer = self._buffers.get(service)
        if buffer is None:
            buffer = self._buffers[service] = LogBuffer(lines)
        buffer.resize(lines)

    def resize_all(self, lines: int) -> None:
        """The new default, for every buffer and the ones created later."""
        self.capacity = lines
        for buffer in self._buffers.values():
            buffer.resize(lines)

    def drop(self, service: str) -> None:
        """Forget a removed service's lines."""
        self._buffers.pop(service, None)

    def count(self, service: str) -> int:
        buffer = self._buffers.get(service)
        return len(buffer) if buffer is not None else 0

    def messages(self, services: Iterable[str], since: int | None = None,
                 tail: int | None = None, until: int | None = None) -> list[dict[str, Any]]:
        """The buffered `log/` messages of `services` in seq order: only lines newer
        than `since` and up to `until`, at most the last `tail` lines (see
        protocol.log_tail)."""
        out = [m for name in services if name in self._buffers
               for m in self._buffers[name].messages(name, since, until)]
        out.sort(key=lambda m: m["first_seq"])
        return protocol.log_tail(out, tail)
