"""The one seam between the supervisor and the operating system.

Spawning a service, signalling its process group and watching its output go through
`ProcessOps`, so tests can swap in a subclass that fails with a chosen errno, while
integration tests use this real one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from gevent import subprocess as green_subprocess

from promenade_core import ports
from promenade_core.errors import PromenadeError

REAPER = Path(__file__).with_name("reaper.sh")
ENV_INSTANCE = "PROMENADE_INSTANCE"
ENV_SERVICE = "PROMENADE_SERVICE"
#: A terminal size for services on a pty: wide enough that tools do not wrap early.
PTY_COLUMNS, PTY_ROWS = 160, 50


@dataclass
class Spawned:
    popen: subprocess.Popen[bytes]
    stdout: int     # read ends, non-blocking
    stderr: int
    exited: gevent.event.AsyncResult   # the exit code, minus the signal number if killed
    readers: list[Any] = field(default_factory=list)   # the greenlets draining both streams

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    def wait(self) -> int:
        """Wait (cooperatively) for the exit; the code, or minus the killing signal."""
        code = int(self.exited.get())
        self.popen.returncode = code   # reaped by the event loop, not by Popen
        return code


def _watch_exit(pid: int) -> gevent.event.AsyncResult:
    """An event-loop child watcher for `pid`, started before the loop runs again, so
    an exit that comes at once is not missed."""
    result = gevent.event.AsyncResult()
    watcher = gevent.get_hub().loop.child(pid, False)

    def exited() -> None:
        watcher.stop()
        result.set(os.waitstatus_to_exitcode(watcher.rstatus))

    watcher.start(exited)
    return result


def _raw_pty() -> tuple[int, int]:
    """A pty pair whose slave passes bytes as they are (no `\\n` -> `\\r\\n`, no echo)."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST
    attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", PTY_ROWS, PTY_COLUMNS, 0, 0))
    return master, slave


def _output_pair(tty: bool) -> tuple[int, int]:
    if tty:
        with contextlib.suppress(OSError):
            return _raw_pty()
    return os.pipe()


class ProcessOps:
    """Real process operations."""

    def spawn(self, command: str, cwd: Path, env: dict[str, str], tty: bool) -> Spawned:
        """Start `/bin/sh -c command` in a new session (its own process group).

        Each stream gets its own pty when `tty` is set, so a service that colours its
        output only on a terminal still does, and stdout and stderr stay apart.
        """
        if not cwd.is_dir():
            raise PromenadeError(f"directory {cwd} does not exist")
        out_r, out_w = _output_pair(tty)
        try:
            err_r, err_w = _output_pair(tty)
        except OSError:  # out of descriptors: give back the first pair
            os.close(out_r)
            os.close(out_w)
            raise
        try:
            # The standard library's Popen forks with vfork (about 1 ms); gevent's
            # copies the whole manager (about 12 ms). Exits are watched by the loop.
            popen = subprocess.Popen(
                ["/bin/sh", "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                cwd=str(cwd),
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            raise PromenadeError(f"could not start {command!r}: {exc.strerror}") from exc
        finally:
            os.close(out_w)
            os.close(err_w)
        exited = _watch_exit(popen.pid)
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        return Spawned(popen, out_r, err_r, exited)

    def signal_group(self, pgid: int, sig: int) -> bool:
        """Signal a whole process group; False when it is already gone."""
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError as exc:
            if exc.errno == errno.EPERM:
                return True
            raise
        return True

    def group_alive(self, pgid: int) -> bool:
        return self.signal_group(pgid, 0)


def become_subreaper() -> bool:
    """Make orphaned descendants of services our children (Linux), so they are reaped
    at once instead of lingering as zombies that still count as group members."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    return libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0


def start_reaper() -> tuple[green_subprocess.Popen, int]:
    """Start the reaper; returns it and the write end of its pipe (ours alone)."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, False)
    proc = green_subprocess.Popen(
        ["/bin/sh", str(REAPER)],
        stdin=read_end,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    os.close(read_end)
    return proc, write_end


def _environ(pid: str) -> dict[str, str]:
    try:
        raw = (ports.PROC / pid / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def find_leftovers(instance: str) -> list[tuple[int, str, str]]:
    """Processes an earlier run of this config left behind: (pid, service, command).

    Services carry PROMENADE_INSTANCE in their environment, which their children
    inherit, so a survivor of a crash is recognised without trusting a pid file.
    """
    found = []
    me = os.getpid()
    with contextlib.suppress(OSError):
        for entry in ports.PROC.iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            env = _environ(entry.name)
            if env.get(ENV_INSTANCE) == instance:
                pid = int(entry.name)
                found.append((pid, env.get(ENV_SERVICE, "?"), ports.command_line(pid)))
    return found


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
