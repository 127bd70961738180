"""Where a manager keeps its sockets, lock, manager.json and daemon log.

One instance per config file: the runtime folder is
`$XDG_RUNTIME_DIR/promenade/<id>/` (fallback `/tmp/promenade-<uid>/<id>/`), mode 0700,
with `<id>` derived from the config's absolute path. Standard library only: the CLI and
users' scripts find a manager through this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from promenade_core.errors import PromenadeError

MAX_IPC_PATH = 107


def instance_id(config_path: Path) -> str:
    """A short, stable id for a config file (its absolute path hashed)."""
    return hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:12]


def _private_dir(path: Path) -> Path:
    """Create `path` 0700 if missing and refuse one that another user could tamper with."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PromenadeError(f"{path} is not a directory; remove it and try again")
    if info.st_uid != os.geteuid():
        raise PromenadeError(
            f"{path} belongs to uid {info.st_uid}, not to you: refusing to use it "
            "(someone may be trying to intercept Promenade's sockets)"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def runtime_base(uid: int | None = None) -> Path:
    """Our folder under XDG_RUNTIME_DIR, else /tmp/promenade-<uid>/.

    With `uid` (root looking for the manager `sudo promenade start -d` left running as
    the user): that user's `/run/user/<uid>` when it is theirs, as the manager chose.
    """
    if uid is not None and uid != os.geteuid():
        user_run = Path(f"/run/user/{uid}")
        if user_run.is_dir() and user_run.stat().st_uid == uid:
            return user_run / "promenade"
        return Path(tempfile.gettempdir()) / f"promenade-{uid}"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir() and os.access(xdg, os.W_OK):
        return Path(xdg) / "promenade"
    return Path(tempfile.gettempdir()) / f"promenade-{os.geteuid()}"


def runtime_dir(config_path: Path, create: bool = False, uid: int | None = None) -> Path:
    base = runtime_base(uid)
    path = base / instance_id(config_path)
    if create:
        _private_dir(base)
        _private_dir(path)
    return path


def state_dir(config_path: Path) -> Path:
    """Long-lived per-instance files (the daemon's log): `$XDG_STATE_HOME/promenade/<id>`."""
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    path = base / "promenade" / instance_id(config_path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def endpoints(folder: Path) -> dict[str, str]:
    events = f"ipc://{folder / 'events'}"
    control = f"ipc://{folder / 'control'}"
    relay = f"ipc://{folder / 'events-tcp'}"  # what manager.bus_tcp relays to (tcpfeed)
    longest = max(len(events), len(control), len(relay)) - len("ipc://")
    if longest > MAX_IPC_PATH:
        raise PromenadeError(
            f"runtime folder {folder} is too long for ZeroMQ ipc sockets "
            f"({longest} > {MAX_IPC_PATH} characters); set XDG_RUNTIME_DIR to a shorter path"
        )
    return {"events": events, "control": control, "events_tcp_relay": relay}


class InstanceLock:
    """An flock on `<runtime>/lock`, held for the manager's life.

    A ZeroMQ ipc bind silently takes over a live socket, so the lock is what stops a
    second manager for the same config.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / "lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_locked(folder: Path) -> bool:
    """True while a live manager holds the folder's lock."""
    lock = InstanceLock(folder)
    if not lock.path.exists():
        return False
    if lock.acquire():
        lock.release()
        return False
    return True


def write_manager_json(folder: Path, data: dict[str, Any]) -> None:
    target = folder / "manager.json"
    tmp = folder / "manager.json.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)


def read_manager_json(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "manager.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def remove_manager_json(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (folder / "manager.json").unlink()
