"""Where the router keeps its control socket, start lock and log.

One router per user: its files live in `<runtime base>/router/` (the same per-user 0700
base as the managers' instance folders, see runtime.py), so the checks that keep
another user from planting a socket apply here too. Standard library only: managers and
the CLI import this without gevent.
"""

from __future__ import annotations

from pathlib import Path

from promenade_core.errors import PromenadeError
from promenade_core.runtime import _private_dir, runtime_base

#: AF_UNIX paths are limited to 107 bytes on Linux (sun_path is 108 with the NUL)
MAX_UNIX_PATH = 107


def router_dir() -> Path:
    """The router's private folder, created 0700 (managers start the router, so they
    create it; a folder another user owns is refused by `runtime_base`)."""
    base = runtime_base(create=True)
    assert base is not None  # create=True returns a folder or raises
    return _private_dir(base / "router")


def router_socket_path() -> Path:
    """The router's control socket (JSON lines, see router/protocol.py)."""
    path = router_dir() / "router.sock"
    if len(str(path).encode()) > MAX_UNIX_PATH:
        raise PromenadeError(
            f"router socket path {path} is too long for a Unix socket "
            f"(> {MAX_UNIX_PATH} bytes); set XDG_RUNTIME_DIR to a shorter path")
    return path


def router_lock_path() -> Path:
    """Held by the router for its life: a second router started by mistake leaves."""
    return router_dir() / "router.lock"


def launch_lock_path() -> Path:
    """The flock that stops two managers from starting two routers at once."""
    return router_dir() / "launch.lock"


def router_log_path() -> Path:
    """The router's stdout and stderr (it runs detached, in its own session)."""
    return router_dir() / "router.log"
