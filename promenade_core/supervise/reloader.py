"""Hot reload: watch the config (and its env_files), validate, plan; Supervisor.apply does it.

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
from pathlib import Path
from typing import Any, TypeVar

import gevent
import gevent.lock

from promenade_core.bus import protocol
from promenade_core.bus.server import Publisher
from promenade_core.config.load import load_config
from promenade_core.config.model import Config
from promenade_core.errors import ConfigError
from promenade_core.supervise.logs import iso_timestamp
from promenade_core.supervise.reload_plan import ReloadPlan, plan_reload
from promenade_core.supervise.supervisor import Supervisor
from promenade_core.userfile import UnreadableFile, read_user_file

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


def error_document(exc: ConfigError) -> protocol.ConfigErrorDoc:
    first = exc.problems[0]
    return {"file": first.file, "line": first.line, "key": first.key,
            "message": first.message, "problems": [str(p) for p in exc.problems]}


def describe_plan(plan: ReloadPlan, dry_run: bool) -> str:
    """The decision in the order it runs, for `-v`: `reload plan: stop worker; restart
    api (command changed)`."""
    steps = [f"{c.action.value} {c.service}" + (f" ({', '.join(c.reasons)})" if c.reasons else "")
             for c in plan.changes]
    steps += list(plan.manager_changes)
    steps += [f"resize {name}'s buffer to {size} lines"
              for name, size in plan.buffer_resize.items()]
    what = "; ".join(steps) or "nothing to do"
    return f"reload plan{' (dry run)' if dry_run else ''}: {what}"


class Reloader:
    """Watches the config's files and reloads on a change (or when asked over the bus).

    It only decides: load, validate, plan; the supervisor applies the plan, and its
    `config` is the one running (an invalid file leaves it alone).
    """

    def __init__(self, config_path: Path, supervisor: Supervisor, publisher: Publisher,
                 extra_files: tuple[Path, ...] = ()) -> None:
        self.config_path = config_path
        #: files merged on top of config_path, as at start (`-c` given again)
        self.extra_files = extra_files
        self.supervisor = supervisor
        self.publisher = publisher
        self.error: protocol.ConfigErrorDoc | None = None
        self._seen: dict[Path, Fingerprint] = {}
        #: one reload (or change check) at a time: both wait on the thread pool now
        self._lock = gevent.lock.RLock()
        self._remember(supervisor.config)
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
        st = _stat(self.config_path)
        return iso_timestamp(st[0] / 1e9) if st else None

    def start(self) -> None:
        self._loop = gevent.spawn(self._poll)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)

    def _poll(self) -> None:
        while True:
            gevent.sleep(self.supervisor.config.manager.config_poll_interval)
            try:
                if self._changed() or self._retry:
                    self.reload()
            except Exception as exc:  # a dead watcher fails silently
                self.supervisor.emit(
                    f"config watcher: {type(exc).__name__}: {exc}; still watching", "error")

    # -- reload -------------------------------------------------------------------

    def reload(self, dry_run: bool = False, forced: bool = False) -> protocol.ReloadResult:
        with self._lock:
            return self._reload(dry_run, forced)

    def _reload(self, dry_run: bool, forced: bool) -> protocol.ReloadResult:
        try:
            new = in_thread(load_config, self.config_path, self.extra_files)
        except ConfigError as exc:
            return self._invalid(exc, report=forced or dry_run or self._retry)
        self._retry = False
        plan = plan_reload(self.supervisor.config, new)
        self.supervisor.emit(describe_plan(plan, dry_run), "debug")
        result: protocol.ReloadResult = {
            "changed": not plan.empty, "dry_run": dry_run, "error": None,
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
        self.supervisor.apply(plan, new)
        self.supervisor.emit(plan.summary())
        self._publish({"event": "reloaded", "summary": plan.summary(),
                       "actions": result["actions"]})
        return result

    def _invalid(self, exc: ConfigError, report: bool) -> protocol.ReloadResult:
        doc = error_document(exc)
        if not report:
            self._retry = True   # maybe half-written: look again at the next poll
            return {"changed": False, "error": doc, "summary": "reload: retrying"}
        self._retry = False
        self.error = doc
        self.supervisor.emit(
            f"config is invalid; still running the previous one:\n{exc}", "error")
        self._publish({"event": "invalid", "error": doc})
        return {"changed": False, "error": doc, "summary": "reload: config invalid"}

    def _publish(self, body: protocol.ConfigBody) -> None:
        self.publisher.publish(protocol.CONFIG_TOPIC, body)
