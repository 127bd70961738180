"""Control requests from many greenlets over a few REQ sockets.

A REQ socket carries one request at a time, and a stop may take the full 5 s grace
period: with one socket, a slow stop would freeze every `/api/status`. The pool hands
each request its own idle socket (creating one up to `size`), so slow commands only
hold their own.
"""

from __future__ import annotations

from typing import Any

import gevent.lock
import gevent.queue
import zmq.green as zmq

from promenade_core.bus.client import ControlClient

#: Commands that wait for processes (a stop's grace period, a restart, a reload).
SLOW_COMMANDS = frozenset({"start", "stop", "restart", "restart_all", "reload", "shutdown"})
QUICK_TIMEOUT = 5.0
SLOW_TIMEOUT = 40.0


class ControlPool:
    def __init__(self, endpoint: str, context: zmq.Context, size: int = 8) -> None:
        self.endpoint = endpoint
        self._context = context
        self._slots = gevent.lock.BoundedSemaphore(size)
        self._idle: gevent.queue.LifoQueue = gevent.queue.LifoQueue()

    def request(self, cmd: str, timeout: float | None = None, **args: Any) -> Any:
        """Send one control command; raises BusError / BusTimeout like ControlClient."""
        if timeout is None:
            timeout = SLOW_TIMEOUT if cmd in SLOW_COMMANDS else QUICK_TIMEOUT
        with self._slots:
            try:
                client = self._idle.get_nowait()
            except gevent.queue.Empty:
                client = ControlClient(self.endpoint, timeout=timeout, context=self._context)
            try:
                return client.request(cmd, timeout=timeout, **args)
            finally:
                self._idle.put(client)

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except gevent.queue.Empty:
                return
