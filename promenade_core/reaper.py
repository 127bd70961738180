"""The reaper: kills every service process group once the supervisor is gone.

Run as a separate tiny process (`python -I -S reaper.py`, standard library only, in
its own session so terminal signals do not reach it). Its stdin is a pipe whose write
end only the supervisor holds; the supervisor writes `+PGID` when it spawns a service
and `-PGID` when that group is gone. EOF on stdin means the supervisor exited — even by
SIGKILL, which no signal handler sees — and every recorded group is then terminated:
SIGTERM, a short grace, SIGKILL. PR_SET_PDEATHSIG would reach only the direct child,
not the service's own children.
"""

import contextlib
import os
import signal
import sys
import time

GRACE = 1.0


def _alive(pgid: int) -> bool:
    """A live (non-zombie) process is in the group. Orphaned zombies wait for init to
    reap them and would make a plain killpg(pgid, 0) say "alive" for no reason."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def _signal(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def kill_groups(groups: set, grace: float = GRACE) -> None:
    for pgid in groups:
        _signal(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(g) for g in groups):
        time.sleep(0.02)
    for pgid in groups:
        if _alive(pgid):
            _signal(pgid, signal.SIGKILL)


def read_groups(fd: int) -> set:
    """Track +PGID / -PGID lines until EOF; return the groups still recorded."""
    groups: set = set()
    pending = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except InterruptedError:
            continue
        if not data:
            return groups
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if len(line) < 2 or not line[1:].isdigit():
                continue
            pgid = int(line[1:])
            if line[:1] == b"+" and pgid > 1:
                groups.add(pgid)
            elif line[:1] == b"-":
                groups.discard(pgid)


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    groups = read_groups(sys.stdin.fileno())
    if groups:
        kill_groups(groups)


if __name__ == "__main__":
    main()
