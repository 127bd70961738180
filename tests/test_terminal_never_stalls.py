"""The terminal never stalls services (issue 14, point 3): a measurement.

The manager's stdout is a pipe nobody reads (a pager that stopped, Ctrl-S): its 64 KiB
fill at once. Before, the terminal writer's backpressure then made every service's
reader wait, so a service writing a flood blocked on its own full pipe for as long as
the terminal did not read: for ever. Now the flood finishes at full speed, every line
is in the ring buffer, and the terminal, once read, shows what fitted with one marker
per skipped run whose counts add up exactly to the lines it did not show.

This reverses test_logs.py's former `test_a_slow_terminal_gets_every_line_by_backpressure`
(issue 14 asks for it): every line still reaches the buffer, the bus and the log files,
and what the terminal skips is said, counted exactly, and never cuts a line in two.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import PROMENADE, Manager, wait_for, write_script

pytestmark = pytest.mark.timeout(120)
PY = sys.executable
LINES = 200_000
#: The flood alone takes ~1-3 s here; a terminal that is never read would hold a
#: service under backpressure for ever.
BOUND = 30.0

FLOOD = """
    import os, sys, time
    started = time.monotonic()
    n, total = 0, int(sys.argv[1])
    while n < total:
        chunk = "".join(f"n {i} {'x' * 40}\\n" for i in range(n, min(n + 2000, total)))
        data = chunk.encode()
        while data:
            data = data[os.write(1, data):]
        n += 2000
    os.write(1, f"flood done in {time.monotonic() - started:.2f} s\\n".encode())
"""
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
FLOOD_LINE = re.compile(TS + r" \[flood\] n (\d+) x{40}")
DONE_LINE = re.compile(TS + r" \[flood\] flood done in [\d.]+ s")
MARKER = re.compile(TS + r" \[promenade\] … ([\d,]+) lines? of flood not shown here "
                    r"\(terminal too slow\); see promenade logs flood")
QUIET = """
    import sys, time
    for i in range(40):
        print(f"quiet {i}", flush=True)
        time.sleep(0.05)
    time.sleep(600)
"""
QUIET_LINE = re.compile(TS + r" \[quiet\] quiet (\d+)")
MESSAGE = re.compile(TS + r" \[promenade\] \S.*")


class PipeReader:
    """Reads the manager's stdout once `start` is called, until EOF."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _read(self) -> None:
        while chunk := os.read(self.fd, 65536):
            self.data += chunk


def check_terminal_text(text: str) -> tuple[int, int]:
    """Every line whole; each gap in the flood's numbers stood for by markers whose
    counts add up to it exactly. Returns (lines shown, lines said skipped)."""
    shown = skipped = 0
    expected = 0           # the next flood number the terminal should show
    since_last = 0         # skipped lines announced since the last flood line shown
    for line in text.splitlines():
        if m := FLOOD_LINE.fullmatch(line):
            number = int(m.group(1))
            assert number - expected == since_last, (
                f"line {number} after {expected - 1}: markers said {since_last} skipped")
            expected, since_last = number + 1, 0
            shown += 1
        elif DONE_LINE.fullmatch(line):
            assert LINES - expected == since_last, (expected, since_last)
            expected, since_last = LINES + 1, 0
            shown += 1
        elif m := MARKER.fullmatch(line):
            count = int(m.group(1).replace(",", ""))
            since_last += count
            skipped += count
        elif QUIET_LINE.fullmatch(line):
            continue
        else:
            assert MESSAGE.fullmatch(line), f"a broken or unknown line: {line!r}"
    assert LINES + 1 - expected == since_last, "the skipped tail has no marker"
    return shown, skipped


def finished(status: dict[str, Any]) -> dict[str, Any] | None:
    return status if status["completed"] or status["status"] == "failed" else None


def run_unread(tmp_path: Path, quiet: bool) -> tuple[Manager, str]:
    """The flood (and a quiet service) while the manager's stdout is a pipe nobody
    reads; then the pipe is read to the manager's exit. Returns the terminal's text."""
    write_script(tmp_path, "flood.py", FLOOD)
    write_script(tmp_path, "quiet.py", QUIET)
    extra = f"\n          quiet: {{command: {PY} quiet.py}}" if quiet else ""
    m = Manager(tmp_path, f"""
        manager: {{hosts_management: disabled}}
        services:
          flood: {{command: {PY} flood.py {LINES}, tty: false, restart_policy: never}}{extra}
    """)
    read_end, write_end = os.pipe()
    m.proc = subprocess.Popen([*PROMENADE, "start", "--no-ui", "-c", str(m.path)],
                              stdin=subprocess.DEVNULL, stdout=write_end,
                              stderr=subprocess.STDOUT, env=m.env, start_new_session=True)
    os.close(write_end)
    reader = PipeReader(read_end)
    try:
        started = time.monotonic()
        wait_for(m.info, 30, "the manager to answer")
        # grown from 64 KiB, so that a reader that keeps up is never outpaced
        assert fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) == 1024 * 1024
        status = wait_for(lambda: finished(m.status("flood")), BOUND, "the flood to finish")
        elapsed = time.monotonic() - started
        assert status["completed"] and status["last_exit_code"] == 0, status
        assert elapsed < BOUND, elapsed
        buffered = m.lines("flood")
        assert buffered[-1].startswith("flood done in"), buffered[-3:]
        assert buffered[-2] == f"n {LINES - 1} {'x' * 40}"
        if quiet:
            wait_for(lambda: "quiet 39" in m.lines("quiet"), 20, "the quiet service's lines")

        reader.start()      # the terminal reads again: what it had, the marker, the rest
        m.signal(signal.SIGTERM)
        assert m.wait_exit(30) == 0
        reader.thread.join(10)
        return m, reader.data.decode()
    finally:
        m.cleanup()
        if reader.thread.is_alive():
            reader.thread.join(5)
        with contextlib.suppress(OSError):
            os.close(read_end)


def test_a_flood_finishes_at_full_speed_while_the_terminal_is_not_read(
        tmp_path: Path) -> None:
    _m, text = run_unread(tmp_path, quiet=False)
    shown, skipped = check_terminal_text(text)
    assert skipped > 0, "nothing was skipped: was the pipe read after all?"
    assert shown + skipped == LINES + 1
    assert "all services stopped" in text, text[-500:]


def test_a_quiet_service_s_lines_are_not_skipped_for_another_s_flood(
        tmp_path: Path) -> None:
    """Only the service that fills the queue is skipped: the quiet one's few lines are
    all shown, in order, while the flood's skipped runs are counted exactly."""
    _m, text = run_unread(tmp_path, quiet=True)
    shown, skipped = check_terminal_text(text)
    assert skipped > 0 and shown + skipped == LINES + 1
    quiet = [int(m.group(1)) for line in text.splitlines()
             if (m := QUIET_LINE.fullmatch(line))]
    assert quiet == list(range(40)), quiet
