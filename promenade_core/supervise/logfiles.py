"""Log files: every service's lines and the manager's events on disk, rotated by size.

`<state>/logs/<service>.log`, and the manager's events in `promenade.log` beside them,
one line per output line: `2024-01-15T10:23:45.123Z stdout text` (ANSI codes kept; for
the manager's events the middle word is the level: info, warning, error). The format and
the reading side are logread's (standard library only, shared with the CLI).

Why a thread: a write to a full, slow or network disk can block for seconds, and a
blocking write in the hub would freeze every service's output with it. The hot path
(`write`, called by Supervisor.on_lines once per read) appends the batch to a deque and
adds up its length; a dedicated thread drains the deque and writes each service's
pending batches as one bytes object, one `os.write` per service per pass. The deque is
bounded (MAX_PENDING bytes): when the disk cannot keep up, batches are counted and
dropped, never waited for.

A failed write (a full or read-only disk, a symlink planted in the folder) gives ONE
warning; lines are then dropped (counted) and a write is tried again every
RETRY_EVERY seconds; the first that succeeds says so, with how many lines were lost.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from promenade_core.config.model import LogFiles
from promenade_core.logread import MANAGER_LOG, event_lines, log_path, rotated_path
from promenade_core.runtime import distrust

#: Bytes waiting for the disk at most (about a second of a flooding service); past it
#: batches are dropped and counted, so memory stays bounded whatever the disk does.
MAX_PENDING = 32 * 1024 * 1024
#: Bytes one pass gathers before writing them: the drain never holds a second copy of
#: the whole queue (a queue that grew to 20 MB while the thread waited for the GIL
#: used to be joined whole, doubling the manager's peak in a flood).
PASS_BYTES = 1024 * 1024
#: Per line, the prefix (`timestamp stream `) and newline, for the pending estimate.
LINE_OVERHEAD = 32
#: Seconds between two tries to write while writing fails.
RETRY_EVERY = 2.0
#: How long the thread sleeps when there is nothing to write (it wakes at once for data).
IDLE_WAKE = 1.0
#: At most one "lines were not written" warning this often while the disk lags.
DROP_REPORT_EVERY = 10.0

Say = Callable[[str, str], None]
Positions = dict[str, tuple[int, int]]


# -- pure decisions ------------------------------------------------------------------

def block_bytes(timestamp: str, stream: str, lines: list[str]) -> bytes:
    """One read's lines as file lines: the prefix joined in once, one encode."""
    prefix = f"{timestamp} {stream} "
    return (prefix + ("\n" + prefix).join(lines) + "\n").encode("utf-8", "replace")


def rotation_cut(size: int, data: bytes, max_bytes: int, start: int = 0) -> int:
    """How many bytes of `data[start:]` go into a file of `size` bytes before it is
    rotated: whole lines only; 0 means rotate first. A single line longer than
    `max_bytes` goes whole into an empty file (cutting it would invent a line)."""
    room = max_bytes - size
    if len(data) - start <= room:
        return len(data) - start
    end = data.rfind(b"\n", start, start + max(room, 0))
    if end >= 0:
        return end + 1 - start
    if size == 0:
        end = data.find(b"\n", start)
        return (end + 1 if end >= 0 else len(data)) - start
    return 0


def rotation_moves(path: Path, keep: int) -> tuple[Path | None, list[tuple[Path, Path]]]:
    """What rotating `path` does: the file removed (the oldest kept, or `path` itself
    with keep 0), then the renames, oldest first (`.2` -> `.3`, `.1` -> `.2`, `path` ->
    `.1`)."""
    if keep == 0:
        return path, []
    moves = [(rotated_path(path, n - 1) if n > 1 else path, rotated_path(path, n))
             for n in range(keep, 0, -1)]
    return rotated_path(path, keep), moves


@dataclass
class Health:
    """Whether writing works, and the one warning / one recovery notice around a
    failure. Pure: the caller gives `now` and does the writing."""

    failing: bool = False
    retry_at: float = 0.0
    lost: int = 0

    def may_try(self, now: float) -> bool:
        return not self.failing or now >= self.retry_at

    def failed(self, now: float, lines: int, what: str) -> str | None:
        """A write of `lines` failed (`what` says where and why): the warning the
        first time, None while it keeps failing."""
        self.lost += lines
        self.retry_at = now + RETRY_EVERY
        if self.failing:
            return None
        self.failing = True
        return (f"cannot write log files: {what}; Promenade keeps running without them "
                f"and tries again every {RETRY_EVERY:g} s")

    def skipped(self, lines: int) -> None:
        """Lines dropped without a try (between retries, or the queue was full)."""
        self.lost += lines

    def succeeded(self) -> str | None:
        """A write worked: the notice after a failure (with what was lost), else None."""
        if not self.failing:
            return None
        lost, self.lost, self.failing = self.lost, 0, False
        return f"log files are written again ({_lines(lost)} not saved)"


def _lines(count: int) -> str:
    return f"{count:,} line was" if count == 1 else f"{count:,} lines were"


def _why(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ELOOP:
        return f"{path} is a symbolic link (not followed)"
    return f"{path}: {exc.strerror or exc}"


# -- the files -----------------------------------------------------------------------

@dataclass
class _File:
    fd: int
    size: int


def open_log(path: Path) -> _File:
    """Open for appending (created 0600), never through a symlink, and only a regular
    file of ours that no one else may write (the folder is private, but a file could
    have been planted by root or left by another tool)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                 | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK, 0o600)
    info = os.fstat(fd)
    problem = distrust(info, os.geteuid(), folder=False)
    if problem is not None:
        os.close(fd)
        raise OSError(errno.EPERM, f"{problem}: not writing to it")
    return _File(fd, info.st_size)


@dataclass
class _Group:
    """One service's lines of one pass, joined for one write."""

    chunks: list[bytes] = field(default_factory=list)
    lines: int = 0


class _Mark:
    """A point in the queue: `done(positions)` is called once everything queued before
    it is on disk (or failed)."""

    def __init__(self, done: Callable[[Positions], None]) -> None:
        self.done = done


Entry = tuple[str, str, str, list[str], int]


class LogFileWriter:
    """The writer: `write`/`event` from the hub, the files written in its own thread.

    `say(message, level)` is called from the writer's thread: the caller makes it
    thread-safe (Manager hands it to the hub with run_callback_threadsafe).
    """

    def __init__(self, folder: Path, settings: LogFiles, say: Say,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self.settings = settings
        self._say = say
        self._clock = clock
        self._queue: deque[Entry | _Mark] = deque()
        #: bytes queued (written by the hub only) and taken (by the thread only): two
        #: counters, each with one writer, need no lock
        self._added = 0
        self._taken = 0
        self._dropped = 0        # lines refused because the queue was full (hub only)
        self._dropped_seen = 0   # (thread only)
        self._unreported = 0     # dropped lines not yet in a warning (thread only)
        self._next_drop_report = 0.0
        self._files: dict[str, _File] = {}
        self._health = Health()
        self._wake = threading.Event()
        self._signalled = False
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- the hub's side (never blocks) ----------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="promenade-logfiles",
                                        daemon=True)
        self._thread.start()

    def write(self, service: str, stream: str, timestamp: str, lines: list[str]) -> None:
        """One read of one stream (the hot path: no syscall, no per-line Python work)."""
        if not self.settings.enabled:
            return
        size = sum(map(len, lines)) + LINE_OVERHEAD * len(lines)
        if self._added - self._taken + size > MAX_PENDING:
            self._dropped += len(lines)
            return
        self._added += size
        self._queue.append((service, stream, timestamp, lines, size))
        self._poke()

    def event(self, timestamp: str, level: str, text: str) -> None:
        """A manager event, to promenade.log (a multi-line message: one line each)."""
        self.write(MANAGER_LOG, level, timestamp, event_lines(text))

    def mark(self, done: Callable[[Positions], None]) -> None:
        """Call `done` (from the thread) with every log file's (inode, size) once all
        that was queued before this call is written: a reader that stops there has
        exactly the lines written so far, and nothing after (logread's seam)."""
        self._queue.append(_Mark(done))
        self._poke()

    def configure(self, settings: LogFiles) -> None:
        """A reload changed `manager.log_files`; it applies from the next write."""
        self.settings = settings

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then close the files (bounded: a hung disk is left)."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _poke(self) -> None:
        if not self._signalled:
            self._signalled = True
            self._wake.set()

    # -- the thread's side ----------------------------------------------------------

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(IDLE_WAKE)
            self._wake.clear()
            self._signalled = False
            self.drain()
        self.drain()
        for file in self._files.values():
            with contextlib.suppress(OSError):
                os.close(file.fd)
        self._files.clear()

    def drain(self) -> None:
        """Write everything queued now: each service's lines in one write, a mark
        answered once what came before it is written."""
        groups: dict[str, _Group] = {}
        gathered = 0
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Mark):
                self._write_groups(groups)
                groups, gathered = {}, 0
                item.done(self._positions())
                continue
            service, stream, timestamp, lines, size = item
            self._taken += size
            group = groups.setdefault(service, _Group())
            group.chunks.append(block_bytes(timestamp, stream, lines))
            group.lines += len(lines)
            gathered += size
            if gathered >= PASS_BYTES:
                self._write_groups(groups)
                groups, gathered = {}, 0
        self._write_groups(groups)
        dropped = self._dropped - self._dropped_seen
        if dropped:
            self._dropped_seen += dropped
            self._health.skipped(dropped)
            if not self._health.failing:   # a failure's notice counts them already
                self._unreported += dropped
        self._report_drops()

    def _report_drops(self) -> None:
        """Lines dropped because the disk is slower than the services: one warning
        with the count at most every DROP_REPORT_EVERY s while it lasts."""
        now = self._clock()
        if self._unreported and now >= self._next_drop_report:
            self._say(f"{_lines(self._unreported)} not written to the log files "
                      "(the disk was too slow)", "warning")
            self._unreported = 0
            self._next_drop_report = now + DROP_REPORT_EVERY

    def _write_groups(self, groups: dict[str, _Group]) -> None:
        for service, group in groups.items():
            now = self._clock()
            if not self._health.may_try(now):
                self._health.skipped(group.lines)
                continue
            path = log_path(self.folder, service)
            try:
                self._append(service, path, b"".join(group.chunks))
            except OSError as exc:
                self._forget(service)
                warning = self._health.failed(now, group.lines, _why(exc, path))
                if warning:
                    self._say(warning, "warning")
                continue
            notice = self._health.succeeded()
            if notice:
                self._say(notice, "info")

    def _append(self, service: str, path: Path, data: bytes) -> None:
        file = self._files.get(service)
        if file is None:
            file = self._files[service] = open_log(path)
        start = 0
        while start < len(data):
            cut = rotation_cut(file.size, data, self.settings.max_bytes, start)
            if cut == 0:
                file = self._rotate(service, path)
                continue
            written = os.write(file.fd, memoryview(data)[start:start + cut])
            file.size += written
            start += written

    def _rotate(self, service: str, path: Path) -> _File:
        self._forget(service)
        removed, moves = rotation_moves(path, self.settings.keep)
        if removed is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(removed)
        for old, new in moves:
            with contextlib.suppress(FileNotFoundError):
                os.rename(old, new)
        file = self._files[service] = open_log(path)
        return file

    def _forget(self, service: str) -> None:
        file = self._files.pop(service, None)
        if file is not None:
            with contextlib.suppress(OSError):
                os.close(file.fd)

    def _positions(self) -> Positions:
        """(inode, size) of every current `.log` file in the folder."""
        found: Positions = {}
        with contextlib.suppress(OSError), os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.endswith(".log") and entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    found[entry.name[:-len(".log")]] = (info.st_ino, info.st_size)
        return found
