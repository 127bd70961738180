"""`ensure_router()`: the running router's info, starting the router first if needed.

Called by a manager that has names to serve. Plain blocking sockets and the standard
library (a manager may call it before its hub runs; each step is bounded). An flock on
`launch.lock` makes concurrent callers start one router: the second waits for the lock,
then finds the first one's router answering.

A router exits IDLE_EXIT seconds after its last manager leaves; a manager that connects
in that window may see its connection closed: calling `ensure_router()` again starts a
new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promenade_core.errors import PromenadeError
from promenade_core.router import paths, protocol
from promenade_core.runtime import open_private_file

START_TIMEOUT = 15.0  # a first start makes the CA (key generation) and may ask hostsd
REPLY_TIMEOUT = 5.0
POLL = 0.05
MAX_LOG = 1024 * 1024


@dataclass(frozen=True)
class RouterInfo:
    """What a manager needs to build URLs and warnings."""

    socket_path: Path
    https_port: int
    http_port: int | None
    ca_trusted: bool

    def url(self, name: str) -> str:
        """`https://api.myapp.localhost` on 443, else with the port."""
        return f"https://{name}" + ("" if self.https_port == 443 else f":{self.https_port}")


class RouterUnavailable(PromenadeError):
    """No router answers and none could be started."""


def request(path: Path, message: dict[str, Any], timeout: float = REPLY_TIMEOUT
            ) -> dict[str, Any]:
    """One request on a fresh connection; OSError when nothing (good) answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(protocol.encode(message))
        with sock.makefile("rb") as stream:
            line = stream.readline(protocol.MAX_LINE + 1)
    if not line.endswith(b"\n"):
        raise ConnectionError("the router closed the connection without a reply")
    try:
        reply = protocol.decode_reply(line)
    except protocol.ProtocolError as exc:
        raise ConnectionError(exc.message) from None
    return reply


def query(path: Path) -> RouterInfo | None:
    """The info of the router at `path`, or None when none answers."""
    try:
        reply = request(path, {"op": "info"})
    except OSError:
        return None
    port = reply.get("https_port")
    if not reply.get("ok") or not isinstance(port, int):
        return None
    http = reply.get("http_port")
    return RouterInfo(path, port, http if isinstance(http, int) else None,
                      bool(reply.get("ca_trusted")))


@contextlib.contextmanager
def _launch_lock() -> Iterator[None]:
    fd = open_private_file(paths.launch_lock_path(), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held only for the seconds one start takes
        yield
    finally:
        os.close(fd)


def _spawn(log: Path, timeout: float) -> None:
    """The router in a session of its own, so it outlives the manager that started it.

    With `--detach` it forks at once and its first process exits: the router is then
    nobody's child (no zombie left in the manager, whose hub reaps only its services)."""
    log_fd = open_private_file(log, os.O_WRONLY | os.O_APPEND)
    if os.fstat(log_fd).st_size > MAX_LOG:
        os.ftruncate(log_fd, 0)  # each start appends a few lines; keep it from growing
    try:
        proc = subprocess.Popen([sys.executable, "-m", "promenade_core.router", "--detach"],
                                stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
                                start_new_session=True, close_fds=True)
    finally:
        os.close(log_fd)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RouterUnavailable(f"the router did not start within {timeout:g} s; its log "
                                f"{log} says: {_tail(log) or '(empty)'}") from None
    if code != 0:
        raise RouterUnavailable(f"the router could not start (exit code {code}); its log "
                                f"{log} says: {_tail(log) or '(empty)'}")


def _tail(log: Path, limit: int = 2000) -> str:
    with contextlib.suppress(OSError):
        return log.read_bytes()[-limit:].decode(errors="replace").strip()
    return ""


def ensure_router(timeout: float = START_TIMEOUT) -> RouterInfo:
    """The router's info; starts it (once, across managers) when none answers."""
    path = paths.router_socket_path()
    info = query(path)
    if info is not None:
        return info
    with _launch_lock():
        info = query(path)
        if info is not None:
            return info
        log = paths.router_log_path()
        deadline = time.monotonic() + timeout
        _spawn(log, timeout)
        while time.monotonic() < deadline:
            info = query(path)
            if info is not None:
                return info
            time.sleep(POLL)
    raise RouterUnavailable(f"the router did not answer within {timeout:g} s; its log "
                            f"{log} says: {_tail(log) or '(empty)'}")
