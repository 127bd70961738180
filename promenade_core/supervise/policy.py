"""Restart decisions: pure functions of what happened and the clock.

"The process exited with 1 under policy `once` after 0 retries -> retry in 1 s" is
decided here, with no I/O, so the rules are testable with plain values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from promenade_core.config.choices import RestartPolicy
from promenade_core.supervise.states import Status

BACKOFF_MAX = 30.0
#: A run this long resets the back-off: the service had been fine.
STABLE_AFTER = 10.0


class ExitKind(enum.Enum):
    """Why the process ended, as the decision saw it: what the service reports."""

    REQUESTED = "requested"     # a stop was asked for: not a failure, never restarted
    CLEAN = "clean"             # exit code 0 under a policy that does not restart it
    FAILURE = "failure"         # anything the restart policy handles (retry, give up)


@dataclass(frozen=True)
class ExitDecision:
    status: Status              # STOPPED or FAILED, the state the exit leads to
    retry_in: float | None      # seconds before the next start, None for no restart
    gave_up: bool = False       # no more retries: FAILED then GAVE_UP
    failures: int = 0           # consecutive failures counted for the back-off
    kind: ExitKind = ExitKind.FAILURE


def backoff(failures: int) -> float:
    """1, 2, 4 … seconds, capped at 30, for the n-th consecutive failure (n >= 1)."""
    return min(BACKOFF_MAX, 2.0 ** max(0, failures - 1))


def decide_exit(
    policy: RestartPolicy,
    exit_code: int,
    stop_requested: bool,
    failures: int,
    retries_done: int,
    ran_for: float,
) -> ExitDecision:
    """What follows a process exit.

    `failures` counts consecutive failed runs before this one (for the back-off);
    `retries_done` counts policy restarts since the service was last started by hand
    (`once` allows one).
    """
    if stop_requested:
        return ExitDecision(Status.STOPPED, None, failures=failures, kind=ExitKind.REQUESTED)
    if ran_for >= STABLE_AFTER:
        failures = 0
    clean = exit_code == 0
    if clean and policy != RestartPolicy.ALWAYS:
        return ExitDecision(Status.STOPPED, None, failures=failures, kind=ExitKind.CLEAN)
    failures = 0 if clean else failures + 1
    status = Status.STOPPED if clean else Status.FAILED
    if policy == RestartPolicy.ALWAYS:
        return ExitDecision(status, backoff(max(failures, 1)) if failures else 1.0,
                            failures=failures)
    if policy == RestartPolicy.ONCE and retries_done < 1:
        return ExitDecision(status, 1.0, failures=failures)
    return ExitDecision(status, None, gave_up=policy == RestartPolicy.ONCE, failures=failures)
