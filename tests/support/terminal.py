"""A real terminal for CLI tests: a command on a fresh pty that is its controlling
terminal (so it gets SIGWINCH when the test resizes it), with its screen read back."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Sequence

from tests.support.waits import wait_for

#: `sh` opens the pty anew (a session leader's first tty becomes its controlling one),
#: then becomes the command.
_CTTY = ': </proc/self/fd/0; exec "$@"'


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
