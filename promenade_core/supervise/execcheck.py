"""One run of an exec ready_check's command: spawned, waited for, killed, judged.

`/bin/sh -c COMMAND` runs in the service's directory and environment, in a process
group of its own. Its stdout is discarded and its stderr read only for its last line
(what `-v` shows of a failed check): neither goes into the service's log, where a check
every 2 s would bury the service's own lines. The standard library's Popen forks with
vfork (about 1 ms; gevent's copies the whole manager, about 12 ms) and the event loop
watches the exit (`osproc`), so a check never blocks the supervisor. The whole group
is SIGKILLed when the command has exited (what it left in the background goes with
it), when it is still running at its timeout, and when the run is abandoned (the
service stopped, the manager shuts down): nothing a check starts outlives it.
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

from promenade_core.logformat import strip_ansi
from promenade_core.masking import mask_command
from promenade_core.supervise.health import ProbeResult
from promenade_core.supervise.osproc import _watch_exit

#: Bytes of stderr kept, from its end: enough for a last line.
STDERR_KEPT = 4096
#: Characters of a command or a stderr line shown in a check's detail.
SHOWN_MAX = 120
#: After the command exits and its group is killed, how long its stderr may take to
#: reach EOF (only a process that left the group can hold it open longer).
DRAIN_GRACE = 0.5


def shorten(text: str, limit: int = SHOWN_MAX) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def shown(command: str) -> str:
    """The command as a detail quotes it: inline secrets masked, kept short."""
    return repr(shorten(mask_command(command)))


def last_line(data: bytes) -> str:
    """The last non-blank line of what the command wrote to stderr, safe to print
    (escape codes and control characters dropped, inline secrets masked, shortened)."""
    for raw in reversed(data.decode(errors="replace").splitlines()):
        text = strip_ansi(raw).strip()
        if text:
            return shorten(mask_command(text))
    return ""


def exit_detail(command: str, code: int, stderr: str) -> str:
    """What a finished command says about the check (`-v`, a restart's reason)."""
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    return f"exec {shown(command)}: {how}" + (f": {stderr}" if stderr and code else "")


def spawn_failure(command: str, cwd: Path, exc: Exception) -> ProbeResult:
    """A command that could not be started (the folder is gone, out of processes or
    descriptors, a NUL byte in the environment): a failed check, never an exception."""
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ProbeResult(False, f"exec {shown(command)}: could not run /bin/sh in {cwd}: "
                              f"{detail}")


class CommandRun:
    """One spawned check command. `close` ends it at any point: killed, group and all.

    Nothing here yields but `result`'s wait: stderr is read by an event-loop watcher
    (no greenlet), so `close` from another greenlet is one uninterruptible step.
    """

    def __init__(self, command: str, cwd: Path, env: Mapping[str, str]) -> None:
        """Spawn it; raises OSError or ValueError when it cannot be (`spawn_failure`)."""
        self.command = command
        read_end, write_end = os.pipe()   # both non-inheritable
        try:
            self._popen = subprocess.Popen(
                ["/bin/sh", "-c", command], cwd=str(cwd), env=dict(env),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=write_end,
                start_new_session=True, close_fds=True)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        self.pid = self._popen.pid
        self._exited: gevent.event.AsyncResult = _watch_exit(self.pid)
        os.set_blocking(read_end, False)
        self._stderr_fd = read_end
        self._stderr = bytearray()
        self._eof = gevent.event.Event()
        self._reader = gevent.get_hub().loop.io(read_end, 1)   # 1: readable
        self._reader.start(self._on_stderr)
        self._closed = False

    def result(self, timeout: float) -> ProbeResult:
        """Wait up to `timeout` seconds for the exit; healthy on code 0."""
        code = self._exited.wait(timeout)
        if not self._exited.ready():
            self.close()
            return ProbeResult(False, f"exec {shown(self.command)}: still running after "
                                      f"{timeout:g} s; killed")
        self._popen.returncode = code   # reaped by the event loop, not by Popen
        self._kill_group()
        self._eof.wait(DRAIN_GRACE)
        stderr = last_line(bytes(self._stderr))
        self.close()
        return ProbeResult(code == 0, exit_detail(self.command, code, stderr))

    def close(self) -> None:
        """Kill what is left of the command's group and stop reading its stderr.
        Idempotent, and safe from another greenlet while `result` waits."""
        if self._closed:
            return
        self._closed = True
        self._kill_group()
        if self._popen.returncode is None:
            # Killed: the loop's watcher reaps it. Popen must neither warn about a
            # running child when collected nor waitpid a number that may be reused.
            self._popen.returncode = -signal.SIGKILL
        self._reader.stop()
        os.close(self._stderr_fd)

    def _kill_group(self) -> None:
        # ESRCH: all gone; EPERM: a setuid program we may not signal (it ends by itself)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def _on_stderr(self) -> None:
        """The event loop's callback while stderr is readable: keep its end. One read
        per call, so a flood of stderr takes its turn with everything else."""
        try:
            data = os.read(self._stderr_fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._reader.stop()
            self._eof.set()
            return
        self._stderr += data
        del self._stderr[:-STDERR_KEPT]
