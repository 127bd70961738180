"""Service states, health states and the one table of allowed transitions.

Standard library only: the web process, the CLI and tests import it freely.
"""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    RETRYING = "retrying"
    GAVE_UP = "gave_up"


class Health(str, enum.Enum):
    UNKNOWN = "unknown"
    WAITING = "waiting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


S = Status

#: Every allowed change of status. Anything else is a bug and raises.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    # waiting for dependencies, then spawned
    S.PENDING: frozenset({S.STARTING, S.STOPPED, S.FAILED}),
    # spawned; running once the process is up, failed when it could not start
    S.STARTING: frozenset({S.RUNNING, S.FAILED, S.STOPPING, S.STOPPED}),
    S.RUNNING: frozenset({S.STOPPING, S.STOPPED, S.FAILED}),
    S.STOPPING: frozenset({S.STOPPED, S.FAILED}),
    # a stopped service can be started again by hand or by a restart
    # `always` restarts after a clean exit too
    S.STOPPED: frozenset({S.PENDING, S.STARTING, S.RETRYING}),
    S.FAILED: frozenset({S.RETRYING, S.GAVE_UP, S.PENDING, S.STARTING, S.STOPPED}),
    # a retry is a start after a back-off delay
    S.RETRYING: frozenset({S.STARTING, S.STOPPED, S.PENDING}),
    S.GAVE_UP: frozenset({S.PENDING, S.STARTING, S.STOPPED}),
}

#: States in which a process of the service may be alive.
ALIVE = frozenset({S.STARTING, S.RUNNING, S.STOPPING})
#: States from which a start request spawns the service again.
STARTABLE = frozenset({S.STOPPED, S.FAILED, S.GAVE_UP})


class TransitionError(RuntimeError):
    """A change of status the table does not allow: a bug in the supervisor."""


def check_transition(old: Status, new: Status) -> None:
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"{old.value} -> {new.value} is not an allowed transition")
