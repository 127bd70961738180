"""The log files' pure parts (line format, rotation decisions, the failure notices, time
parsing) and the writer and reader on files in tmp_path, driven without their thread."""

from __future__ import annotations

import calendar
import errno
import os
import time
from pathlib import Path

import pytest

from promenade_core import logread
from promenade_core.config.model import LogFiles
from promenade_core.logread import LogLine, Query
from promenade_core.supervise import logfiles
from promenade_core.supervise.logfiles import Health, LogFileWriter, rotation_cut

NOW = calendar.timegm((2024, 1, 15, 12, 0, 0)) + 0.5


def test_a_read_becomes_one_line_per_output_line_with_its_prefix() -> None:
    data = logfiles.block_bytes("2024-01-15T10:23:45.123Z", "stderr", ["a", "\x1b[31mb\x1b[0m", ""])
    assert data == (b"2024-01-15T10:23:45.123Z stderr a\n"
                    b"2024-01-15T10:23:45.123Z stderr \x1b[31mb\x1b[0m\n"
                    b"2024-01-15T10:23:45.123Z stderr \n")
    line = logread.parse_line(data.split(b"\n")[1], "api")
    assert line == LogLine("2024-01-15T10:23:45.123Z", "api", "stderr", "\x1b[31mb\x1b[0m")


@pytest.mark.parametrize("raw", [b"", b"garbage", b"2024-01-15T10:23:45.123Z", b"x" * 40,
                                 b"2024-01-15T10:23:45.123Zstdout text",
                                 b"2024-01-15T10:23:45.123Z stdout"])
def test_a_line_that_is_not_ours_is_skipped(raw: bytes) -> None:
    assert logread.parse_line(raw, "api") is None


def test_an_empty_output_line_is_kept() -> None:
    assert logread.parse_line(b"2024-01-15T10:23:45.123Z stdout ", "api") == LogLine(
        "2024-01-15T10:23:45.123Z", "api", "stdout", "")


@pytest.mark.parametrize(("size", "data", "limit", "cut"), [
    (0, b"a\nb\n", 10, 4),            # fits
    (8, b"a\nb\n", 10, 2),            # one whole line fits, then rotate
    (9, b"a\nb\n", 10, 0),            # nothing fits: rotate first
    (0, b"aaaaaaaaaaaaaaa\nb\n", 10, 16),   # a line longer than the limit: whole, alone
    (0, b"aaaaaaaaaaaaaaa", 10, 15),  # ... even without its newline
    (10, b"a\n", 10, 0),
])
def test_rotation_cuts_at_whole_lines(size: int, data: bytes, limit: int, cut: int) -> None:
    assert rotation_cut(size, data, limit) == cut


def test_rotation_cut_from_an_offset() -> None:
    assert rotation_cut(0, b"xx\na\nb\n", 3, start=3) == 2


def test_rotation_moves_oldest_first() -> None:
    path = Path("/l/api.log")
    assert logfiles.rotation_moves(path, 3) == (Path("/l/api.log.3"), [
        (Path("/l/api.log.2"), Path("/l/api.log.3")),
        (Path("/l/api.log.1"), Path("/l/api.log.2")),
        (path, Path("/l/api.log.1"))])
    assert logfiles.rotation_moves(path, 0) == (path, [])


def test_a_failure_warns_once_and_the_recovery_counts_what_was_lost() -> None:
    health = Health()
    assert health.may_try(0.0)
    warning = health.failed(10.0, 5, "/l/api.log: No space left on device")
    assert warning is not None and "No space left on device" in warning
    assert health.failed(10.5, 3, "again") is None        # still failing: no new warning
    assert not health.may_try(11.0)
    assert health.may_try(10.5 + logfiles.RETRY_EVERY)
    health.skipped(2)
    assert health.succeeded() == "log files are written again (10 lines were not saved)"
    assert health.succeeded() is None
    assert health.failed(20.0, 1, "x") is not None         # a new failure warns again


@pytest.mark.parametrize(("text", "expected"), [
    ("10m", "2024-01-15T11:50:00.500Z"),
    ("2h", "2024-01-15T10:00:00.500Z"),
    ("90s", "2024-01-15T11:58:30.500Z"),
    ("1d", "2024-01-14T12:00:00.500Z"),
    ("1.5h", "2024-01-15T10:30:00.500Z"),
    ("2024-01-15T10:23Z", "2024-01-15T10:23:00.000Z"),
    ("2024-01-15 10:23:45.250+02:00", "2024-01-15T08:23:45.250Z"),
])
def test_since_takes_durations_and_times(text: str, expected: str) -> None:
    assert logread.parse_time(text, NOW) == expected


def test_a_time_without_an_offset_is_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        assert logread.parse_time("2024-01-15T10:23", NOW) == "2024-01-15T09:23:00.000Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("text", ["yesterday", "10", "10 parsecs", "", "2024-13-01"])
def test_a_bad_time_is_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(logread.TimeError, match="neither a duration"):
        logread.parse_time(text, NOW)


def test_grep_searches_the_text_without_colour_codes() -> None:
    query = Query(grep=logread.compile_grep("error: disk", True))
    coloured = LogLine("t", "api", "stdout", "\x1b[31mERROR\x1b[0m: disk full")
    assert query.matches(coloured)
    assert not Query(streams=frozenset(["stderr"])).matches(coloured)


# -- the writer and the reader on real files, without the thread ---------------------

def ts(second: int) -> str:
    return f"2024-01-15T10:00:{second:02d}.000Z"


class Said:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __call__(self, message: str, level: str) -> None:
        self.messages.append((message, level))


DEFAULTS = LogFiles()


def writer(folder: Path, settings: LogFiles = DEFAULTS) -> tuple[LogFileWriter, Said]:
    said = Said()
    return LogFileWriter(folder, settings, said, clock=lambda: 0.0), said


def test_the_writer_rotates_and_keeps_keep_files(tmp_path: Path) -> None:
    w, said = writer(tmp_path, LogFiles(max_bytes=200, keep=2))
    for second in range(30):
        w.write("api", "stdout", ts(second), [f"line {second}"])
        w.drain()
    names = sorted(os.listdir(tmp_path))
    assert names == ["api.log", "api.log.1", "api.log.2"]
    assert all((tmp_path / n).stat().st_size <= 200 for n in names)
    lines = list(logread.history(tmp_path, ["api"], Query()))
    assert [line.text for line in lines] == [f"line {s}" for s in range(30 - len(lines), 30)]
    assert said.messages == []


def test_a_symlink_is_refused_with_one_warning(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("precious\n")
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "api.log").symlink_to(target)
    w, said = writer(folder)
    w.write("api", "stdout", ts(1), ["a"])
    w.drain()
    w.write("api", "stdout", ts(2), ["b"])
    w.drain()
    assert target.read_text() == "precious\n"
    assert len(said.messages) == 1
    assert "is a symbolic link (not followed)" in said.messages[0][0]


def test_a_full_queue_drops_and_says_how_much(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfiles, "MAX_PENDING", 100)
    w, said = writer(tmp_path)
    w.write("api", "stdout", ts(1), ["x" * 50])
    w.write("api", "stdout", ts(2), ["y" * 50, "z"])   # over the bound: dropped
    w.drain()
    assert logread.parse_line((tmp_path / "api.log").read_bytes().rstrip(b"\n"),
                              "api") == LogLine(ts(1), "api", "stdout", "x" * 50)
    assert said.messages == [("2 lines were not written to the log files (the disk was "
                              "too slow)", "warning")]


def test_the_mark_gives_each_file_where_it_stands(tmp_path: Path) -> None:
    w, _ = writer(tmp_path)
    marks: list[dict[str, tuple[int, int]]] = []
    w.write("api", "stdout", ts(1), ["before"])
    w.event(ts(1), "info", "two\nlines")
    w.mark(marks.append)
    w.write("api", "stdout", ts(2), ["after"])
    w.write("web", "stdout", ts(2), ["after"])
    w.drain()
    [mark] = marks
    assert set(mark) == {"api", "promenade"}
    lines = list(logread.history(tmp_path, ["api", "web", "promenade"], Query(), mark))
    assert [(line.service, line.text) for line in lines] == [
        ("api", "before"), ("promenade", "two"), ("promenade", "lines")]


def write_file(path: Path, seconds: range, text: str = "line") -> None:
    path.write_bytes(b"".join(logfiles.block_bytes(ts(s), "stdout", [f"{text} {s}"])
                              for s in seconds))


def test_history_reads_rotated_files_in_order_and_merges_services(tmp_path: Path) -> None:
    write_file(tmp_path / "api.log.2", range(0, 10))
    write_file(tmp_path / "api.log.1", range(10, 20))
    write_file(tmp_path / "api.log", range(20, 30))
    write_file(tmp_path / "web.log", range(5, 35, 10), "web")
    every = list(logread.history(tmp_path, ["api", "web"], Query()))
    assert [line.timestamp for line in every] == sorted(line.timestamp for line in every)
    assert len(every) == 33
    assert [line.text for line in logread.history(tmp_path, ["api"], Query(limit=3))] == [
        "line 27", "line 28", "line 29"]
    since = list(logread.history(tmp_path, ["api"], Query(since=ts(8), until=ts(12))))
    assert [line.text for line in since] == [f"line {s}" for s in range(8, 13)]
    assert logread.services_on_disk(tmp_path) == ["api", "web"]


def test_since_bisects_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "api.log"
    lines = [logfiles.block_bytes(f"2024-01-15T10:{m:02d}:{s:02d}.000Z", "stdout", [f"{m} {s}"])
             for m in range(60) for s in range(60)]
    path.write_bytes(b"".join(lines))
    assert path.stat().st_size > 2 * logread.BLOCK
    found = list(logread.history(tmp_path, ["api"], Query(since="2024-01-15T10:37:12.000Z",
                                                             limit=None)))
    assert found[0].text == "37 12" and len(found) == (60 - 37) * 60 - 12


def test_dashboard_paging_skips_what_it_has_at_the_boundary(tmp_path: Path) -> None:
    (tmp_path / "api.log").write_bytes(
        logfiles.block_bytes(ts(1), "stdout", ["a", "b"])
        + logfiles.block_bytes(ts(2), "stdout", ["c", "d", "e"]))
    older = logread.history(tmp_path, ["api"], Query(until=ts(2), skip_at_until=2, limit=10))
    assert [line.text for line in older] == ["a", "b", "c"]


def test_the_reader_skips_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "api.log")
    assert list(logread.history(tmp_path, ["api"], Query())) == []
    assert list(logread.history(tmp_path / "missing", ["api"], Query(limit=5))) == []


def test_writing_fails_over_a_missing_folder_with_one_warning(tmp_path: Path) -> None:
    w, said = writer(tmp_path / "gone")
    w.write("api", "stdout", ts(1), ["a"])
    w.drain()
    w.event(ts(1), "info", "b")
    w.drain()
    assert len(said.messages) == 1 and said.messages[0][1] == "warning"
    assert os.strerror(errno.ENOENT) in said.messages[0][0]


def test_the_managers_name_is_no_service_name(tmp_path: Path) -> None:
    """A service called `promenade` would write into the manager's promenade.log."""
    from promenade_core.config.load import load_config
    from promenade_core.errors import ConfigError

    path = tmp_path / "promenade.yaml"
    path.write_text("services:\n  promenade: {command: echo}\n")
    with pytest.raises(ConfigError, match="'promenade' is reserved"):
        load_config(path)
    assert logread.MANAGER_LOG == "promenade"


def test_drops_are_reported_at_most_every_few_seconds(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfiles, "MAX_PENDING", 10)
    now = [0.0]
    said = Said()
    w = LogFileWriter(tmp_path, DEFAULTS, said, clock=lambda: now[0])
    for step in range(3):
        now[0] = step * 1.0
        w.write("api", "stdout", ts(step), ["x" * 50])   # never fits: dropped
        w.drain()
    assert said.messages == [("1 line was not written to the log files (the disk was "
                              "too slow)", "warning")]
    now[0] = logfiles.DROP_REPORT_EVERY
    w.drain()
    assert said.messages[-1][0].startswith("2 lines were not written")


def test_short_writes_go_on_where_they_stopped(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk may take part of a writev; every line still lands once, in order, and
    rotation still cuts between lines."""
    def seven_bytes(fd: int, buffers: list[memoryview]) -> int:
        return os.write(fd, b"".join(bytes(b) for b in buffers)[:7])

    monkeypatch.setattr(logfiles.os, "writev", seven_bytes)
    w, _ = writer(tmp_path)
    lines = [f"line {n} " + "x" * n for n in range(40)]
    for n in range(0, 40, 5):
        w.write("api", "stdout", ts(n), lines[n:n + 5])
    w.drain()
    got = [logread.parse_line(raw, "api").text
           for raw in (tmp_path / "api.log").read_bytes().splitlines()]
    assert got == lines
