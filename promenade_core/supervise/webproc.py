"""The dashboard's process: started by the manager, restarted if it dies.

The web process talks to the supervisor only over the bus; here we only launch it,
check its port first (a taken port is an error naming the holder) and watch it.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable

import gevent
from gevent import subprocess

from promenade_core.bus.protocol import Emit
from promenade_core.errors import PromenadeError
from promenade_core.supervise import ports
from promenade_core.supervise.loopback import dial

READY_TIMEOUT = 15.0
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)


class WebProcess:
    def __init__(self, host: str, port: int, endpoints: dict[str, str],
                 emit: Emit,
                 track: Callable[[int, bool], None]) -> None:
        self.host = host
        self.port = port
        self.endpoints = endpoints
        self._emit = emit
        self._track = track
        self._proc: subprocess.Popen | None = None
        self._watcher: gevent.Greenlet | None = None
        self._stopping = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _spawn(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "promenade_web",
             "--control", self.endpoints["control"], "--events", self.endpoints["events"],
             "--host", self.host, "--port", str(self.port)],
            stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )
        self._track(proc.pid, True)
        return proc

    def _wait_ready(self, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PromenadeError(
                    f"the dashboard process exited with code {proc.returncode} at start "
                    "(see its message above)")
            try:
                dial(self.host, self.port, 0.5).close()
                return
            except OSError:
                gevent.sleep(0.02)
        raise PromenadeError(f"the dashboard did not open {self.url} within {READY_TIMEOUT:g} s")

    def check_port(self) -> None:
        if ports.port_in_use(self.port):
            raise PromenadeError(
                f"dashboard {ports.describe_port_in_use(self.port)}; "
                "choose another with --port or manager.port")

    def launch(self, ready: Callable[[], None]) -> None:
        """Spawn now; a greenlet waits until it accepts, calls `ready`, then watches it.
        Nothing once `stop` was called: the manager is on its way out."""
        if self._stopping:
            return
        self._proc = self._spawn()
        self._watcher = gevent.spawn(self._first_start, ready)

    def _first_start(self, ready: Callable[[], None]) -> None:
        assert self._proc is not None
        try:
            self._wait_ready(self._proc)
        except PromenadeError as exc:
            self._emit(str(exc), "error")
        else:
            ready()
        self._watch()

    def _watch(self) -> None:
        attempt = 0
        while not self._stopping:
            proc = self._proc
            assert proc is not None
            code = proc.wait()
            self._track(proc.pid, False)
            if self._stopping:
                return
            delay = RESTART_DELAYS[min(attempt, len(RESTART_DELAYS) - 1)]
            self._emit(f"the dashboard process exited with code {code}; restarting it in "
                       f"{delay:g} s", "warning")
            gevent.sleep(delay)
            started = time.monotonic()
            try:
                self._proc = self._spawn()
                self._wait_ready(self._proc)
            except PromenadeError as exc:
                self._emit(str(exc), "error")
            attempt = 0 if time.monotonic() - started > 30 else attempt + 1

    def stop(self) -> None:
        self._stopping = True
        proc = self._proc
        if self._watcher is not None:
            self._watcher.kill(block=False)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._track(proc.pid, False)
