"""Is a service up yet? The pure judgement behind `promenade wait`, the bus's `wait`
command, `GET /api/wait` and the few seconds `promenade start SERVICE` watches.

No gevent and nothing but status objects in (it imports only the wire format): the
manager judges its own services with it, and the CLI judges the status objects the bus
hands it, by the same rules. Nothing here sleeps or asks anything; the callers poll.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from promenade_core.bus.protocol import DEFAULT_WAIT, MAX_WAIT, StatusObject, WaitEntry, WaitResult

_GIVEN_UP = frozenset({"failed", "gave_up"})


class Verdict(str, enum.Enum):
    #: running (and healthy when it has a ready_check), or a task that exited 0
    UP = "up"
    #: on its way: pending, starting, retrying, stopping, running but not healthy yet
    PENDING = "pending"
    #: failed or gave up: it will not come up without a new start
    FAILED = "failed"
    #: stopped and never completed: not started (autostart: false, not named in
    #: `promenade start api`, or stopped by hand); only a start brings it up
    NOT_STARTED = "not_started"


def judge(status: StatusObject) -> Verdict:
    """Where one service stands, from its status object alone.

    `stopped` is the one status that means two things: a task that exited 0 (its
    `completed` is true: up, and it stays up) or a service nobody started. `retrying`
    is still on its way: the restart policy brings it back, and a wait (like
    docker compose's) gives it that chance until it gives up or the timeout passes.
    """
    state = status.get("status")
    if state == "running":
        healthy = not status.get("ready_check") or status.get("health") == "healthy"
        return Verdict.UP if healthy else Verdict.PENDING
    if state == "stopped":
        return Verdict.UP if status.get("completed") else Verdict.NOT_STARTED
    if state in _GIVEN_UP:
        return Verdict.FAILED
    # pending, starting, retrying, stopping, and any status a newer manager may add
    return Verdict.PENDING


#: What a status object stands for when the service left the config during a wait.
REMOVED = "removed"


@dataclass(frozen=True)
class Progress:
    """A wait's position: `failed` ends it badly, `waiting` empty ends it well."""

    failed: tuple[WaitEntry, ...]
    waiting: tuple[WaitEntry, ...]

    @property
    def done(self) -> bool:
        return bool(self.failed) or not self.waiting


def _entry(name: str, status: StatusObject | None, verdict: Verdict) -> WaitEntry:
    if status is None:
        return {"service": name, "status": REMOVED,
                "status_reason": "no longer in the config", "verdict": Verdict.FAILED.value}
    return {"service": name, "status": str(status.get("status")),
            "status_reason": status.get("status_reason"), "verdict": verdict.value}


def assess(names: Iterable[str], statuses: Mapping[str, StatusObject]) -> Progress:
    """Judge each named service; a name without a status object (removed by a reload
    while a wait ran) counts as failed: it can never come up."""
    failed: list[WaitEntry] = []
    waiting: list[WaitEntry] = []
    for name in names:
        status = statuses.get(name)
        verdict = judge(status) if status is not None else Verdict.FAILED
        if verdict in (Verdict.FAILED, Verdict.NOT_STARTED):
            failed.append(_entry(name, status, verdict))
        elif verdict is Verdict.PENDING:
            waiting.append(_entry(name, status, verdict))
    return Progress(tuple(failed), tuple(waiting))


def result(progress: Progress, statuses: Mapping[str, StatusObject], names: Iterable[str],
           timed_out: bool = False) -> WaitResult:
    """The wait's reply: `services` holds the named services' status objects."""
    return {
        "ok": not progress.failed and not progress.waiting,
        "timed_out": timed_out and not progress.done,
        "failed": list(progress.failed),
        "waiting": list(progress.waiting),
        "services": {n: statuses[n] for n in names if n in statuses},
    }


def explain(entry: WaitEntry) -> str:
    """One line for a person: `api: failed (exited with code 3; gave up after 1 retry)`;
    a service never started says how to start it."""
    name, reason = entry["service"], entry["status_reason"]
    if entry["verdict"] == Verdict.NOT_STARTED.value:
        why = reason or "not started"
        return f"{name}: {entry['status']} ({why}); start it with `promenade start {name}`"
    return f"{name}: {entry['status']}" + (f" ({reason})" if reason else "")


def wait_timeout(value: Any) -> float:
    """A wait's timeout from untrusted input (JSON or a query string's number):
    DEFAULT_WAIT when None, else a number > 0 and <= MAX_WAIT; raises ValueError
    saying what was wrong."""
    if value is None:
        return DEFAULT_WAIT
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"timeout must be a number of seconds, got {value!r}")
    if not 0 < value <= MAX_WAIT:   # also refuses NaN
        raise ValueError(f"timeout must be more than 0 and at most {MAX_WAIT:g} s, "
                         f"got {value!r}")
    return float(value)


def after_start(status: StatusObject) -> Verdict:
    """judge() for a service just started by hand: `retrying` after a failure counts as
    failed here, since it means the start crashed (what `promenade start api` must not
    call running). Retrying after a clean exit (`completed`) is the normal cycle of an
    `always` service that runs and ends, such as a periodic job."""
    if status.get("status") == "retrying" and not status.get("completed"):
        return Verdict.FAILED
    return judge(status)


def proven_up(status: StatusObject, steady: float) -> bool:
    """Up, and trusted to stay so: a passed ready_check or a completed task proves it,
    a bare process only by running `steady` seconds. `promenade start api` stops
    watching early only then, so a service that dies a second after it started is
    still caught."""
    if after_start(status) is not Verdict.UP:
        return False
    if status.get("status") != "running" or status.get("ready_check"):
        return True
    return (status.get("uptime_seconds") or 0.0) >= steady


def status_line(status: StatusObject) -> str:
    """`api: running (pid 123)`, `api: failed (exited with code 3; gave up after 1
    retry)`, `migrate: stopped (completed)`: what the CLI prints for one service."""
    details: list[str] = []
    if status.get("pid"):
        details.append(f"pid {status['pid']}")
    if status.get("ready_check") and status.get("status") == "running":
        details.append(str(status.get("health")))
    reason = status.get("status_reason")
    if reason:
        details.append(reason)
    elif status.get("status") == "stopped" and status.get("completed"):
        details.append("completed")
    text = f"{status.get('name')}: {status.get('status')}"
    return f"{text} ({'; '.join(details)})" if details else text
