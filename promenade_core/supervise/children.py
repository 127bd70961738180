"""The manager's own children: watching a child's exit from the event loop, and the
short side commands it runs for a service (an exec ready_check, a `stop_command`).

A side command is `/bin/sh -c COMMAND` in the service's folder and environment, in a
process group of its own. The standard library's Popen forks with vfork (about 1 ms;
gevent's copies the whole manager, about 12 ms) and the event loop watches the exit,
so waiting for one never blocks the supervisor. The end of its output is kept (read by
an event-loop watcher, no greenlet). The whole group is SIGKILLed when the command has
exited (what it left in the background goes with it), when it is still running at its
timeout, and when it is abandoned (`close`): nothing it starts outlives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

import gevent
import gevent.event

#: Bytes of output kept, from its end.
OUTPUT_KEPT = 16384
#: After the command exits and its group is killed, how long its output may take to
#: reach EOF (only a process that left the group can hold it open longer).
DRAIN_GRACE = 0.5


def watch_exit(pid: int) -> gevent.event.AsyncResult:
    """An event-loop child watcher for `pid`, started before the loop runs again, so
    an exit that comes at once is not missed. Its value: the exit code, or minus the
    signal number that killed it."""
    result = gevent.event.AsyncResult()
    watcher = gevent.get_hub().loop.child(pid, False)

    def exited() -> None:
        watcher.stop()
        result.set(os.waitstatus_to_exitcode(watcher.rstatus))

    watcher.start(exited)
    return result


class SideCommand:
    """One spawned side command. `close` ends it at any point: killed, group and all.

    Nothing here yields but `wait`: the output is read by an event-loop watcher, so
    `close` from another greenlet is one uninterruptible step.
    """

    def __init__(self, command: str, cwd: Path, env: Mapping[str, str],
                 keep_stdout: bool) -> None:
        """Spawn it; raises OSError or ValueError when it cannot be. Its stderr is
        kept, and its stdout too with `keep_stdout` (else discarded)."""
        self.command = command
        read_end, write_end = os.pipe()   # both non-inheritable
        try:
            self._popen = subprocess.Popen(
                ["/bin/sh", "-c", command], cwd=str(cwd), env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=write_end if keep_stdout else subprocess.DEVNULL, stderr=write_end,
                start_new_session=True, close_fds=True)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self.pid = self._popen.pid
        self._exited = watch_exit(self.pid)
        os.set_blocking(read_end, False)
        self._fd = read_end
        self._output = bytearray()
        self._eof = gevent.event.Event()
        self._reader = gevent.get_hub().loop.io(read_end, 1)   # 1: readable
        self._reader.start(self._on_output)
        self._closed = False

    @property
    def output(self) -> bytes:
        """The end of what it wrote (OUTPUT_KEPT bytes at most)."""
        return bytes(self._output)

    def wait(self, timeout: float) -> int | None:
        """Its exit code (minus the signal number if killed), after up to `timeout`
        seconds; None when it was still running then (it is killed). Its output is
        then complete, unless a process that left its group still holds it open."""
        code = self._exited.wait(timeout)
        if not self._exited.ready():
            self.close()
            return None
        self._popen.returncode = code   # reaped by the event loop, not by Popen
        self._kill_group()
        self._eof.wait(DRAIN_GRACE)
        return int(code)

    def close(self) -> None:
        """Kill what is left of the command's group and stop reading its output.
        Idempotent, and safe from another greenlet while `wait` waits."""
        if self._closed:
            return
        self._closed = True
        self._kill_group()
        if self._popen.returncode is None:
            # Killed: the loop's watcher reaps it. Popen must neither warn about a
            # running child when collected nor waitpid a number that may be reused.
            self._popen.returncode = -signal.SIGKILL
        self._reader.stop()
        os.close(self._fd)

    def _kill_group(self) -> None:
        # ESRCH: all gone; EPERM: a setuid program we may not signal (it ends by itself)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def _on_output(self) -> None:
        """The event loop's callback while the output is readable: keep its end. One
        read per call, so a flood takes its turn with everything else."""
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._reader.stop()
            self._eof.set()
            return
        self._output += data
        del self._output[:-OUTPUT_KEPT]
