"""What hostsd remembers between runs: who owns each persisted entry, and the original file.

Leased entries are never recorded: after a restart any marked line not listed here is a
lease of a connection that no longer exists, so it is removed.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import NamedTuple

from promenade_hostsd.hostnames import hostname_problem
from promenade_hostsd.hostsfile import SERVICE_RE, Entry, loopback_problem


class Owned(NamedTuple):
    """An entry with its owner; `lease` is the connection id, None when persisted."""

    entry: Entry
    uid: int
    lease: int | None


class StateDir:
    def __init__(self, path: str) -> None:
        """Locked for the daemon's life: two hostsd on one state would drop each other's lines."""
        self.path = path
        os.makedirs(path, mode=0o700, exist_ok=True)
        self._lock = open(os.path.join(path, "lock"), "a")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another promenade-hostsd is using {path}") from None

    def load(self) -> list[Owned]:
        path = os.path.join(self.path, "state.json")
        try:
            with open(path, encoding="utf-8") as f:
                items = json.load(f)["persisted"]
            owned = [Owned(Entry(i["hostname"], i["service"], i["address"]), int(i["uid"]), None)
                     for i in items]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path} is unreadable ({exc!r}): fix or remove it") from None
        return [o for o in owned if not hostname_problem(o.entry.hostname)
                and SERVICE_RE.fullmatch(o.entry.service) and not loopback_problem(o.entry.address)]

    def save(self, owned: list[Owned]) -> None:
        items = [
            {"uid": o.uid, "service": o.entry.service, "hostname": o.entry.hostname,
             "address": o.entry.address}
            for o in owned if o.lease is None
        ]
        tmp = os.path.join(self.path, "state.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"v": 1, "persisted": items}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(self.path, "state.json"))

    def backup(self, original: bytes) -> None:
        """The file as it was before hostsd first changed it; never overwritten."""
        path = os.path.join(self.path, "hosts.before-promenade")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return
        with os.fdopen(fd, "wb") as f:
            f.write(original)
            os.fsync(f.fileno())
