"""Reading the log files: history for `promenade logs`, the dashboard's older lines and
its search. Standard library only (the CLI imports it without gevent).

The files (written by supervise/logfiles.py) hold one line per output line,
`2024-01-15T10:23:45.123Z stdout text`, in the order written, so each file is sorted by
its fixed-width timestamps and comparing them as text compares times. A service's
files are `api.log` (newest), then `api.log.1`, `api.log.2` … (older).

Reading is bounded whatever the files hold: only regular files, opened without
following symlinks and without blocking (a FIFO planted there cannot hang a reader); a
tail reads backwards in blocks from the end, `--since` bisects to its first line, and a
line longer than MAX_LINE is skipped, so no file is ever loaded whole.

The seam with the live feed: the manager answers `log_mark` with the bus seq S it has
reached and each file's (inode, size) once every line up to S is written. A reader
that stops at those sizes has exactly the lines up to S; the live feed then gives
every line after S (the feed's own join already drops seq <= S).
"""

from __future__ import annotations

import calendar
import contextlib
import heapq
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from promenade_core.logformat import strip_ansi

#: The manager's own events are the service of this name (`promenade logs promenade`).
MANAGER_LOG = "promenade"
#: Levels are the stream word of the manager's events.
LEVELS = ("info", "warning", "error", "debug")
#: Rotated files looked at, at most (`api.log.1` … `api.log.100`).
MAX_ROTATED = 100
#: Lines longer than this (a corrupt file, not our writer) are skipped.
MAX_LINE = 1024 * 1024
BLOCK = 64 * 1024
TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TIMESTAMP_LEN = len("2024-01-15T10:23:45.123Z")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}

#: (inode, size) of each service's current file when a mark was taken
Positions = dict[str, tuple[int, int]]


class TimeError(ValueError):
    """A --since/--until value that is neither a duration nor a time."""


class LogLine(NamedTuple):
    timestamp: str
    service: str
    stream: str
    text: str


def log_path(folder: Path, service: str) -> Path:
    return folder / f"{service}.log"


def rotated_path(path: Path, number: int) -> Path:
    return path.with_name(f"{path.name}.{number}")


def event_lines(text: str) -> list[str]:
    """A manager message as file lines (a message may span lines)."""
    return text.replace("\r", "").split("\n")


def format_time(seconds: float) -> str:
    """A time as the files write it (UTC, milliseconds)."""
    whole = int(seconds)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
            + f".{int((seconds - whole) * 1000):03d}Z")


def parse_time(text: str, now: float) -> str:
    """`10m`, `2h`, `1d`, `90s` (that long before `now`), or an ISO time
    (`2024-01-15T10:23`, `2024-01-15 10:23:45`, `…Z` or `…+02:00`; local time without an
    offset), as a file timestamp."""
    word = text.strip()
    match = _DURATION.fullmatch(word)
    if match:
        return format_time(now - float(match[1]) * _UNITS[match[2].lower()])
    try:
        when = datetime.fromisoformat(word.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TimeError(f"{text!r} is neither a duration (30s, 10m, 2h, 1d) nor a time "
                        "(2024-01-15T10:23, 2024-01-15 10:23:45Z)") from None
    if when.tzinfo is None:
        seconds = time.mktime(when.timetuple()) + when.microsecond / 1e6
    else:
        utc = when.astimezone(timezone.utc)
        seconds = calendar.timegm(utc.timetuple()) + utc.microsecond / 1e6
    return format_time(seconds)


def parse_line(raw: bytes, service: str) -> LogLine | None:
    """A file line (without its newline), or None when it is not one of ours."""
    if len(raw) < TIMESTAMP_LEN + 2 or not TIMESTAMP.match(raw):
        return None
    space = raw.find(b" ", TIMESTAMP_LEN + 1)
    if raw[TIMESTAMP_LEN:TIMESTAMP_LEN + 1] != b" " or space < 0:
        return None
    return LogLine(raw[:TIMESTAMP_LEN].decode("ascii"), service,
                   raw[TIMESTAMP_LEN + 1:space].decode("utf-8", "replace"),
                   raw[space + 1:].decode("utf-8", "replace"))


@dataclass(frozen=True)
class Query:
    """Which lines: all bounds optional; `limit` keeps the newest that many."""

    since: str | None = None
    until: str | None = None
    grep: re.Pattern[str] | None = None
    streams: frozenset[str] | None = None
    limit: int | None = None
    #: skip this many of the newest lines stamped exactly `until` (the dashboard has
    #: them already when it asks for what precedes its oldest line)
    skip_at_until: int = 0

    def matches(self, line: LogLine) -> bool:
        if self.streams is not None and line.stream not in self.streams:
            return False
        if self.grep is not None:
            text = strip_ansi(line.text) if "\x1b" in line.text else line.text
            return self.grep.search(text) is not None
        return True


def compile_grep(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """The user's regex (re.error for a bad one: the caller words it)."""
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


# -- the files -----------------------------------------------------------------------

@dataclass
class _Part:
    fd: int
    end: int   # read up to here (the mark's size, or the size when opened)


def _open_regular(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                     | os.O_NOCTTY)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _chain(folder: Path, service: str, mark: Positions | None) -> list[_Part]:
    """A service's files, newest first, each with where reading must stop. With a
    mark, files written only after it are left out and the marked one is cut at its
    marked size."""
    if mark is not None and service not in mark:
        return []
    path = log_path(folder, service)
    parts: list[_Part] = []
    for number in range(MAX_ROTATED + 1):
        fd = _open_regular(rotated_path(path, number) if number else path)
        if fd is None:
            if number == 0:
                continue   # the current file may be missing (a rotation in progress)
            break
        parts.append(_Part(fd, os.fstat(fd).st_size))
    if mark is not None:
        inode, size = mark[service]
        for index, part in enumerate(parts):
            if os.fstat(part.fd).st_ino == inode:
                for newer in parts[:index]:
                    os.close(newer.fd)
                parts = parts[index:]
                part.end = min(part.end, size)
                break
    return parts


def _close(parts: Iterable[_Part]) -> None:
    for part in parts:
        with contextlib.suppress(OSError):
            os.close(part.fd)


def _backward(fd: int, end: int) -> Iterator[bytes]:
    """The lines of `fd[:end]`, last first, read in blocks from the end."""
    carry = b""
    position = end
    while position > 0:
        start = max(0, position - BLOCK)
        block = os.pread(fd, position - start, start)
        if not block:
            break
        position = start
        data = block + carry
        lines = data.split(b"\n")
        carry = lines[0]
        for line in reversed(lines[1:]):
            if line and len(line) <= MAX_LINE:
                yield line
        if len(carry) > MAX_LINE:
            carry = carry[:0]  # a monster line: dropped, reading goes on before it
    if carry and len(carry) <= MAX_LINE:
        yield carry


def _forward(fd: int, start: int, end: int) -> Iterator[bytes]:
    """The lines of `fd[start:end]`, first first."""
    carry = b""
    position = start
    while position < end:
        block = os.pread(fd, min(BLOCK, end - position), position)
        if not block:
            break
        position += len(block)
        lines = (carry + block).split(b"\n")
        carry = lines.pop()
        for line in lines:
            if line and len(line) <= MAX_LINE:
                yield line
        if len(carry) > MAX_LINE:
            carry = b""
    if carry and len(carry) <= MAX_LINE:
        yield carry


def _line_at(fd: int, offset: int, end: int) -> tuple[int, bytes] | None:
    """The first whole line starting at or after `offset`: (its start, its bytes)."""
    if offset > 0:
        head = os.pread(fd, min(MAX_LINE + 1, end - offset + 1), offset - 1)
        newline = head.find(b"\n")
        if newline < 0:
            return None
        offset += newline
    if offset >= end:
        return None
    data = os.pread(fd, min(MAX_LINE, end - offset), offset)
    return offset, data.split(b"\n", 1)[0]


def _first_since(fd: int, end: int, since: str) -> int:
    """Where the first line stamped >= `since` starts. Files are sorted, so a
    bisection narrows it to a block, then a scan finds the line. `low` is always a
    line start with only older lines before it."""
    target = since.encode()
    low, high = 0, end
    while high - low > BLOCK:
        middle = (low + high) // 2
        found = _line_at(fd, middle, end)
        if found is not None and found[1][:TIMESTAMP_LEN] < target:
            low = found[0] + len(found[1]) + 1
        else:
            high = middle
    return _scan_since(fd, low, end, target)


def _scan_since(fd: int, position: int, end: int, target: bytes) -> int:
    while position < end:
        block = os.pread(fd, min(BLOCK, end - position), position)
        if not block:
            return end
        newline = block.rfind(b"\n")
        if newline < 0:
            if position + len(block) >= end:   # the last line, without its newline
                return position if block[:TIMESTAMP_LEN] >= target else end
            found = _line_at(fd, position + 1, end)   # a line longer than a block
            if found is None:
                return end
            position = found[0]
            continue
        for line in block[:newline].split(b"\n"):
            if line[:TIMESTAMP_LEN] >= target:
                return position
            position += len(line) + 1
    return end


def _older_first(folder: Path, service: str, query: Query,
                 mark: Positions | None) -> Iterator[LogLine]:
    """A service's matching lines in time order, from `since` (bisected) on."""
    parts = _chain(folder, service, mark)
    try:
        for part in reversed(parts):
            start = 0
            if query.since is not None:
                start = _first_since(part.fd, part.end, query.since)
            for raw in _forward(part.fd, start, part.end):
                line = parse_line(raw, service)
                if line is None:
                    continue
                if query.until is not None and line.timestamp > query.until:
                    return
                if query.matches(line):
                    yield line
    finally:
        _close(parts)


def _newest(folder: Path, service: str, query: Query, mark: Positions | None,
            limit: int) -> list[LogLine]:
    """A service's newest `limit` matching lines, oldest first, read backwards."""
    found: list[LogLine] = []
    skip = query.skip_at_until
    parts = _chain(folder, service, mark)
    try:
        for part in parts:
            for raw in _backward(part.fd, part.end):
                line = parse_line(raw, service)
                if line is None:
                    continue
                if query.until is not None and line.timestamp > query.until:
                    continue
                if skip and line.timestamp == query.until:
                    skip -= 1
                    continue
                if query.since is not None and line.timestamp < query.since:
                    return found[::-1]
                if query.matches(line):
                    found.append(line)
                    if len(found) >= limit:
                        return found[::-1]
    finally:
        _close(parts)
    return found[::-1]


def history(folder: Path, services: Sequence[str], query: Query,
            mark: Positions | None = None) -> Iterator[LogLine]:
    """The matching lines of `services`, merged in time order (stable per service).

    With `query.limit` only the newest that many (at most limit lines per service are
    ever held); without, every line from `since` on, streamed.
    """
    if query.limit is None:
        streams = [_older_first(folder, name, query, mark) for name in services]
        yield from heapq.merge(*streams, key=lambda line: line.timestamp)
        return
    if query.limit == 0:
        return
    merged = heapq.merge(*(_newest(folder, name, query, mark, query.limit)
                           for name in services), key=lambda line: line.timestamp)
    yield from list(merged)[-query.limit:]


def services_on_disk(folder: Path) -> list[str]:
    """The services that have a current log file in `folder`, sorted."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(name[:-len(".log")] for name in names
                  if name.endswith(".log") and len(name) > len(".log"))
