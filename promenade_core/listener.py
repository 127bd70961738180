"""A TCP accept loop that caps its connections and survives running out of descriptors.

Every listener the supervisor opens to the machine (the CORS proxies, the TCP events
feed) is reachable by any local user. Uncapped, ~1,100 idle connections exhausted the
manager's descriptors and libzmq aborted the whole process. Here:

- each listener holds at most `max_connections`; a connection over the cap is accepted
  and closed at once (the client sees it refused, nothing waits in the backlog);
- all capped listeners of the process share one budget derived from RLIMIT_NOFILE, so
  several proxies together still leave descriptors for services, pipes and ZeroMQ;
- when accept fails for lack of descriptors (EMFILE/ENFILE: something else took them),
  a spare descriptor kept for this moment is freed to accept and close the pending
  connection, so the loop neither spins on a readable listener nor dies;
- refusals are reported as a warning, at most one per WARN_EVERY seconds per listener.

Runs in the supervisor's gevent hub (not monkey-patched): sockets are gevent ones.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import socket as stdlib_socket
import time
from collections.abc import Callable

import gevent
from gevent import socket
from gevent.pool import Pool

#: Descriptors kept out of every listener's reach: services' pipes, ZeroMQ, files.
RESERVED_FDS = 256
#: A connection relayed by a capped listener may cost this many descriptors.
FDS_PER_CONNECTION = 3
WARN_EVERY = 10.0
#: Accepts in a row before other greenlets get a turn, and how long a turn.
ACCEPT_BURST = 100
BURST_PAUSE = 0.001
#: Pause after an accept error that freeing the spare descriptor did not cure.
ERROR_PAUSE = 0.1
_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN})
_NO_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

Handler = Callable[[socket.socket, tuple], None]


def raise_fd_limit(ceiling: int = 1 << 16) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (up to `ceiling`); returns (old, new).

    The ceiling: services inherit the limit, and some programs loop over every possible
    descriptor at start (closing them one by one), which a limit of millions makes slow.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < limit:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        except (ValueError, OSError):
            return soft, soft
        return soft, limit
    return soft, soft


def connection_budget(soft_limit: int) -> int:
    """How many connections all capped listeners of a process may hold together."""
    return max(16, (soft_limit - RESERVED_FDS) // FDS_PER_CONNECTION)


class _Shared:
    """Process-wide: connections held by every capped listener, and the spare fd."""

    open_connections = 0
    spare: int | None = None

    @classmethod
    def budget(cls) -> int:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return connection_budget(soft if soft != resource.RLIM_INFINITY else 1 << 20)

    @classmethod
    def keep_spare(cls) -> None:
        if cls.spare is None:
            with contextlib.suppress(OSError):
                cls.spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    @classmethod
    def release_spare(cls) -> bool:
        if cls.spare is None:
            return False
        os.close(cls.spare)
        cls.spare = None
        return True


class CappedServer:
    """Accepts on `listener` and runs `handle(sock, address)` per connection in a greenlet.

    `name` says which listener it is in warnings (`CORS proxy of api on 127.0.0.1:5002`).
    """

    def __init__(
        self,
        listener: socket.socket,
        handle: Handler,
        name: str,
        max_connections: int,
        warn: Callable[[str], None] = lambda message: None,
    ) -> None:
        self._listener = listener
        self._handle = handle
        self.name = name
        self.max_connections = max_connections
        self._warn = warn
        self._pool = Pool()
        self._loop: gevent.Greenlet | None = None
        self._unreported = 0
        self._last_warning = 0.0

    @property
    def active(self) -> int:
        return len(self._pool)

    def start(self) -> None:
        _Shared.keep_spare()
        self._loop = gevent.spawn(self._accept_loop)

    def stop(self, timeout: float = 5.0) -> None:
        """Closes the listener and every open connection's greenlet."""
        if self._loop is not None:
            self._loop.kill(block=True)
            self._loop = None
        self._listener.close()
        self._pool.kill(block=True, timeout=timeout)

    def _accept_loop(self) -> None:
        accepted = 0
        while True:
            accepted += 1
            if accepted % ACCEPT_BURST == 0:
                # A flood keeps the backlog full and accept() then never waits: let the
                # services' readers and the control socket run (a tiny sleep: sleep(0)
                # starves timers and I/O, idle() waits behind a busy log flood).
                gevent.sleep(BURST_PAUSE)
            try:
                sock, address = self._listener.accept()
            except OSError as exc:
                if exc.errno in _NO_FDS:
                    self._shed_one()
                elif exc.errno not in _TRANSIENT:
                    self._note_refusal(f"accept failed: {exc.strerror or exc}")
                    gevent.sleep(ERROR_PAUSE)
                continue
            if self.active >= self.max_connections:
                self._refuse(sock, f"over its cap of {self.max_connections} connections")
            elif _Shared.open_connections >= _Shared.budget():
                self._refuse(sock, "over the manager's connection budget "
                             f"({_Shared.budget()}, from its open-files limit)")
            else:
                _Shared.open_connections += 1
                self._pool.spawn(self._serve, sock, address)

    def _serve(self, sock: socket.socket, address: tuple) -> None:
        try:
            self._handle(sock, address)
        finally:
            _Shared.open_connections -= 1
            sock.close()

    def _refuse(self, sock: socket.socket, why: str) -> None:
        with contextlib.suppress(OSError):
            sock.close()
        self._note_refusal(why)

    def _shed_one(self) -> None:
        """Out of descriptors: free the spare one to accept and drop the waiting
        connection (so the listener stops being readable), then take it back."""
        if not _Shared.release_spare():
            self._note_refusal("out of file descriptors")
            gevent.sleep(ERROR_PAUSE)
            return
        # A plain socket on the listener's descriptor: a gevent socket closes its
        # descriptor later, in a callback, and the spare must be taken back now.
        raw = stdlib_socket.socket(fileno=self._listener.fileno())
        try:
            conn, _ = raw.accept()
            conn.close()
        except OSError:
            gevent.sleep(ERROR_PAUSE)  # taken again before we could: do not spin
        finally:
            raw.detach()
            _Shared.keep_spare()
        self._note_refusal("out of file descriptors")

    def _note_refusal(self, why: str) -> None:
        self._unreported += 1
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._warn(f"{self.name}: refused {self._unreported} connection(s): {why}")
            self._unreported = 0
            self._last_warning = now
