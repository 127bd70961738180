"""Typing into a service and sizing its terminal: the I/O behind `input` and `resize`.

The descriptor is the manager's end of the service's stdin (its pty master with
`tty: true`, else a pipe), non-blocking and shared with the output reader. A slow
reader fills the pty's input queue (4 KiB on Linux when the service does not read), so
a write waits for room cooperatively, for at most WRITE_TIMEOUT, looking the
descriptor up again after every wait: the service may exit meanwhile and its number be
reused by another file.
"""

from __future__ import annotations

import base64
import binascii
import errno
import fcntl
import os
import struct
import termios
import time
from collections.abc import Callable
from typing import Any

import gevent

#: The largest input one request may carry (decoded).
MAX_INPUT = 64 * 1024
#: How long a write may wait for the service to read what came before.
WRITE_TIMEOUT = 2.0
#: Window sizes outside 1..MAX_SIDE rows or columns are refused.
MAX_SIDE = 2000
_RETRY = 0.01


class Unwritable(Exception):
    """The input could not (all) be written; `written` bytes were."""

    def __init__(self, message: str, written: int) -> None:
        super().__init__(message)
        self.written = written


def decode_input(value: Any) -> bytes:
    """The bytes of an `input` request's `data` (base64); ValueError says what is wrong."""
    if not isinstance(value, str):
        raise ValueError('"data" must be a base64 string')
    if len(value) > (MAX_INPUT * 4) // 3 + 4:
        raise ValueError(f'"data" is over {MAX_INPUT} bytes')
    try:
        data = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError('"data" is not valid base64') from None
    if len(data) > MAX_INPUT:
        raise ValueError(f'"data" is over {MAX_INPUT} bytes')
    return data


def window(rows: Any, cols: Any) -> tuple[int, int]:
    """A `resize` request's size, checked; ValueError otherwise."""
    for name, value in (("rows", rows), ("cols", cols)):
        if type(value) is not int or not 1 <= value <= MAX_SIDE:
            raise ValueError(f'"{name}" must be a whole number from 1 to {MAX_SIDE}')
    return rows, cols


def write_all(current: Callable[[], int | None], data: bytes,
              timeout: float = WRITE_TIMEOUT) -> int:
    """Write `data` to the descriptor `current()` gives (None: the process is gone).

    Returns the bytes written; raises Unwritable when the process went away or did not
    read within `timeout`.
    """
    written = 0
    deadline = time.monotonic() + timeout
    while written < len(data):
        fd = current()
        if fd is None:
            raise Unwritable("the service's process has ended", written)
        try:
            written += os.write(fd, data[written:])
            continue
        except BlockingIOError:
            pass
        except OSError as exc:   # EIO: its side of the pty is closed
            raise Unwritable(f"its stdin is closed ({errno.errorcode.get(exc.errno or 0, exc)})",
                             written) from None
        if time.monotonic() >= deadline:
            raise Unwritable(f"the service did not read its input within {timeout:g} s",
                             written)
        gevent.sleep(_RETRY)
    return written


def set_window(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ on the pty master: the kernel sends SIGWINCH to the service's
    foreground group (its controlling terminal is this pty, see osproc.TTY_PREFIX)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
