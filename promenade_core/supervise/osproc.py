"""The one seam between the supervisor and the operating system.

Spawning a service, signalling its process tree and watching its output go through
`ProcessOps`, so tests can swap in a subclass that fails with a chosen errno, while
integration tests use this real one.

A service's tree is its process group plus whatever left the group (`setsid`): on Linux
with a cgroup we may create, the service run's cgroup (`cgroups`); otherwise what the
descendant tracker saw (`descendants`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pty
import shlex
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from gevent import subprocess as green_subprocess

from promenade_core.errors import PromenadeError
from promenade_core.supervise import cgroups, ports
from promenade_core.supervise.cgroups import CgroupRoot
from promenade_core.supervise.children import SideCommand, watch_exit
from promenade_core.supervise.descendants import (
    SCAN_INTERVAL,
    SIGNAL_SCAN_AGE,
    STRAYS,
    Descendants,
)

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
    #: The manager's end of the service's stdin, non-blocking, never inherited: the pty
    #: master (the same descriptor as `stdout`) with `tty`, else a pipe's write end. Held
    #: open for the service's life, so tools that exit at EOF on stdin keep running.
    stdin: int = -1
    #: the run's cgroup, when the service has one
    cgroup: Path | None = None

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    def close(self) -> None:
        """Close our ends of the streams (stdin included: the service sees EOF)."""
        for fd in {self.stdout, self.stderr, self.stdin} - {-1}:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.stdin = -1   # never written to again: the number may be reused

    def wait(self) -> int:
        """Wait (cooperatively) for the exit; the code, or minus the killing signal."""
        code = int(self.exited.get())
        self.popen.returncode = code   # reaped by the event loop, not by Popen
        return code


@dataclass(frozen=True)
class Finished:
    """How a side command (a stop_command) ended."""

    code: int | None        # None: it was killed at its timeout
    lines: list[str]        # its last output lines, both streams, at most OUTPUT_LINES


#: What a side command may leave in a service's log.
OUTPUT_LINES = 20


def _raw_pty() -> tuple[int, int]:
    """A pty pair whose slave passes output bytes as they are (no `\\n` -> `\\r\\n`, so
    log lines carry no `\\r`), while input is a terminal's default cooked mode (line
    editing, echo, ISIG: the interrupt keys are not passed on as bytes), for
    `promenade attach`; nothing is typed unless someone attaches.

    NOFLSH: the line discipline handles a typed Ctrl-C later, in a kernel worker, and
    by default then flushes the output queue: what the service wrote in answer to the
    SIGINT the manager sent at once ("KeyboardInterrupt", pdb's prompt) was lost when
    that worker ran late."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST
    attrs[3] |= termios.ECHO | termios.ICANON | termios.ISIG | termios.NOFLSH
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", PTY_ROWS, PTY_COLUMNS, 0, 0))
    return master, slave


#: What a service on a pty runs before its command: its `sh` ignores SIGINT for itself.
#: Ctrl-C typed by `promenade attach` is SIGINT for the service's whole group, as in a
#: terminal (supervise/keyboard.py), and dash dies of it at once: that ended a service
#: whose program handles Ctrl-C (pdb, a REPL). With the trap it waits for its program
#: and exits with its status, as an interactive shell would.
#:
#: The pty is deliberately not made the service's controlling terminal (the kernel
#: would then send the signals itself): the `sh` would become its controlling process,
#: and when a stop signal ends that `sh` first, the kernel hangs up the group (SIGHUP),
#: cutting short a program still handling its SIGTERM; keeping `sh` alive instead makes
#: dash print "Terminated" into the service's log at every stop.
TTY_PREFIX = "trap : INT; eval "


def terminal_command(command: str) -> str:
    """`command` as a service on a pty runs it (TTY_PREFIX)."""
    return TTY_PREFIX + shlex.quote(command)


#: What a service's output pipe grows to once a read finds it full (see grow_pipe).
BUSY_PIPE_SIZE = 1024 * 1024


def grow_pipe(fd: int) -> None:
    """Give a busy output pipe room for 1 MiB (tried once per stream by its reader).

    With the default 64 KiB a flooding service blocks each time the manager has not
    read for a moment, and the two take turns instead of working at once. Only a
    stream that fills its pipe grows: Linux counts pipe memory per user
    (fs/pipe-user-pages-soft, 64 MiB), and past it new pipes get a single page, so
    growing every service's pipes up front would starve a project of 200 services.
    A pty (or a refusal) leaves it as it is.
    """
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, BUSY_PIPE_SIZE)


def _output_pair(tty: bool) -> tuple[int, int]:
    if tty:
        with contextlib.suppress(OSError):
            return _raw_pty()
    return os.pipe()


def _input_pair(out_r: int, out_w: int) -> tuple[int, int]:
    """(service end, our end) of stdin: the stdout pty when there is one, else a pipe.

    A pty slave as stdin makes `isatty(0)` true, as in a terminal; both pipe ends are
    non-inheritable (O_CLOEXEC), so no other child ever holds our end.
    """
    if os.isatty(out_w):
        return out_w, out_r
    return os.pipe()


class ProcessOps:
    """Real process operations.

    `cgroups` is the manager's cgroup folder when it has one; without it, `tracker`
    follows the processes that leave a service's group. Without either (a bare
    ProcessOps, as in unit tests), a service is its process group.
    """

    def __init__(self, cgroups: CgroupRoot | None = None,
                 tracker: Descendants | None = None) -> None:
        self.cgroups = cgroups
        self.tracker = tracker
        self._live: dict[int, Spawned] = {}
        self._scanner: gevent.Greenlet | None = None

    def spawn(self, command: str, cwd: Path, env: dict[str, str], tty: bool) -> Spawned:
        """Start `/bin/sh -c command` in a new session (its own process group).

        Each stream gets its own pty when `tty` is set, so a service that colours its
        output only on a terminal still does, and stdout and stderr stay apart; stdin is
        the stdout pty, or a pipe. With cgroups, the run's cgroup is named for the
        environment's PROMENADE_SERVICE.
        """
        if not cwd.is_dir():
            raise PromenadeError(f"directory {cwd} does not exist")
        opened: list[int] = []
        try:
            out_r, out_w = _output_pair(tty)
            opened += [out_r, out_w]
            err_r, err_w = _output_pair(tty)
            opened += [err_r, err_w]
            in_r, in_w = _input_pair(out_r, out_w)
            opened += [in_r, in_w]
            folder = self._new_cgroup(env.get(ENV_SERVICE, "service"))
        except (OSError, PromenadeError):  # out of descriptors, or no cgroup: give all back
            for fd in set(opened):
                os.close(fd)
            raise
        if os.isatty(out_w):
            command = terminal_command(command)
        argv = ["/bin/sh", "-c", command]
        if folder is not None:
            argv = ["/bin/sh", "-c", cgroups.JOIN, "promenade-join", str(folder), command]
        try:
            # The standard library's Popen forks with vfork (about 1 ms); gevent's
            # copies the whole manager (about 12 ms). Exits are watched by the loop.
            popen = subprocess.Popen(
                argv,
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                cwd=str(cwd),
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            for fd in {out_r, err_r, in_w}:
                os.close(fd)
            if folder is not None:
                cgroups.remove(folder)
            raise PromenadeError(f"could not start {command!r}: {exc.strerror}") from exc
        finally:
            for fd in {out_w, err_w, in_r}:
                os.close(fd)
        exited = watch_exit(popen.pid)
        for fd in (out_r, err_r, in_w):
            os.set_blocking(fd, False)
        spawned = Spawned(popen, out_r, err_r, exited, stdin=in_w, cgroup=folder)
        self._live[spawned.pid] = spawned
        if self.tracker is not None and folder is None:
            self.tracker.add(spawned.pid, env.get(ENV_SERVICE, "?"))
            if self._scanner is None:
                self._scanner = gevent.spawn(self._scan_loop, self.tracker)
        return spawned

    def _new_cgroup(self, name: str) -> Path | None:
        if self.cgroups is None:
            return None
        try:
            return self.cgroups.create(name)
        except OSError as exc:
            raise PromenadeError(
                f"could not create a cgroup in {self.cgroups.path}: {exc.strerror}") from exc

    def run(self, command: str, cwd: Path, env: dict[str, str], timeout: float,
            track: Callable[[int, bool], None]) -> Finished:
        """Run a side command (`children.SideCommand`) to its end or its timeout, its
        output kept. `track` tells the reaper of its group, so a manager killed
        meanwhile orphans nothing."""
        run = SideCommand(command, cwd, env, keep_stdout=True)
        track(run.pid, True)
        self.own_child(run.pid, True)
        try:
            code = run.wait(timeout)
            text = run.output.decode("utf-8", "replace").splitlines()
        finally:
            run.close()
            track(run.pid, False)
            self.own_child(run.pid, False)
        return Finished(code, text[-OUTPUT_LINES:])

    def own_child(self, pid: int, alive: bool) -> None:
        """A child the manager runs for itself (an exec ready_check's command) started or
        ended. While it runs the descendant tracker must not take it for a service's
        orphan: it would follow it as a process that left the service's group."""
        if self.tracker is not None:
            if alive:
                self.tracker.ignore(pid)
            else:
                self.tracker.unignore(pid)

    @staticmethod
    def _scan_loop(tracker: Descendants) -> None:
        """Follow escaping processes while services run (the fallback only)."""
        while True:
            tracker.refresh()
            gevent.sleep(SCAN_INTERVAL)

    def signal_tree(self, spawned: Spawned, sig: int) -> bool:
        """Signal the service's group and every process of it that left the group;
        False when none was left."""
        hit = self.signal_group(spawned.pid, sig)
        if spawned.cgroup is not None:
            if sig == signal.SIGKILL:
                cgroups.kill(spawned.cgroup)
                return hit or cgroups.populated(spawned.cgroup)
            return cgroups.signal_all(spawned.cgroup, sig) or hit
        if self.tracker is not None:
            # what escaped since the last scan; one scan serves a whole shutdown's signals
            self.tracker.refresh(max_age=SIGNAL_SCAN_AGE)
            hit = self.tracker.kill(spawned.pid, sig) or hit
        return hit

    def tree_alive(self, spawned: Spawned) -> bool:
        if self.group_alive(spawned.pid):
            return True
        if spawned.cgroup is not None:
            return cgroups.populated(spawned.cgroup)
        if self.tracker is None:
            return False
        # Fresh enough to see a child that left the group just before the main exited.
        self.tracker.refresh(max_age=0.2)
        return self.tracker.alive(spawned.pid)

    def release(self, spawned: Spawned) -> None:
        """After the tree is gone: remove its cgroup, forget what was tracked."""
        self._live.pop(spawned.pid, None)
        if spawned.cgroup is not None:
            cgroups.kill(spawned.cgroup)
            for _ in range(20):   # the last processes may still be leaving it
                if cgroups.remove(spawned.cgroup):
                    break
                gevent.sleep(0.05)
        if self.tracker is not None:
            self.tracker.remove(spawned.pid)

    def kill_all(self) -> None:
        """SIGKILL every service tree now (a second Ctrl-C)."""
        for spawned in list(self._live.values()):
            self.signal_tree(spawned, signal.SIGKILL)

    def close(self, grace: float = 1.0) -> None:
        """At shutdown, after every service stopped: end what is left.

        With cgroups that is removing the folders; without, it is the orphans nobody
        could attribute to a service (SIGTERM, `grace`, SIGKILL).
        """
        if self._scanner is not None:
            self._scanner.kill()
            self._scanner = None
        if self.cgroups is not None:
            self.cgroups.close()
        if self.tracker is None:
            return
        self.tracker.refresh()
        if self.tracker.kill(STRAYS, signal.SIGTERM):
            deadline = time.monotonic() + grace
            while self.tracker.alive(STRAYS) and time.monotonic() < deadline:
                gevent.sleep(0.05)
            self.tracker.kill(STRAYS, signal.SIGKILL)
        self.tracker.remove(STRAYS)

    def signal_group(self, pgid: int, sig: int) -> bool:
        """Signal a whole process group; False when it is already gone."""
        try:
            self._killpg(pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError as exc:
            if exc.errno == errno.EPERM:
                return True
            raise
        return True

    def group_alive(self, pgid: int) -> bool:
        return self.signal_group(pgid, 0)

    def _killpg(self, pgid: int, sig: int) -> None:
        """The system call itself: unit tests replace it to fail with a chosen errno."""
        os.killpg(pgid, sig)


def become_subreaper() -> bool:
    """Make orphaned descendants of services our children (Linux), so they are reaped
    at once instead of lingering as zombies that still count as group members."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    return libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0


def start_reaper(cgroup_root: Path | None = None) -> tuple[green_subprocess.Popen, int]:
    """Start the reaper; returns it and the write end of its pipe (ours alone).

    Given the manager's cgroup folder, the reaper also empties and removes every
    cgroup in it."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, False)
    proc = green_subprocess.Popen(
        ["/bin/sh", str(REAPER), *([str(cgroup_root)] if cgroup_root else [])],
        stdin=read_end,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    os.close(read_end)
    return proc, write_end


def _environ(pid: str, needle: bytes = b"") -> dict[str, str]:
    """A process's environment; {} when unreadable or when `needle` is not in it."""
    try:
        raw = (ports.PROC / pid / "environ").read_bytes()
    except OSError:
        return {}
    if needle not in raw:
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
    # Most processes are not ours: look for the marker's bytes before parsing anything
    # (a dict of every process's environment cost 20 ms at each start on a busy machine).
    marker = f"{ENV_INSTANCE}={instance}".encode()
    with contextlib.suppress(OSError):
        for entry in ports.PROC.iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            env = _environ(entry.name, marker)
            if env.get(ENV_INSTANCE) == instance:
                pid = int(entry.name)
                found.append((pid, env.get(ENV_SERVICE, "?"), ports.command_line(pid)))
    return found


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
