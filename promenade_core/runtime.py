"""Where a manager keeps its sockets, lock, manager.json and daemon log.

One instance per config file: the runtime folder is
`$XDG_RUNTIME_DIR/promenade/<id>/` (fallback `/tmp/promenade-<uid>/<id>/`), mode 0700,
with `<id>` derived from the config's absolute path. Standard library only: the CLI and
users' scripts find a manager through this module.

Nothing here is trusted because of its name. Another user can create
`/tmp/promenade-<uid>` first (squatting) and fill it with a hostile manager.json, and an
XDG_RUNTIME_DIR can be misconfigured; so every folder and file on the way must be ours
(the effective uid), not a symlink and not writable by group or others, on the manager's
side and the client's. When the /tmp fallback is not ours, a private `mkdtemp` folder
is used instead, its path recorded in `$XDG_STATE_HOME/promenade/runtime-dir` so that
clients find it; a warning says what was wrong.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from promenade_core.errors import PromenadeError

MAX_IPC_PATH = 107
#: manager.json is a few hundred bytes; anything much larger is not ours
MAX_MANAGER_JSON = 64 * 1024
RECORD_NAME = "runtime-dir"
#: what a clean stop removes from the instance folder (the lock last, see InstanceLock)
RUNTIME_FILES = ("events", "control", "manager.json", "manager.json.tmp")

_warned: set[str] = set()


def _warn(message: str) -> None:
    """Print each distinct warning once per process (clients poll find_manager)."""
    if message not in _warned:
        _warned.add(message)
        print(f"Warning: {message}", file=sys.stderr, flush=True)


def instance_id(config_path: Path) -> str:
    """A short, stable id for a config file (its absolute path hashed)."""
    return hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:12]


def distrust(info: os.stat_result, uid: int, folder: bool = True) -> str | None:
    """Why a file or folder (as `lstat` saw it) cannot be trusted by `uid`, or None."""
    kind_ok = stat.S_ISDIR(info.st_mode) if folder else stat.S_ISREG(info.st_mode)
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not kind_ok:
        return "is not a folder" if folder else "is not a regular file"
    if info.st_uid != uid:
        return f"belongs to uid {info.st_uid}, not to you (uid {uid})"
    if info.st_mode & 0o022:
        return f"is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _problem(path: Path, folder: bool = True) -> str | None:
    """`distrust` for a path; a missing one is a problem too."""
    try:
        return distrust(path.lstat(), os.geteuid(), folder)
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"


def _private_dir(path: Path) -> Path:
    """Create `path` 0700 if missing and refuse one that another user could tamper with."""
    try:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = path.lstat()
    except OSError as exc:
        raise PromenadeError(f"cannot create {path}: {exc.strerror}") from None
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


def _trusted(path: Path, create: bool) -> Path | None:
    """`path` as a private folder: created and fixed (manager) or only checked (client)."""
    if create:
        return _private_dir(path)
    problem = _problem(path)
    if problem is None:
        return path
    if problem != "does not exist":
        _warn(f"{path} {problem}: not using it")
    return None


def _xdg_runtime() -> Path | None:
    """XDG_RUNTIME_DIR when it is set and safe: ours and writable by no one else."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if not xdg:
        return None
    problem = _problem(Path(xdg))
    if problem is not None:
        _warn(f"XDG_RUNTIME_DIR {xdg} {problem}: not using it")
        return None
    return Path(xdg)


def runtime_base(create: bool = False) -> Path | None:
    """Our folder under XDG_RUNTIME_DIR, else /tmp/promenade-<uid>/, else a private one.

    With `create` (the manager) the folder is made and returned, or PromenadeError says
    why not; without (clients) it is only checked, and None means nothing to look at.
    """
    xdg = _xdg_runtime()
    if xdg is not None:
        return _trusted(xdg / "promenade", create)
    import tempfile  # only here: with shutil and random it costs a CLI command ~2 ms

    shared = Path(tempfile.gettempdir()) / f"promenade-{os.geteuid()}"
    if create:
        with contextlib.suppress(OSError):  # taken or not creatable: _problem says which
            shared.mkdir(mode=0o700)
    problem = _problem(shared)
    if problem is None:
        if create and stat.S_IMODE(shared.lstat().st_mode) & 0o077:
            os.chmod(shared, 0o700)
        return shared
    if problem == "does not exist" and not create:
        return _fallback_base(create=False)  # a manager may run in a recorded fallback
    fallback = _fallback_base(create)
    if fallback is not None:
        _warn(f"{shared} {problem}: another user may be trying to intercept Promenade's "
              f"sockets; using {fallback} instead (recorded in {_record_path()})")
    else:
        _warn(f"{shared} {problem}: not using it")
    return fallback


def _state_root() -> Path:
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "promenade"


def _record_path() -> Path:
    return _state_root() / RECORD_NAME


def _fallback_base(create: bool) -> Path | None:
    """The private runtime folder recorded in the state folder; a new one if `create`."""
    record = _record_path()
    recorded = _read_private_file(record, 4096)
    if recorded:
        folder = Path(recorded.decode(errors="replace").strip())
        if folder.is_absolute() and _problem(folder) is None:
            return folder
    if not create:
        return None
    import tempfile

    try:
        folder = Path(tempfile.mkdtemp(prefix=f"promenade-{os.geteuid()}-"))
        _state_folder(record.parent)
        _write_private_file(record, f"{folder}\n".encode())
    except OSError as exc:
        raise PromenadeError(f"cannot make a private runtime folder: {exc}") from None
    return folder


def runtime_dir(config_path: Path) -> Path:
    """The manager's runtime folder for this config, created 0700 and checked."""
    base = runtime_base(create=True)
    assert base is not None  # create=True returns a folder or raises
    return _private_dir(base / instance_id(config_path))


def find_runtime_dir(config_path: Path) -> Path | None:
    """The runtime folder a client may trust for this config, or None."""
    base = runtime_base(create=False)
    return None if base is None else _trusted(base / instance_id(config_path), create=False)


def _state_folder(path: Path) -> Path:
    """Create `path` (and missing parents) as ours; refuse one we do not own."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise PromenadeError(f"cannot create {path}: {exc.strerror}") from None
    problem = _problem(path)
    if problem is not None:
        raise PromenadeError(f"{path} {problem}: refusing to use it; remove it and try again")
    return path


def state_dir(config_path: Path) -> Path:
    """Long-lived per-instance files (the daemon's log): `$XDG_STATE_HOME/promenade/<id>`."""
    return _state_folder(_state_root() / instance_id(config_path))


def open_private_file(path: Path, flags: int) -> int:
    """Open (creating 0600 if missing) a file of ours, never through a symlink.

    `O_NOFOLLOW` refuses a symlink planted at `path`; fstat then checks that what was
    opened is a regular file of ours that no one else can write.
    """
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                     0o600)
    except OSError as exc:
        why = "is a symbolic link" if os.path.islink(path) else f"cannot be opened ({exc.strerror})"
        raise PromenadeError(f"{path} {why}: refusing to use it; remove it and try again"
                             ) from None
    problem = distrust(os.fstat(fd), os.geteuid(), folder=False)
    if problem is not None:
        os.close(fd)
        raise PromenadeError(f"{path} {problem}: refusing to use it; remove it and try again")
    os.set_blocking(fd, True)
    return fd


def _read_private_file(path: Path, limit: int) -> bytes | None:
    """The content of a file of ours (checked as `open_private_file` does), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if distrust(info, os.geteuid(), folder=False) or info.st_size > limit:
            return None
        return stream.read(limit + 1)[:limit]


def _write_private_file(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data` (0600), never writing through a symlink."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.replace(tmp, path)


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
        """Lock the file that is at `path` now: a stopping manager unlinks its lock
        before closing it, so a lock taken on an unlinked file is retried."""
        while True:
            fd = open_private_file(self.path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            if _same_file(fd, self.path):
                self._fd = fd
                return True
            os.close(fd)

    def release(self, remove: bool = False) -> None:
        """Unlock; with `remove` (a clean stop) unlink the lock file first."""
        if self._fd is not None:
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            os.close(self._fd)
            self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.lstat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def is_locked(folder: Path) -> bool:
    """True while a live manager holds the folder's lock (never creates the file)."""
    try:
        fd = os.open(folder / "lock", os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if distrust(os.fstat(fd), os.geteuid(), folder=False):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def remove_runtime_files(folder: Path) -> None:
    """What a clean stop leaves behind: nothing but the lock, which release() removes."""
    for name in RUNTIME_FILES:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()


def write_manager_json(folder: Path, data: dict[str, Any]) -> None:
    _write_private_file(folder / "manager.json", json.dumps(data, indent=2).encode())


def read_manager_json(folder: Path) -> dict[str, Any] | None:
    """manager.json as a dict, or None when missing, not ours, too large or not JSON."""
    raw = _read_private_file(folder / "manager.json", MAX_MANAGER_JSON)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def remove_manager_json(folder: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (folder / "manager.json").unlink()


def logs_dir(config_path: Path, create: bool = False) -> Path:
    """The log files of this config's manager: `<state_dir>/logs`, made 0700 and
    checked by the manager (`create`); a client only computes where it is."""
    if create:
        return _state_folder(state_dir(config_path) / "logs")
    return _state_root() / instance_id(config_path) / "logs"


def logs_dir_problem(folder: Path) -> str | None:
    """Why a client should not read the log folder (not ours, writable by others),
    or None; a missing one is a problem too (`does not exist`)."""
    return _problem(folder)
