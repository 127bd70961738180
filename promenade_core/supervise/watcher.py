"""`watch:`: restart a service when its files change (the rules are in watch_rules).

watchfiles (inotify through Rust's notify crate, no polling) blocks while it waits, so
each watched service gets a real OS thread of its own, from a one-thread gevent
ThreadPool: a blocking wait in a greenlet would stall every service's output and the
bus, and the hub's own pool is not used because a watch holds its thread for good (ten
watched services would leave the reloader no thread to parse the config with). The
thread only filters paths with the pure rules; everything else happens in the hub,
where it hands each batch with `loop.run_callback_threadsafe` (the one gevent call
that is safe from another thread). A greenlet per watcher waits for a burst to settle
and queues one restart on the service's command queue, so it never races a stop.

`RustNotify` is watchfiles' documented low-level backend (`watch()` is a loop around
it): used directly, the "watching" message is sent once the watches are in place (tests
and users can rely on it) and the notify thread is closed before this thread ends. It is
imported by the first watch only: watchfiles brings anyio and multiprocessing along,
~3.8 MB of heap that a manager without `watch:` never uses (scripts/bench/memprofile.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import gevent
import gevent.event
import gevent.threadpool

from promenade_core.bus.protocol import Level
from promenade_core.config.model import Config, Watch
from promenade_core.supervise.service import Service
from promenade_core.supervise.supervisor import Supervisor
from promenade_core.supervise.watch_rules import (
    WatchAction,
    WatchRules,
    describe_changes,
    on_change,
    relative,
    settle_at,
    watch_roots,
)

if TYPE_CHECKING:
    from watchfiles._rust_notify import RustNotify

#: How often the thread looks at its stop flag while no file changes (watchfiles checks
#: it between steps of this many ms): the most a close waits for the thread.
STEP_MS = 50
#: watchfiles' own grouping of raw events, before they reach the hub.
GROUP_MS = 300
#: The thread's wait in Rust between two looks at nothing (it returns to Python then).
RUST_TIMEOUT_MS = 1000
#: How long a close waits for the thread to end (it takes about STEP_MS).
JOIN_TIMEOUT = 5.0


class _StopFlag:
    """What watchfiles polls to stop: a plain attribute (atomic under the GIL) works
    from any thread, whether or not threading is monkey-patched."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


Key = tuple[Watch, Path]
Say = Callable[[str, Level], None]


class ServiceWatcher:
    """One service's files, watched in a thread of its own; `on_settled(paths)` is
    called in the hub once a burst of relevant changes has settled."""

    def __init__(self, name: str, watch: Watch, directory: Path,
                 on_settled: Callable[[list[str]], None], say: Say) -> None:
        self.name = name
        self.key: Key = (watch, directory)
        self.directory = str(directory)
        self.watch = watch
        self.rules = WatchRules.build(watch.paths, watch.ignore, self.directory)
        self._on_settled = on_settled
        self._say = say
        self._hub = gevent.get_hub()
        # here, in the hub's thread: an import in the watch thread could hold the
        # import lock while a greenlet waits for it
        from watchfiles._rust_notify import RustNotify

        self._notify_class = RustNotify
        self._flag = _StopFlag()
        self._closed = False
        self._pending: list[str] = []
        self._first: float | None = None
        self._last = 0.0
        self._wake = gevent.event.Event()
        self._settler = gevent.spawn(self._settle)
        self._pool = gevent.threadpool.ThreadPool(1)
        self._done = self._pool.spawn(self._watch_files)

    # -- in the watcher's thread: no gevent but run_callback_threadsafe ----------

    def _to_hub(self, fn: Callable[..., object], *args: object) -> None:
        self._hub.loop.run_callback_threadsafe(fn, *args)

    def _watch_files(self) -> None:
        """Watch until stopped; when a watched folder is removed (its watch ends with
        it), work out the roots again, so re-creating it is seen."""
        while not self._flag.is_set():
            found = watch_roots(self.watch.paths, self.directory, os.path.isdir,
                                os.path.exists)
            for note in found.notes:
                self._to_hub(self._say, f"{self.name}: watch: {note}", "debug")
            if not found.roots:
                self._to_hub(self._say, f"{self.name}: watch: nothing to watch", "warning")
                return
            try:
                # recursive; folders we may not read are skipped; inotify, never polling
                with self._notify_class(list(found.roots), False, False, 0, True, True) as notify:
                    self._to_hub(self._say, f"{self.name}: watching "
                                 f"{', '.join(found.roots)} (recursively) for changes", "debug")
                    self._deliver(notify, found.roots)
            except Exception as exc:   # inotify's limits, a root gone: report, never crash
                self._to_hub(self._say, f"{self.name}: cannot watch files ({exc}); changes "
                                        "will not restart it", "warning")
                return

    def _deliver(self, notify: RustNotify, roots: tuple[str, ...]) -> None:
        """Hand each batch's relevant paths (relative, sorted) to the hub, until stopped
        or until a root is gone."""
        while not self._flag.is_set():
            raw = notify.watch(GROUP_MS, STEP_MS, RUST_TIMEOUT_MS, self._flag)
            if isinstance(raw, str):   # 'stop', 'timeout' or 'signal' (main thread only)
                continue
            paths = sorted({relative(path, self.directory) for _, path in raw})
            counted = [p for p in paths if self.rules.counts(p)]
            if counted:
                self._to_hub(self._changed, counted)
            if not all(os.path.isdir(root) for root in roots):
                return

    # -- in the hub ----------------------------------------------------------------

    def _changed(self, paths: list[str]) -> None:
        if self._closed:
            return
        now = time.monotonic()
        if self._first is None:
            self._first = now
        self._last = now
        self._pending.extend(paths)
        self._wake.set()

    def _settle(self) -> None:
        """One `on_settled` per burst: after QUIET without a change, or MAX_DELAY."""
        while True:
            self._wake.wait()
            while self._first is not None:
                self._wake.clear()
                delay = settle_at(self._first, self._last) - time.monotonic()
                if delay <= 0:
                    break
                self._wake.wait(delay)
            self._wake.clear()
            paths, self._pending, self._first = self._pending, [], None
            if paths:
                self._on_settled(paths)

    def stop(self) -> None:
        """Tell the thread to end (it sees the flag within STEP_MS); nothing more is
        delivered from now on."""
        self._closed = True
        self._flag.set()
        self._settler.kill(block=False)

    def join(self) -> None:
        """Wait (cooperatively) for the thread to end, then release it."""
        self._done.wait(JOIN_TIMEOUT)   # returns the (None) result, or None on timeout
        if not self._done.ready():
            self._say(f"{self.name}: the file watcher did not stop within "
                      f"{JOIN_TIMEOUT:g} s", "warning")
        self._pool.kill()


class Watchers:
    """A ServiceWatcher for each service with `watch:`, following the running config."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._watchers: dict[str, ServiceWatcher] = {}
        #: changes waiting for a restart already queued on the service (that object:
        #: a service removed with a restart queued never runs it)
        self._queued: dict[str, tuple[Service, list[str]]] = {}
        self._closed = False

    def sync(self, config: Config) -> None:
        """Start, stop or re-create watchers so they match `config`: a watcher is
        re-created when its service's `watch` or `directory` changed."""
        if self._closed:
            return
        wanted = {name: (svc.watch, svc.directory)
                  for name, svc in config.services.items() if svc.watch is not None}
        gone = [name for name, w in self._watchers.items() if wanted.get(name) != w.key]
        self._close([self._watchers.pop(name) for name in gone])
        for name, (watch, directory) in wanted.items():
            if name not in self._watchers and watch is not None:
                self._watchers[name] = ServiceWatcher(
                    name, watch, directory, partial(self._restart, name),
                    self._say_about(name))

    def close(self) -> None:
        """Stop every watcher and wait for their threads (at shutdown)."""
        self._closed = True
        watchers, self._watchers = list(self._watchers.values()), {}
        self._close(watchers)

    @staticmethod
    def _close(watchers: list[ServiceWatcher]) -> None:
        for watcher in watchers:   # all told first: they end in parallel
            watcher.stop()
        for watcher in watchers:
            watcher.join()

    def _say_about(self, name: str) -> Say:
        def say(message: str, level: Level) -> None:
            self.supervisor.emit(message, level, service=name)
        return say

    def _restart(self, name: str, paths: list[str]) -> None:
        """Queue one restart on the service's command queue; changes seen before it
        runs join it instead of queueing another."""
        service = self.supervisor.services.get(name)
        if service is None:
            return
        queued = self._queued.get(name)
        if queued is not None and queued[0] is service:
            queued[1].extend(paths)
            return
        self._queued[name] = (service, list(paths))

        def act() -> None:
            changed = describe_changes(self._queued.pop(name, (service, []))[1])
            if self._closed or self.supervisor.services.get(name) is not service:
                return
            action = on_change(service.status, service.completed, service.last_exit_code)
            if action is WatchAction.NOTHING:
                self.supervisor.emit(f"{name}: {changed} changed; not restarted "
                                     f"({service.status.value})", "debug", service=name)
                return
            self.supervisor.emit(f"{name} restarted ({changed} changed)", "info", service=name)
            service.restart()

        service.submit(act)
