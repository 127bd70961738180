"""The hosts file as bytes: our marked lines out, unmanaged bytes kept exactly, atomic writes.

Only lines that look exactly like the ones we write (`127.0.0.1  api.local  # promenade:api`)
are ours. Everything else is kept byte for byte, in order, including a missing final newline:
when the file ends without one, our block ends without one too, so removing our lines gives
back the very bytes we found.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
from dataclasses import dataclass

from promenade_hostsd.hostnames import entry_problem

MARKER = "# promenade:"
SERVICE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # used with fullmatch: `$` allows a "\n"
_OURS = re.compile(rb"(127(?:\.\d{1,3}){3}|::1)  (\S+)  # promenade:([A-Za-z0-9_-]{1,64})")


@dataclass(frozen=True)
class Entry:
    """One managed name; a `.local` name gets an extra `::1` line (see lines())."""

    hostname: str
    service: str
    address: str = "127.0.0.1"

    def lines(self) -> list[bytes]:
        """macOS resolves `.local` over mDNS first and stalls seconds without an IPv6 answer."""
        addresses = [self.address]
        if self.hostname.endswith(".local") and self.address != "::1":
            addresses.append("::1")
        return [f"{a}  {self.hostname}  {MARKER}{self.service}".encode() for a in addresses]


def loopback_problem(address: object) -> str | None:
    """Only loopback, written canonically: a name can never be pointed elsewhere."""
    try:
        ip = ipaddress.ip_address(address)  # type: ignore[arg-type]
    except ValueError:
        return f"address {address!r} is not an IP address"
    if not ip.is_loopback or str(ip) != address:
        return f"address {address!r} is not loopback (use 127.0.0.1 or ::1)"
    return None


def _ours(line: bytes) -> Entry | None:
    if not (match := _OURS.fullmatch(line)):
        return None
    address, name, service = (g.decode("ascii", "replace") for g in match.groups())
    if loopback_problem(address) or entry_problem(name):
        return None
    return Entry(name.lower(), service, address)


def parse(data: bytes) -> tuple[bytes, list[Entry]]:
    """Split the file into the unmanaged bytes and our entries (one per name and service)."""
    pieces = data.split(b"\n")
    kept: list[bytes] = []
    entries: dict[tuple[str, str], Entry] = {}
    for i, piece in enumerate(pieces):
        entry = _ours(piece)
        if entry is None:
            kept.append(piece + b"\n" if i < len(pieces) - 1 else piece)
        elif (entry.hostname, entry.service) not in entries or entry.address != "::1":
            entries[(entry.hostname, entry.service)] = entry
    unmanaged = b"".join(kept)
    if _ours(pieces[-1]) and unmanaged.endswith(b"\n"):
        unmanaged = unmanaged[:-1]  # the newline we added before our block
    return unmanaged, list(entries.values())


def render(unmanaged: bytes, entries: list[Entry]) -> bytes:
    lines = [line for entry in entries for line in entry.lines()]
    if not lines:
        return unmanaged
    if not unmanaged or unmanaged.endswith(b"\n"):
        return unmanaged + b"".join(line + b"\n" for line in lines)
    return unmanaged + b"\n" + b"\n".join(lines)


def unmanaged_names(unmanaged: bytes) -> set[str]:
    """Every name on a line we do not own (aliases too): those are never ours to map."""
    return {name.lower().rstrip(".") for line in unmanaged.decode("latin-1").splitlines()
            for name in line.split("#", 1)[0].split()[1:]}


def create(path: str, mode: int) -> int:
    """A new file at exactly `path`: a leftover of a crash is removed first (unlink never
    follows a symlink), then O_EXCL|O_NOFOLLOW create it afresh, never through a link."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)


def write(path: str, data: bytes) -> None:
    """Temp file beside it, fsync, rename; rewrite in place where rename cannot work.

    A bind-mounted /etc/hosts (containers) refuses rename with EBUSY, a read-only folder
    (our systemd unit) refuses the temp file; a symlinked hosts file stays one (realpath).
    """
    path = os.path.realpath(path)
    st, folder = os.stat(path), os.path.dirname(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.promenade-tmp")
    try:
        with os.fdopen(create(tmp, 0o600), "wb") as f:  # one hostsd per file: the state lock
            f.write(data)
            os.fchown(f.fileno(), st.st_uid, st.st_gid)
            os.fchmod(f.fileno(), st.st_mode & 0o7777)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.EBUSY, errno.EXDEV):
            raise
        with open(path, "r+b") as f:  # in place: write, truncate, fsync
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
        return
    dir_fd = os.open(folder, os.O_RDONLY)
    os.fsync(dir_fd)  # the rename itself must survive a crash
    os.close(dir_fd)
