"""Log lines: splitting, the ring buffer, and the edge cases end to end."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from promenade_core.bus.protocol import log_tail
from promenade_core.logformat import Formatter, strip_ansi
from promenade_core.supervise.logs import MAX_LINE, Batch, LineSplitter, LogBuffer, iso_timestamp
from tests.support import line_entries, wait_for, write_script

PY = sys.executable


def test_iso_timestamp_is_utc_with_milliseconds() -> None:
    assert iso_timestamp(1705314225.1234) == "2024-01-15T10:23:45.123Z"


def test_partial_lines_are_carried_between_reads() -> None:
    s = LineSplitter()
    assert s.feed(b"hel") == []
    assert s.feed(b"lo\nwor") == ["hello"]
    assert s.feed(b"ld\n\n") == ["world", ""]
    assert s.flush() == []


def test_last_line_without_newline_is_delivered_at_the_end() -> None:
    s = LineSplitter()
    assert s.feed(b"a\nno newline") == ["a"]
    assert s.flush() == ["no newline"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    s = LineSplitter()
    assert s.feed(b"ok \xff\xfe bad\n") == ["ok \ufffd\ufffd bad"]


def test_multibyte_character_split_across_reads_survives() -> None:
    s = LineSplitter()
    data = "héllo €\n".encode()
    assert s.feed(data[:2]) == []
    assert s.feed(data[2:]) == ["héllo €"]


def test_long_line_is_split_never_dropped() -> None:
    s = LineSplitter()
    line = "x" * (MAX_LINE * 2 + 10)
    out = s.feed(line.encode()[:MAX_LINE + 5]) + s.feed(line.encode()[MAX_LINE + 5:] + b"\n")
    assert "".join(out) == line
    assert all(len(piece) <= MAX_LINE for piece in out) and len(out) == 3


def test_long_line_split_keeps_multibyte_characters_whole() -> None:
    s = LineSplitter(max_line=10)
    text = "ab€€€€€€"  # 2 + 6*3 bytes, no newline
    out = s.feed(text.encode()) + s.flush()
    assert "".join(out) == text and "\ufffd" not in "".join(out)


def test_carriage_return_progress_keeps_what_a_terminal_shows() -> None:
    s = LineSplitter()
    assert s.feed(b"10%\r50%\r100%\ndone\r\n") == ["100%", "done"]
    assert s.feed(b"windows\r\n") == ["windows"]


def test_buffer_keeps_the_last_n_lines_across_batches() -> None:
    buf = LogBuffer(5)
    buf.append(Batch(1, "t", "stdout", ["a", "b", "c"]))
    buf.append(Batch(4, "t", "stderr", ["d", "e", "f", "g"]))
    entries = line_entries(buf.messages("svc"))
    assert [e["line"] for e in entries] == ["c", "d", "e", "f", "g"]
    assert [e["seq"] for e in entries] == [3, 4, 5, 6, 7]
    assert entries[0]["stream"] == "stdout" and entries[1]["stream"] == "stderr"
    assert len(buf) == 5


def test_buffer_since_and_tail() -> None:
    buf = LogBuffer(100)
    buf.append(Batch(1, "t", "stdout", ["a", "b", "c"]))
    buf.append(Batch(10, "t", "stdout", ["d", "e"]))
    assert [e["line"] for e in line_entries(buf.messages("s", since=2))] == ["c", "d", "e"]
    assert [e["line"] for e in line_entries(buf.messages("s", since=10))] == ["e"]
    assert [e["line"] for e in line_entries(log_tail(buf.messages("s"), 2))] == ["d", "e"]
    assert log_tail(buf.messages("s"), 0) == []


def test_buffer_resize_in_place() -> None:
    buf = LogBuffer(10)
    buf.append(Batch(1, "t", "stdout", [str(i) for i in range(10)]))
    buf.resize(3)
    assert [e["line"] for e in line_entries(buf.messages("s"))] == ["7", "8", "9"]
    buf.append(Batch(11, "t", "stdout", ["x" * 3] * 5))
    assert len(buf) == 3


def test_one_batch_larger_than_the_buffer() -> None:
    buf = LogBuffer(2)
    buf.append(Batch(1, "t", "stdout", ["a", "b", "c", "d"]))
    assert [(e["seq"], e["line"]) for e in line_entries(buf.messages("s"))] == [(3, "c"), (4, "d")]


def test_formatter_prefixes_and_strips_colour_off_a_terminal() -> None:
    plain = Formatter(colour=False)
    text = plain.block("api", "stderr", "T", ["\x1b[31mred\x1b[0m", "two"])
    assert text == "T [api] [stderr] red\nT [api] [stderr] two\n"
    coloured = Formatter(colour=True).block("api", "stdout", "T", ["\x1b[31mred"])
    assert "\x1b[31mred" in coloured and coloured.endswith("\x1b[0m\n")
    assert strip_ansi(coloured) == "T [api] red\n"


@pytest.mark.timeout(60)
def test_log_edge_cases_end_to_end(manager, tmp_path: Path) -> None:
    write_script(tmp_path, "edges.py", r"""
        import os, sys
        out = sys.stdout.buffer
        out.write(b"bad \xff utf8\n")
        out.write(b"L" * 100000 + b"\n")
        out.write(b"0%\r50%\r100%\n")
        # pipes by default, with FORCE_COLOR set so that tools colour anyway
        colour = b"\x1b[32mgreen\x1b[0m" if os.environ.get("FORCE_COLOR") else b"no colour"
        out.write(colour + b"\n")
        out.flush()
        sys.stderr.write("to stderr\n")
        sys.stderr.flush()
        out.write(b"no final newline")
        out.flush()
    """)
    m = manager(f"""
        services:
          edges: {{command: {PY} edges.py}}
    """)
    m.wait_status("edges", "stopped")
    entries = wait_for(lambda: (e := m.log_lines("edges"))
                       and e[-1]["line"] == "no final newline" and e, what="all lines")
    lines = [e["line"] for e in entries]
    assert lines[0] == "bad \ufffd utf8"
    long_pieces = [x for x in lines if x.startswith("L")]
    assert "".join(long_pieces) == "L" * 100000 and len(long_pieces) == 2
    assert "100%" in lines and "0%\r50%\r100%" not in lines
    assert "\x1b[32mgreen\x1b[0m" in lines  # the buffer keeps colour codes
    assert [e["stream"] for e in entries if e["line"] == "to stderr"] == ["stderr"]
    out = m.output()
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[edges\] green\n", out)
    assert "\x1b[" not in out  # the manager's output is not a terminal: stripped
    assert re.search(r"Z \[edges\] \[stderr\] to stderr\n", out)


@pytest.mark.timeout(60)
def test_pipes_by_default_with_colour_forcing_and_a_pty_on_request(manager,
                                                                      tmp_path: Path) -> None:
    write_script(tmp_path, "tty.py", """
        import os
        names = ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS", "PYTHONUNBUFFERED")
        print("tty" if os.isatty(1) else "pipe", *(os.environ.get(n, "-") for n in names))
    """)
    m = manager(f"""
        services:
          t: {{command: {PY} tty.py}}
          p: {{command: {PY} tty.py, tty: true}}
          n: {{command: {PY} tty.py, env: {{NO_COLOR: "1", FORCE_COLOR: "0"}}}}
    """)
    for name in ("t", "p", "n"):
        m.wait_status(name, "stopped")
    wait_for(lambda: m.lines("t") == ["pipe 1 1 1 1"], what="pipes and the variables")
    # a pty needs no forcing (PYTHONUNBUFFERED is the harness's); what the service or
    # the user set wins, NO_COLOR is heard
    wait_for(lambda: m.lines("p") == ["tty - - - 1"], what="a pty")
    wait_for(lambda: m.lines("n") == ["pipe 0 - - 1"], what="NO_COLOR")
