"""Real terminals for tests: `PtyTerminal`, a pty a manager runs on as its
controlling terminal (keys typed, output collected by a thread); `Terminal`, a command
on a fresh pty that is its controlling terminal (so it gets SIGWINCH when the test
resizes it), with its screen read back and its exit awaited."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Sequence

from tests.support.waits import wait_for

#: `sh` opens the pty anew (a session leader's first tty becomes its controlling one),
#: then becomes the command.
_CTTY = ': </proc/self/fd/0; exec "$@"'


#: Runs the rest of argv as `python -m promenade_cli ...` in a new session whose
#: controlling terminal (and stdin, stdout, stderr) is the pty slave given as argv[1]:
#: the manager is then the terminal's foreground process group, as under a shell.
#: argv[2], unless "-", is a file to send stdout to instead (`promenade start > file`).
ON_TTY = ("import os, sys; os.login_tty(int(sys.argv[1])); "
          "sys.argv[2] == '-' or os.dup2(os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT), 1); "
          "os.execv(sys.executable, [sys.executable, '-m', 'promenade_cli', *sys.argv[3:]])")


class PtyTerminal:
    """The master side: what the manager writes is collected by a thread; `type` sends
    keys as a user would."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def command(self, *args: str, stdout: str = "-") -> list[str]:
        """The argv that runs `promenade ARGS` on this terminal (pass_fds=[slave]);
        `stdout`: a file for its standard output instead."""
        return [sys.executable, "-c", ON_TTY, str(self.slave), stdout, *args]

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every holder of the slave closed it
                return
            if not chunk:
                return
            with self._lock:
                self.data += chunk

    def text(self) -> str:
        with self._lock:
            return bytes(self.data).decode("utf-8", "replace").replace("\r\n", "\n")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.slave)
        self._thread.join(5)
        with contextlib.suppress(OSError):
            os.close(self.master)


class Terminal:
    """`argv` on a pty of `rows` x `cols`; `screen` is everything it wrote so far."""

    def __init__(self, argv: Sequence[str], env: dict[str, str],
                 rows: int = 24, cols: int = 80) -> None:
        self.master, self.slave = pty.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen(["/bin/sh", "-c", _CTTY, "sh", *argv],
                                     stdin=self.slave, stdout=self.slave, stderr=self.slave,
                                     env=env, start_new_session=True, close_fds=True)
        os.set_blocking(self.master, False)
        self.screen = b""

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def read(self) -> bytes:
        """Take what the program wrote since the last read into `screen`."""
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except (BlockingIOError, OSError):
                return self.screen
            if not chunk:
                return self.screen
            self.screen += chunk

    def wait_screen(self, text: bytes, timeout: float = 10.0, after: int = 0) -> float:
        """Wait until `text` is on the screen past offset `after`; returns when it came
        (time.monotonic). Reports the screen's end when it never does."""
        try:
            wait_for(lambda: text in self.read()[after:], timeout, f"{text!r} on the screen",
                     interval=0.01)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; screen ends with {self.screen[-600:]!r}") from None
        return time.monotonic()

    def attrs(self) -> list[object]:
        """The pty's terminal attributes now (what the program left them as)."""
        return termios.tcgetattr(self.slave)

    def wait_exit(self, timeout: float = 10.0) -> int:
        code = self.proc.wait(timeout)
        self.read()
        return code

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
