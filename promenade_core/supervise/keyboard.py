"""Typing into a service and sizing its terminal: the I/O behind `input` and `resize`.

A service's pty is not its controlling terminal (osproc.TTY_PREFIX says why), so the
kernel sends no signal for what is typed or for a resize; this module does what the
terminal would: with the pty's ISIG flag set, its interrupt character (Ctrl-C) is
followed by SIGINT and its quit character (Ctrl-\\) by SIGQUIT to the service's process
group, and a new window size by SIGWINCH. The characters themselves are written as
typed: the line discipline drops them from the input and echoes `^C`, as a terminal
does. A program that turns ISIG off (an editor) gets them as plain bytes, no signal.
Ctrl-Z sends nothing: a stopped service would have no shell to continue it.

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
import signal
import struct
import termios
import time
from collections.abc import Callable, Sequence
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


def _key(cc: Sequence[Any], index: int) -> int | None:
    """A control character of the attributes' `cc` (bytes or int), None when disabled."""
    value = cc[index]
    code = value[0] if isinstance(value, bytes) and value else value
    return code if isinstance(code, int) and code != 0 else None


def input_steps(data: bytes, attrs: list[Any] | None) -> list[bytes | int]:
    """What typing `data` does, in order: byte strings to write, and after each
    interrupt or quit character (when the terminal's ISIG is on) the signal number to
    send. `attrs` are the pty's termios attributes, None for a pipe."""
    keys: dict[int, int] = {}
    if attrs is not None and attrs[3] & termios.ISIG:
        for index, sig in ((termios.VINTR, signal.SIGINT), (termios.VQUIT, signal.SIGQUIT)):
            code = _key(attrs[6], index)
            if code is not None:
                keys[code] = int(sig)
    steps: list[bytes | int] = []
    start = 0
    for i, byte in enumerate(data):
        if byte in keys:
            steps += [data[start:i + 1], keys[byte]]
            start = i + 1
    if start < len(data):
        steps.append(data[start:])
    return steps


def terminal_attrs(fd: int) -> list[Any] | None:
    """The attributes of the pty whose master is `fd` (Linux answers for the slave), or
    None when `fd` is no terminal."""
    try:
        return termios.tcgetattr(fd)
    except (termios.error, OSError):
        return None


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
    """TIOCSWINSZ on the pty master; the caller sends the SIGWINCH (module docstring)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
