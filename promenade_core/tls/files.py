"""The CA's folder and files: created so that no one else can read or swap them, and
checked before they are trusted.

A CA key is worth stealing (whoever holds it can intercept every local HTTPS name the
browser trusts), so: the folder is 0700; keys are created 0600 with O_EXCL|O_NOFOLLOW
under a temp name and then renamed into place (a planted symlink is refused, never
written through); an existing key is used only when it is a regular file of ours that
nobody else can read or write. Files are read with O_NOFOLLOW|O_NONBLOCK (a FIFO planted
in the folder cannot block us) and capped in size.

Root never creates a user's files here: under sudo the caller drops to `$SUDO_USER`
first (`promenade trust` does); `refuse_sudo_root` is the guard.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from promenade_core.errors import PromenadeError

#: A PEM certificate or key is a few KB; anything larger is not ours.
MAX_PEM = 64 * 1024


def data_root() -> Path:
    """`$XDG_DATA_HOME/promenade`, or `~/.local/share/promenade` when unset."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "promenade"


def ca_folder() -> Path:
    return data_root() / "ca"


def refuse_sudo_root() -> None:
    """Files in a user's home made by root would stay root's: refuse under sudo."""
    user = os.environ.get("SUDO_USER")
    if os.geteuid() == 0 and user and user != "root":
        raise PromenadeError(
            f"refusing to create {user}'s CA files as root; run this without sudo "
            "(`promenade trust` asks for sudo itself, only for the system store)")


def file_problem(info: os.stat_result, uid: int, secret: bool) -> str | None:
    """Why a file (as fstat/lstat saw it) cannot be trusted by `uid`, or None.

    A `secret` (a private key) must also be unreadable by group and others."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid != uid:
        return f"belongs to uid {info.st_uid}, not to you (uid {uid})"
    mode = stat.S_IMODE(info.st_mode)
    if secret and mode & 0o077:
        return f"is a private key readable or writable by other users (mode {mode:o})"
    if mode & 0o022:
        return f"is writable by other users (mode {mode:o})"
    if info.st_size > MAX_PEM:
        return f"is {info.st_size:,} bytes, too large for a certificate or key"
    return None


def folder_problem(info: os.stat_result, uid: int) -> str | None:
    """Why the CA folder cannot be trusted by `uid`, or None (open modes get fixed)."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if info.st_uid != uid:
        return f"belongs to uid {info.st_uid}, not to you (uid {uid})"
    return None


def parent_problem(info: os.stat_result, uid: int) -> str | None:
    """Why the folder holding the CA folder is unsafe (someone else could rename the CA
    folder away and put their own in its place), or None."""
    if info.st_uid not in (uid, 0):
        return f"belongs to uid {info.st_uid}, not to you (uid {uid})"
    if stat.S_IMODE(info.st_mode) & 0o022:
        return f"is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def private_folder(path: Path) -> Path:
    """`path` as a 0700 folder of ours (parents made as needed); refuse a foreign one."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        problem = parent_problem(path.parent.stat(), os.geteuid())
        if problem is not None:
            raise PromenadeError(f"{path.parent} {problem}: refusing to keep a CA in it")
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = path.lstat()
    except OSError as exc:
        raise PromenadeError(f"cannot create {path}: {exc.strerror}") from None
    problem = folder_problem(info, os.geteuid())
    if problem is not None:
        raise PromenadeError(f"{path} {problem}: refusing to keep a CA there; "
                             "remove it and try again")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def read_checked(path: Path, secret: bool) -> bytes | None:
    """The bytes of a file of ours, None when it does not exist; PromenadeError when it
    exists but cannot be trusted (the message says why and what to do)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "is a symbolic link" if os.path.islink(path) else f"cannot be read ({exc.strerror})"
        raise PromenadeError(f"{path} {why}: refusing to use it; remove it and try again"
                             ) from None
    with os.fdopen(fd, "rb") as stream:
        problem = file_problem(os.fstat(fd), os.geteuid(), secret)
        if problem is not None:
            hint = (f"if you made it, `chmod 600 {path}`; otherwise remove it"
                    if secret and "mode" in problem else "remove it and try again")
            raise PromenadeError(f"{path} {problem}: refusing to trust it; {hint}")
        return stream.read(MAX_PEM + 1)[:MAX_PEM]


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Put `data` at `path` with `mode`, replacing what was there, never through a link.

    Written under a unique temp name (O_EXCL|O_NOFOLLOW, so nothing planted is
    followed), fsynced, then renamed: a reader sees the old file or the new, whole."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode)
    try:
        with os.fdopen(fd, "wb") as stream:
            os.fchmod(stream.fileno(), mode)  # the umask may have narrowed it; never widened
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An flock on `folder/lock`: two processes creating the CA (the CLI and the router)
    must not each write half of one."""
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
