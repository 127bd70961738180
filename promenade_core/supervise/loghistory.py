"""The log files as the manager serves them: the writer started in the hub, the
`log_mark` seam for readers, and `log_history` (the dashboard's older lines and its
search) read in the hub's thread pool, never in a greenlet (a read blocks the hub).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from promenade_core import logread, runtime
from promenade_core.bus import protocol
from promenade_core.bus.server import CommandError
from promenade_core.config.model import LogFiles
from promenade_core.errors import PromenadeError
from promenade_core.supervise.logfiles import LogFileWriter, Positions

#: How long a `log_mark` waits for the writer to reach it (a hung disk: give up).
MARK_TIMEOUT = 5.0
#: The most lines one `log_history` request returns.
MAX_HISTORY = 2000

Say = Callable[[str, protocol.Level], None]


def start_writer(config_path: Path, settings: LogFiles, say: Say) -> LogFileWriter | None:
    """The writer for this config's log folder, running; None (with a warning) when the
    folder cannot be made ours: Promenade runs on without log files."""
    try:
        folder = runtime.logs_dir(config_path, create=True)
    except PromenadeError as exc:
        say(f"no log files: {exc}", "warning")
        return None
    hub = gevent.get_hub()

    def from_thread(message: str, level: str) -> None:
        hub.loop.run_callback_threadsafe(
            gevent.spawn, say, message, level if level in ("info", "warning") else "info")

    writer = LogFileWriter(folder, settings, from_thread)
    writer.start()
    return writer


def mark(writer: LogFileWriter | None, seq: int) -> dict[str, Any]:
    """`log_mark`: every line up to bus seq `seq` is in the files at the sizes given.
    Call it in the same step as reading `seq` (no yield between): lines are queued to
    the writer before they are published."""
    if writer is None or not writer.settings.enabled:
        return {"enabled": False, "seq": seq, "folder": None, "files": {}}
    hub = gevent.get_hub()
    result: gevent.event.AsyncResult[Positions] = gevent.event.AsyncResult()
    writer.mark(lambda positions: hub.loop.run_callback_threadsafe(result.set, positions))
    try:
        positions = result.get(timeout=MARK_TIMEOUT)
    except gevent.Timeout:
        raise CommandError(protocol.TIMEOUT, "the log files are not written in time "
                           "(is the disk hung?)") from None
    return {"enabled": True, "seq": seq, "folder": str(writer.folder),
            "files": {name: list(position) for name, position in positions.items()}}


def history_query(request: dict[str, Any]) -> logread.Query:
    """The arguments of `log_history`, checked (they come from any local process)."""
    def text(key: str) -> str | None:
        value = request.get(key)
        if value is not None and not isinstance(value, str):
            raise CommandError(protocol.BAD_REQUEST, f"{key!r} must be text")
        return value or None

    limit = request.get("limit", 200)
    skip = request.get("skip", 0)
    for key, value in (("limit", limit), ("skip", skip)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CommandError(protocol.BAD_REQUEST, f"{key!r} must be a whole number >= 0")
    grep = None
    pattern = text("grep")
    if pattern:
        try:
            grep = logread.compile_grep(pattern, bool(request.get("ignore_case")))
        except re.error as exc:
            raise CommandError(protocol.BAD_REQUEST, f"bad regular expression: {exc}"
                               ) from None
    until = text("before")
    if until is not None and not logread.TIMESTAMP.fullmatch(until.encode()):
        raise CommandError(protocol.BAD_REQUEST, '"before" must be a timestamp like '
                           "2024-01-15T10:23:45.123Z")
    return logread.Query(until=until, grep=grep, limit=min(limit, MAX_HISTORY),
                         skip_at_until=skip)


def history(writer: LogFileWriter | None, service: str,
            query: logread.Query) -> dict[str, Any]:
    """`log_history`: a service's lines from the files (newest `limit`, oldest first),
    read in a pool thread."""
    if writer is None:
        return {"service": service, "lines": [], "enabled": False}

    def read() -> list[logread.LogLine]:
        with contextlib.suppress(OSError):
            return list(logread.history(writer.folder, [service], query))
        return []

    lines = gevent.get_hub().threadpool.spawn(read).get()
    return {"service": service, "enabled": writer.settings.enabled,
            "lines": [{"timestamp": line.timestamp, "stream": line.stream, "text": line.text}
                      for line in lines]}
