"""Whether a dependency satisfies the condition a service waits for: a pure judgement
of the dependency's state, so every case is testable with plain values.

Three answers: MET (start now), WAIT (it may still get there) and NEVER (it failed in a
way that cannot satisfy the condition: the waiting service fails, saying why). The list
form of `depends_on` (condition None) keeps its old meaning, "running, and healthy when
it has a ready_check", and never answers NEVER: after `dependency_timeout` the service
starts anyway, as it always did.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from promenade_core.config.choices import Condition
from promenade_core.supervise.states import Health, Status


class Need(enum.Enum):
    MET = "met"
    WAIT = "wait"
    NEVER = "never"


@dataclass(frozen=True)
class DependencyState:
    """What a waiting service sees of one dependency."""

    name: str
    status: Status
    health: Health
    has_ready_check: bool
    #: a run in this manager's lifetime exited with code 0
    completed: bool
    #: the last exit was a failure that the restart policy will retry
    will_retry: bool
    reason: str | None


@dataclass(frozen=True)
class Verdict:
    need: Need
    #: for WAIT, what is awaited (`db (healthy)`); for NEVER, why it cannot be
    #: (`dependency migrate exited with code 1`)
    detail: str
    #: the awaited condition in words (`healthy`), for WAIT
    label: str = ""


def label(condition: Condition | None, dep: DependencyState) -> str:
    """How the awaited condition reads: `healthy`, `running`, `completed successfully`."""
    if condition is None:
        return "healthy" if dep.has_ready_check else "running"
    if condition is Condition.STARTED:
        return "started"
    return str(condition.value).replace("_", " ")


def judge(condition: Condition | None, dep: DependencyState) -> Verdict:
    """Where `dep` stands against `condition`."""
    awaited = label(condition, dep)
    waiting = Verdict(Need.WAIT, f"{dep.name} ({awaited})", awaited)
    running = dep.status is Status.RUNNING
    healthy = running and dep.health is Health.HEALTHY
    if condition is None:
        up = healthy if dep.has_ready_check else running or dep.completed
        return Verdict(Need.MET, "") if up else waiting
    if condition is Condition.STARTED and (running or dep.completed):
        return Verdict(Need.MET, "")
    if condition is Condition.HEALTHY and healthy:
        return Verdict(Need.MET, "")
    if condition is Condition.COMPLETED_SUCCESSFULLY and dep.completed and not running:
        return Verdict(Need.MET, "")
    failure = _failure(condition, dep)
    return Verdict(Need.NEVER, failure) if failure else waiting


def _failure(condition: Condition, dep: DependencyState) -> str | None:
    """Why `dep` can no longer satisfy `condition`, or None while it still may."""
    if dep.status is Status.GAVE_UP or (dep.status is Status.FAILED and not dep.will_retry):
        why = dep.reason or "failed"
        if why.startswith("dependency "):   # it never ran: say whose failure it was
            return f"dependency {dep.name} failed ({why})"
        return f"dependency {dep.name} {why}"
    if (condition is Condition.HEALTHY and dep.status is Status.STOPPED and dep.completed
            and not dep.will_retry):
        # it ran to completion and will not run again by itself: never healthy now
        return f"dependency {dep.name} exited with code 0 before it was healthy"
    return None


def waiting_reason(details: list[str]) -> str:
    """`waiting for db (healthy), migrate (completed successfully)`."""
    return "waiting for " + ", ".join(details)
