"""A pseudo-terminal for a manager that must believe it runs in a real one."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import sys
import threading

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
