"""Is a TCP port taken, and by whom.

A service whose port is already in use is not started: the user gets
`port 5001 is already in use by pid 4242 (python3 -m http.server)` instead of a
service crash-looping on EADDRINUSE.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from pathlib import Path

from promenade_core.masking import mask_command

PROC = Path("/proc")


def port_in_use(port: int) -> bool:
    """True when binding the port on all addresses fails with EADDRINUSE."""
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((addr, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
        finally:
            sock.close()
    return False


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for row in (PROC / "net" / name).read_text().splitlines()[1:]:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def command_line(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace") or "?"


def port_holder(port: int) -> tuple[int, str] | None:
    """(pid, command line) of the process listening on `port`, where /proc tells."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(entry / "fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in targets:
                        pid = int(entry.name)
                        return pid, command_line(pid)
    return None


def describe_port_in_use(port: int) -> str:
    holder = port_holder(port)
    if holder is None:
        return f"port {port} is already in use"
    pid, cmd = holder
    # A command line may carry a secret (`--password=…`); the message reaches the
    # dashboard and the bus.
    return f"port {port} is already in use by pid {pid} ({mask_command(cmd)})"
