"""dependencies.judge: every condition against every state a dependency can be in."""

from __future__ import annotations

import pytest

from promenade_core.config.choices import Condition
from promenade_core.supervise.dependencies import DependencyState, Need, judge, label
from promenade_core.supervise.states import Health, Status

S, H = Status, Health
STARTED, HEALTHY, DONE = (Condition.STARTED, Condition.HEALTHY,
                          Condition.COMPLETED_SUCCESSFULLY)


def dep(status: Status, health: Health = H.UNKNOWN, check: bool = False,
        completed: bool = False, will_retry: bool = False,
        reason: str | None = None) -> DependencyState:
    return DependencyState("db", status, health, check, completed, will_retry, reason)


@pytest.mark.parametrize(("condition", "state", "need"), [
    (None, dep(S.RUNNING), Need.MET),
    (None, dep(S.RUNNING, H.WAITING, check=True), Need.WAIT),
    (None, dep(S.RUNNING, H.HEALTHY, check=True), Need.MET),
    (None, dep(S.STOPPED, completed=True), Need.MET),
    (None, dep(S.GAVE_UP, reason="exited with code 1"), Need.WAIT),   # list form: never NEVER
    (STARTED, dep(S.PENDING), Need.WAIT),
    (STARTED, dep(S.STARTING), Need.WAIT),
    (STARTED, dep(S.RUNNING, H.WAITING, check=True), Need.MET),
    (STARTED, dep(S.FAILED, will_retry=True), Need.WAIT),
    (STARTED, dep(S.RETRYING), Need.WAIT),
    (STARTED, dep(S.FAILED, reason="exited with code 2"), Need.NEVER),
    (HEALTHY, dep(S.RUNNING, H.UNHEALTHY, check=True), Need.WAIT),
    (HEALTHY, dep(S.RUNNING, H.HEALTHY, check=True), Need.MET),
    (HEALTHY, dep(S.STOPPED, completed=True, check=True), Need.NEVER),
    (HEALTHY, dep(S.GAVE_UP, check=True, reason="x"), Need.NEVER),
    (DONE, dep(S.RUNNING), Need.WAIT),
    (DONE, dep(S.STOPPED), Need.WAIT),          # not run yet: it is being started
    (DONE, dep(S.STOPPED, completed=True), Need.MET),
    (DONE, dep(S.FAILED, will_retry=True), Need.WAIT),
    (DONE, dep(S.FAILED, reason="exited with code 1"), Need.NEVER),
])
def test_judge(condition: Condition | None, state: DependencyState, need: Need) -> None:
    assert judge(condition, state).need is need


def test_details_name_the_dependency_and_the_failure() -> None:
    assert judge(HEALTHY, dep(S.RUNNING, H.WAITING, check=True)).detail == "db (healthy)"
    assert judge(DONE, dep(S.RUNNING)).detail == "db (completed successfully)"
    assert judge(None, dep(S.PENDING)).detail == "db (running)"
    assert judge(DONE, dep(S.FAILED, reason="exited with code 1")).detail == \
        "dependency db exited with code 1"
    assert judge(STARTED, dep(S.FAILED, reason="dependency x exited with code 1")).detail \
        == "dependency db failed (dependency x exited with code 1)"
    assert label(None, dep(S.PENDING, check=True)) == "healthy"
