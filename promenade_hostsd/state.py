"""What hostsd remembers between runs: who owns each persisted entry, and the original file.

Leased entries are never recorded: after a restart any marked line not listed here is a
lease of a connection that no longer exists, so it is removed.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from typing import NamedTuple

from promenade_hostsd.hostnames import entry_problem
from promenade_hostsd.hostsfile import SERVICE_RE, Entry, create, loopback_problem


class Owned(NamedTuple):
    """An entry with its owner; `lease` is the connection id, None when persisted."""

    entry: Entry
    uid: int
    lease: int | None


def folder_problem(path: str) -> str | None:
    """Why root must not write in `path`, or None: it and every folder above it must be
    real folders owned by root (or us) that no one else can write to. Otherwise another
    user could plant a symlink (`state.json.tmp` -> /etc/shadow) or swap the folder.
    An ancestor others may write to is fine with the sticky bit (/tmp): they cannot
    rename or replace what root owns in it. `path` must already be a realpath.
    """
    current = path
    while True:
        st = os.lstat(current)
        if not stat.S_ISDIR(st.st_mode):
            return f"{current} is not a folder"
        if st.st_uid not in (0, os.geteuid()) or (current == path and st.st_uid != os.geteuid()):
            return f"{current} is owned by uid {st.st_uid}, not by root"
        if st.st_mode & 0o022 and (current == path or not st.st_mode & stat.S_ISVTX):
            return (f"{current} is writable by group or others (mode "
                    f"{stat.S_IMODE(st.st_mode):04o}): chmod go-w {current}")
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


class StateDir:
    def __init__(self, path: str) -> None:
        """Locked for the daemon's life: two hostsd on one state would drop each other's lines.

        Refused (SystemExit) unless only root can write to it and to every folder above.
        """
        self.path = os.path.realpath(path)
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        if problem := folder_problem(self.path):
            raise SystemExit(f"unsafe --state-dir: {problem}")
        self._lock = os.open(os.path.join(self.path, "lock"),
                             os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another promenade-hostsd is using {path}") from None

    def load(self) -> list[Owned]:
        path = os.path.join(self.path, "state.json")
        try:
            with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), encoding="utf-8") as f:
                items = json.load(f)["persisted"]
            owned = [Owned(Entry(i["hostname"], i["service"], i["address"]), int(i["uid"]), None)
                     for i in items]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path} is unreadable ({exc!r}): fix or remove it") from None
        return [o for o in owned if not entry_problem(o.entry.hostname)
                and SERVICE_RE.fullmatch(o.entry.service) and not loopback_problem(o.entry.address)]

    def save(self, owned: list[Owned]) -> None:
        items = [{**o.entry.__dict__, "uid": o.uid} for o in owned if o.lease is None]
        tmp = os.path.join(self.path, "state.json.tmp")
        with open(create(tmp, 0o600), "w", encoding="utf-8") as f:
            json.dump({"v": 1, "persisted": items}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.path, "state.json"))

    def backup(self, original: bytes) -> None:
        """The file as it was before hostsd first changed it; never overwritten."""
        path = os.path.join(self.path, "hosts.before-promenade")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            return
        with os.fdopen(fd, "wb") as f:
            f.write(original)
            f.flush()  # into the file before the fsync, not after it
            os.fsync(f.fileno())
