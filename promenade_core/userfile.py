"""Reading a file the user named (the config, an env_file): safely, or with a reason.

Why not `path.read_bytes()`: a config replaced by a FIFO made it block the supervisor for
good (opening a FIFO for reading waits for a writer), `/dev/zero` never ends, a 3 MB file
is parsed for seconds, and a folder on the path that the user cannot enter raised
PermissionError out of `Path.is_file()` as a traceback. Here the target must be a regular
file under `MAX_BYTES`; it is opened with O_NONBLOCK (so even a FIFO swapped in between
the stat and the open cannot block) and checked again on the descriptor before reading.
Symlinks are followed on purpose: dotfile managers link configs into place; only what
they point at must be a regular file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

#: Far above any real promenade.yaml or .env (a few KB); small enough to parse in a few
#: seconds (in a worker thread) and to keep a mistyped path (a log, a database) from
#: being read whole.
MAX_BYTES = 4 * 1024 * 1024

_CHUNK = 1024 * 1024


class UnreadableFile(Exception):
    """Why a file cannot be used, worded to follow its name: `… does not exist`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_user_file(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `limit` bytes."""
    try:
        _check(os.stat(path), limit)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(os_reason(exc)) from None
    try:
        _check(os.fstat(fd), limit)  # what was opened, in case it was swapped meanwhile
        return _read_capped(fd, limit)
    except OSError as exc:
        raise UnreadableFile(os_reason(exc)) from None
    finally:
        os.close(fd)


def folder_problem(path: Path) -> str | None:
    """Why `path` is not a usable folder (`does not exist`, `is not a folder`…), or None."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return os_reason(exc)
    return None if stat.S_ISDIR(info.st_mode) else "is not a folder"


def os_reason(exc: OSError) -> str:
    """An OSError as words that follow a path, without the path (the caller names it)."""
    if exc.errno == errno.ENOENT:
        return "does not exist"
    if exc.errno == errno.ENOTDIR:
        return "does not exist (a part of its path is not a folder)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read: permission denied (on the file or a folder on its path)"
    if exc.errno == errno.ELOOP:
        return "cannot be read: too many levels of symbolic links"
    return f"cannot be read: {exc.strerror or exc}"


def _check(info: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile(f"is {_kind(info.st_mode)}, not a regular file")
    if info.st_size > limit:
        raise UnreadableFile(f"is {info.st_size:,} bytes; the limit is {limit:,}")


def _read_capped(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, _CHUNK):
        total += len(chunk)
        if total > limit:  # it grew after the stat
            raise UnreadableFile(f"is over {limit:,} bytes, the limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"
