"""Every service has an open stdin: watchers that exit at EOF on stdin keep running.

stdin used to be /dev/null, so `cat`, `tailwindcss -w` or `esbuild --watch` read EOF at
once and exited 0 (`stopped`). Now it is the service's pty with `tty: true`, otherwise a
pipe whose write end the manager holds until the service ends.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from pathlib import Path

import gevent
import pytest
from gevent.socket import wait_read

from promenade_core.supervise.osproc import ProcessOps
from tests.support import wait_for, write_script

pytestmark = pytest.mark.timeout(60)

#: The number /proc/PID/syscall shows for read(2).
READ = {"x86_64": "0", "aarch64": "63"}.get(platform.machine())

READER = """
    import os, sys
    print("tty" if os.isatty(0) else "pipe", flush=True)
    sys.stdin.buffer.read()
    print("eof", flush=True)
"""


def _blocked_reading_stdin(pid: int) -> bool:
    """The process (or its only child: `sh -c cat` may fork) sits in read(0, ...)."""
    for candidate in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{candidate}/syscall").read_text().split()
        except OSError:
            continue
        if fields[:2] == [READ, "0x0"]:
            return True
    return False


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@pytest.mark.skipif(READ is None, reason="read(2)'s number on this machine is not known")
@pytest.mark.parametrize("tty", [False, True])
def test_service_reading_stdin_keeps_running_instead_of_exiting_at_eof(
        manager, tmp_path: Path, tty: bool) -> None:
    """`cat` and a script reading stdin to EOF exited 0 at once: stdin was /dev/null."""
    write_script(tmp_path, "reader.py", READER)
    flag = "true" if tty else "false"
    m = manager(f"""
        manager: {{hosts_management: disabled}}
        services:
          cat: {{command: cat, tty: {flag}}}
          reader: {{command: {sys.executable} reader.py, tty: {flag}}}
    """)
    m.wait_lines("reader", ["tty" if tty else "pipe"])
    for name in ("cat", "reader"):
        pid: int = m.wait_status(name, "running")["pid"]
        wait_for(functools.partial(_blocked_reading_stdin, pid), timeout=20,
                 what=f"{name} to wait on its stdin")
        assert m.status(name)["status"] == "running"
        # Nobody else holds the service's stdin: not the other service, not the reaper.
        assert m.proc is not None
        assert _holders(pid) <= {pid, *_children(pid), m.proc.pid}
    assert m.lines("reader") == ["tty" if tty else "pipe"]


def _holders(pid: int) -> set[int]:
    """Processes with a descriptor on the pipe or terminal that is `pid`'s stdin."""
    target = os.readlink(f"/proc/{pid}/fd/0")
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{name}/fd/{fd}") == target:
                    found.add(int(name))
                    break
            except OSError:
                continue
    return found


@pytest.mark.parametrize("tty", [False, True])
def test_stdin_write_end_reaches_the_service_and_closing_it_ends_cat(
        tmp_path: Path, tty: bool) -> None:
    """The manager's end of stdin (kept for `promenade attach`) reaches the service, and
    closing it is the EOF that ends a stdin reader cleanly."""
    spawned = ProcessOps().spawn("exec cat", tmp_path, dict(os.environ), tty)
    try:
        os.write(spawned.stdin, b"hello\n")
        # a pty echoes what is typed (a terminal's cooked mode), then cat writes it
        want = b"hello\n" * (2 if tty else 1)
        got = b""
        with gevent.Timeout(20, AssertionError(f"cat echoed {got!r}, not hello")):
            while want not in got:
                wait_read(spawned.stdout)
                try:
                    got += os.read(spawned.stdout, 4096)
                except BlockingIOError:
                    continue
        # Our end of stdin; with a pty it is the master, also our end of stdout, and
        # the slave is hung up once it is closed.
        assert (spawned.stdin == spawned.stdout) is tty
        os.close(spawned.stdin)
        if tty:
            spawned.stdout = -1
        spawned.stdin = -1
        with gevent.Timeout(20, AssertionError("cat did not exit at EOF")):
            code = spawned.wait()
        # A hung-up pty reads as EOF or as EIO (cat then exits 1), depending on timing.
        assert code in ((0, 1) if tty else (0,))
    finally:
        if spawned.popen.returncode is None:
            os.kill(spawned.pid, 9)
            spawned.wait()
        spawned.close()
