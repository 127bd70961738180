"""`promenade logs`: history from the log files, then (with -f) the live feed.

With a manager running, the files are read up to its `log_mark` (the bus seq S it has
reached, each file's size once every line up to S is written), and `-f` joins the feed
with that same mark: the feed drops every event with seq <= S, so the history and the
live lines meet with no gap and no duplicate. Without a manager the files are read as
they are (`-f` prints them and exits 3: nothing can follow). With `log_files: false`
the manager's memory buffer is what there is, filtered the same way.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from promenade_cli.common import ConfigArg, ExitCode, config_option, request, resolve
from promenade_cli.completion import complete_services
from promenade_core import logread
from promenade_core.errors import NoManagerError, UnknownServiceError
from promenade_core.logformat import Formatter, wants_colour

if TYPE_CHECKING:
    from promenade_core.bus.client import ManagerInfo

#: `-n` when neither it nor a bound (--since, --until, --grep) is given.
DEFAULT_LINES = 100


def _query(since: str | None, until: str | None, grep: str | None, ignore_case: bool,
           stream: str | None, count: int | None, now: float) -> logread.Query:
    """The options as a Query (click.UsageError for a bad time or regex). Without -n,
    a bound shows every line within it; no bound shows the last DEFAULT_LINES."""
    try:
        start = logread.parse_time(since, now) if since else None
        end = logread.parse_time(until, now) if until else None
    except logread.TimeError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        pattern = logread.compile_grep(grep, ignore_case) if grep is not None else None
    except re.error as exc:
        raise click.UsageError(f"--grep {grep!r} is not a valid regular expression: {exc}"
                               ) from None
    if count is None and not (since or until or grep):
        count = DEFAULT_LINES
    return logread.Query(since=start, until=end, grep=pattern,
                         streams=frozenset([stream]) if stream else None, limit=count)


class Printer:
    """Lines to the user's terminal: runs of one service, stream and timestamp as one
    block; the manager's events as the terminal shows them."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.fmt = Formatter(wants_colour(out))

    def lines(self, lines: Iterable[logread.LogLine]) -> None:
        run: list[str] = []
        key: tuple[str, str, str] | None = None
        for line in lines:
            if (line.service, line.stream, line.timestamp) != key and run:
                self._run(key, run)
                run = []
            key = (line.service, line.stream, line.timestamp)
            run.append(line.text)
        if run:
            self._run(key, run)

    def _run(self, key: tuple[str, str, str] | None, texts: list[str]) -> None:
        assert key is not None
        service, stream, timestamp = key
        if service == logread.MANAGER_LOG:
            for text in texts:
                self.out.write(self.fmt.message(timestamp, text, stream))
        else:
            self.out.write(self.fmt.block(service, stream, timestamp, texts))


def _check_names(services: tuple[str, ...], known: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys([*known, logread.MANAGER_LOG]))
    unknown = [s for s in services if s not in names]
    if unknown:
        raise UnknownServiceError(f"unknown service {unknown[0]!r} (known: {', '.join(names)})")
    return list(services) or names


@click.command("logs")
@click.argument("services", nargs=-1, shell_complete=complete_services)
@config_option
@click.option("-n", "--lines", "count", type=click.IntRange(0), default=None,
              help=f"Show the last N lines (default {DEFAULT_LINES}; with --since, --until "
                   "or --grep: every line that matches)")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing new lines")
@click.option("--since", metavar="WHEN", help="Only lines from then on: 10m, 2h, 1d or a "
                                              "time (2024-01-15T10:23, local unless …Z)")
@click.option("--until", metavar="WHEN", help="Only lines up to then (same forms)")
@click.option("--grep", metavar="REGEX", help="Only lines that match (Python regex, "
                                              "searched without colour codes)")
@click.option("-i", "--ignore-case", is_flag=True, help="--grep ignores case")
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), help="Only this stream")
def logs(services: tuple[str, ...], config: ConfigArg, count: int | None, follow_: bool,
         since: str | None, until: str | None, grep: str | None, ignore_case: bool,
         stream: str | None) -> ExitCode:
    """Log lines of every service (and the manager's events, as `promenade`), or of
    the SERVICES named, from the log files: with or without a running manager.

    With -f, goes on with live lines; ends (exit 0, one notice on stderr) when the
    manager stops or restarts. Exit 3 with no manager and no log files (or -f with no
    manager, after the history).
    """
    from promenade_core.bus.client import find_manager

    if follow_ and until:
        raise click.UsageError("--until and --follow do not go together")
    query = _query(since, until, grep, ignore_case, stream, count, time.time())
    path = resolve(config)
    printer = Printer(sys.stdout)
    info = find_manager(path)
    if info is None:
        return _without_manager(path, services, query, printer, follow_)
    # a service removed from the config still has its files
    from promenade_core import runtime

    on_disk = logread.services_on_disk(runtime.logs_dir(path))
    names = _check_names(services, [*request(info, "status")["services"], *on_disk])
    if follow_:
        return _follow(info, names, query, printer)
    mark = request(info, "log_mark")
    if not mark["enabled"]:
        return _from_buffer(info, names, query, printer)
    printer.lines(logread.history(Path(mark["folder"]), names, query, _positions(mark)))
    return 0


def _positions(mark: dict[str, Any]) -> logread.Positions:
    return {name: (int(pair[0]), int(pair[1])) for name, pair in mark["files"].items()}


def _without_manager(path: Path, services: tuple[str, ...], query: logread.Query,
                     printer: Printer, follow_: bool) -> ExitCode:
    from promenade_core import runtime

    folder = runtime.logs_dir(path)
    problem = runtime.logs_dir_problem(folder)
    if problem is not None:
        raise NoManagerError(f"no Promenade manager is running for {path}, and its log "
                             f"folder {folder} {problem}")
    names = _check_names(services, logread.services_on_disk(folder))
    printer.lines(logread.history(folder, names, query))
    if follow_:
        printer.out.flush()
        raise NoManagerError(f"no Promenade manager is running for {path}: nothing to "
                             "follow (the lines above are from its log files)")
    return 0


def _from_buffer(info: ManagerInfo, names: list[str], query: logread.Query,
                 printer: Printer, upto: int | None = None) -> ExitCode:
    """`log_files: false`: the manager's buffers, with the same filters (the bounds are
    applied here; the buffer holds what it holds), only lines with seq <= `upto`."""
    wanted = [n for n in names if n != logread.MANAGER_LOG]
    if not wanted:
        return 0
    result = request(info, "logs", services=wanted)
    lines = [line for message in result["messages"] for line in _message_lines(message, upto)
             if _within(line, query) and query.matches(line)]
    if query.limit is not None:
        lines = lines[len(lines) - query.limit:] if query.limit else []
    printer.lines(lines)
    return 0


def _within(line: logread.LogLine, query: logread.Query) -> bool:
    return ((query.since is None or line.timestamp >= query.since)
            and (query.until is None or line.timestamp <= query.until))


def _message_lines(message: dict[str, Any], upto: int | None = None,
                   ) -> Iterator[logread.LogLine]:
    """A `log/` message as LogLines (only those with seq <= `upto`)."""
    lines = message["lines"]
    if upto is not None:
        lines = lines[:max(0, upto - message["first_seq"] + 1)]
    for text in lines:
        yield logread.LogLine(message["timestamp"], message["service"], message["stream"],
                              text)


def _event_lines(event: dict[str, Any]) -> list[logread.LogLine]:
    """A `manager/` event as promenade.log has it (only the ones written there)."""
    now = logread.format_time(time.time())
    if event.get("event") == "message":
        text = str(event.get("message", ""))
    elif event.get("event") == "stopping":
        text = f"{event.get('message', '')}: stopping every service"
    else:
        return []
    level = str(event.get("level") or "info")
    return [logread.LogLine(now, logread.MANAGER_LOG, level, part)
            for part in logread.event_lines(text)]


def _follow(info: ManagerInfo, names: list[str], query: logread.Query,
            printer: Printer) -> ExitCode:
    """History up to the mark, then live lines after it (see the module docstring)."""
    from promenade_core.bus import protocol
    from promenade_core.bus.client import follow

    wanted = set(names)
    live_query = logread.Query(grep=query.grep, streams=query.streams)
    feed = follow(info, topics=(protocol.LOG_PREFIX, protocol.MANAGER_TOPIC), tail=0,
                  join="log_mark")
    # closing(): a Ctrl-C that lands while a line is being printed must still close the
    # feed's sockets now; left to the garbage collector, they would make the exit wait.
    try:
        with contextlib.closing(feed):
            for kind, item in feed:
                if kind == "joined":
                    _history_at_join(item, names, query, printer, info)
                    continue
                if kind == "log" and item["service"] in wanted:
                    lines = _message_lines(item)
                elif kind == "manager" and logread.MANAGER_LOG in wanted:
                    lines = iter(_event_lines(item))
                elif kind == "gap":
                    click.echo(f"[promenade] {item['missed']} messages lost (reader too slow)",
                               err=True)
                    continue
                elif kind == "end":
                    click.echo(f"[promenade] {item['reason']}; no more lines", err=True)
                    return 0
                else:
                    continue
                printer.lines(line for line in lines if live_query.matches(line))
                printer.out.flush()
    except KeyboardInterrupt:
        return 0
    return 0


def _history_at_join(mark: dict[str, Any], names: list[str], query: logread.Query,
                     printer: Printer, info: ManagerInfo) -> None:
    if mark["enabled"]:
        printer.lines(logread.history(Path(mark["folder"]), names, query, _positions(mark)))
    else:
        _from_buffer(info, names, query, printer, upto=int(mark["seq"]))
    printer.out.flush()
