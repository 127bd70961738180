"""Hot reload: watch the config (and its env_files), validate, diff, apply.

A change is seen by mtime and size, confirmed by content hash (a touch does nothing).
An invalid file keeps the old config running and is reported; a file that fails to
parse is given one more poll first, because editors that truncate then write can be
caught half-way.

Every stat, read and parse runs in gevent's thread pool, never in the hub: parsing a
3 MB config in a greenlet froze every service's output for 1.8 s. PyYAML and marshmallow
are pure Python and share no state with the hub, and the GIL switches every 5 ms, so the
hub keeps serving while a worker parses. Files are read by `userfile`, which refuses
FIFOs and devices (a FIFO once blocked the supervisor for good) and caps the size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import gevent
import gevent.lock

from promenade_core.bus import protocol
from promenade_core.config.load import Config, load_config
from promenade_core.errors import ConfigError
from promenade_core.supervise.logs import iso_timestamp
from promenade_core.supervise.reload_plan import ReloadPlan, ServiceChange, plan_reload
from promenade_core.userfile import UnreadableFile, read_user_file

if TYPE_CHECKING:
    from promenade_core.manager import Manager

Fingerprint = tuple[int, int, str] | None
T = TypeVar("T")


def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking file work in the hub's thread pool; exceptions come back here."""
    return gevent.get_hub().threadpool.apply(fn, args)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def _digest(path: Path) -> str:
    """The content's hash; a file that cannot be read hashes to why (a FIFO, too big…)."""
    try:
        return hashlib.sha256(read_user_file(path)).hexdigest()
    except UnreadableFile as exc:
        return f"unreadable: {exc.reason}"


def scan(seen: dict[Path, Fingerprint]) -> dict[Path, Fingerprint]:
    """Fresh fingerprints of `seen`'s files, hashing only those whose stat changed."""
    fresh: dict[Path, Fingerprint] = {}
    for path, old in seen.items():
        st = _stat(path)
        if st is None:
            fresh[path] = None
        elif old is not None and st == old[:2]:
            fresh[path] = old
        else:
            fresh[path] = (*st, _digest(path))
    return fresh


def _differs(old: Fingerprint, new: Fingerprint) -> bool:
    if old is None or new is None:
        return old != new
    return old[2] != new[2]


def error_document(exc: ConfigError) -> dict[str, Any]:
    first = exc.problems[0]
    return {"file": first.file, "line": first.line, "key": first.key,
            "message": first.message, "problems": [str(p) for p in exc.problems]}


def describe_plan(plan: ReloadPlan, dry_run: bool) -> str:
    """The decision in the order it runs, for `-v`: `reload plan: stop worker; restart
    api (command changed)`."""
    steps = [f"{c.action} {c.service}" + (f" ({', '.join(c.reasons)})" if c.reasons else "")
             for c in plan.changes]
    steps += list(plan.manager_changes)
    steps += [f"resize {name}'s buffer to {size} lines"
              for name, size in plan.buffer_resize.items()]
    what = "; ".join(steps) or "nothing to do"
    return f"reload plan{' (dry run)' if dry_run else ''}: {what}"


class Reloader:
    def __init__(self, manager: Manager, config: Config) -> None:
        self.m = manager
        self.config = config
        self.error: dict[str, Any] | None = None
        self._seen: dict[Path, Fingerprint] = {}
        #: one reload (or change check) at a time: both wait on the thread pool now
        self._lock = gevent.lock.RLock()
        self._remember(config)
        self._retry = False
        self._loop: gevent.Greenlet | None = None

    def _remember(self, config: Config) -> None:
        self._seen = in_thread(scan, dict.fromkeys(config.watched_files))

    def _changed(self) -> bool:
        """True when a watched file's content really changed (stat first, then hash)."""
        with self._lock:
            old = self._seen
            self._seen = in_thread(scan, old)
            return any(_differs(old[path], self._seen[path]) for path in old)

    def last_modified(self) -> str | None:
        st = _stat(self.m.config_path)
        return iso_timestamp(st[0] / 1e9) if st else None

    def start(self) -> None:
        self._loop = gevent.spawn(self._poll)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)

    def _poll(self) -> None:
        while True:
            gevent.sleep(self.config.manager.config_poll_interval)
            try:
                if self._changed() or self._retry:
                    self.reload()
            except Exception as exc:  # a dead watcher fails silently
                self.m.supervisor.emit(
                    f"config watcher: {type(exc).__name__}: {exc}; still watching", "error")

    # -- reload -------------------------------------------------------------------

    def reload(self, dry_run: bool = False, forced: bool = False) -> dict[str, Any]:
        with self._lock:
            return self._reload(dry_run, forced)

    def _reload(self, dry_run: bool, forced: bool) -> dict[str, Any]:
        try:
            new = in_thread(load_config, self.m.config_path)
        except ConfigError as exc:
            return self._invalid(exc, report=forced or dry_run or self._retry)
        self._retry = False
        plan = plan_reload(self.config, new)
        self.m.supervisor.emit(describe_plan(plan, dry_run), "debug")
        result = {"changed": not plan.empty, "dry_run": dry_run, "error": None,
                  "summary": plan.summary(), "actions": plan.to_dict()}
        if dry_run:
            return result
        had_error = self.error is not None
        self.error = None
        self._remember(new)
        if plan.empty:
            if had_error:
                self._publish({"event": "reloaded", "summary": plan.summary(), "actions": []})
            return result
        self._apply(plan, new)
        self.m.supervisor.emit(plan.summary())
        self._publish({"event": "reloaded", "summary": plan.summary(),
                       "actions": result["actions"]})
        return result

    def _invalid(self, exc: ConfigError, report: bool) -> dict[str, Any]:
        doc = error_document(exc)
        if not report:
            self._retry = True   # maybe half-written: look again at the next poll
            return {"changed": False, "error": doc, "summary": "reload: retrying"}
        self._retry = False
        self.error = doc
        self.m.supervisor.emit(
            f"config is invalid; still running the previous one:\n{exc}", "error")
        self._publish({"event": "invalid", "error": doc})
        return {"changed": False, "error": doc, "summary": "reload: config invalid"}

    def _publish(self, body: dict[str, Any]) -> None:
        self.m.publisher.publish(protocol.CONFIG_TOPIC, body)

    def _apply(self, plan: ReloadPlan, new: Config) -> None:
        sup = self.m.supervisor
        self.config = new
        sup.config = new
        for change in plan.changes:
            self._apply_change(change, new)
        for name, size in plan.buffer_resize.items():
            if name in sup.services:
                sup.logs.resize(name, size)

    def _apply_change(self, change: ServiceChange, new: Config) -> None:
        sup = self.m.supervisor
        if change.action == "stop":
            service = sup.services.pop(change.service)
            service.submit(service.stop).get()
            service.close()
            sup.logs.drop(change.service)
        elif change.action == "start":
            service = sup.add_service(new.services[change.service])
            service.submit(service.start)
        else:
            service = sup.services[change.service]
            service.submit(partial(service.reconfigure, new.services[change.service],
                                   restart=change.action == "restart"))
