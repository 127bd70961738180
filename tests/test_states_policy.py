"""The transition table and the restart decisions (pure, no processes)."""

from __future__ import annotations

import itertools

import pytest

from promenade_core.supervise.policy import BACKOFF_MAX, STABLE_AFTER, backoff, decide_exit
from promenade_core.supervise.states import (
    TRANSITIONS,
    Status,
    TransitionError,
    check_transition,
)

S = Status
ALLOWED = {
    (S.PENDING, S.STARTING), (S.PENDING, S.STOPPED), (S.PENDING, S.FAILED),
    (S.STARTING, S.RUNNING), (S.STARTING, S.FAILED), (S.STARTING, S.STOPPING),
    (S.STARTING, S.STOPPED),
    (S.RUNNING, S.STOPPING), (S.RUNNING, S.STOPPED), (S.RUNNING, S.FAILED),
    (S.STOPPING, S.STOPPED), (S.STOPPING, S.FAILED),
    (S.STOPPED, S.PENDING), (S.STOPPED, S.STARTING), (S.STOPPED, S.RETRYING),
    (S.FAILED, S.RETRYING), (S.FAILED, S.GAVE_UP), (S.FAILED, S.PENDING),
    (S.FAILED, S.STARTING), (S.FAILED, S.STOPPED),
    (S.RETRYING, S.STARTING), (S.RETRYING, S.STOPPED), (S.RETRYING, S.PENDING),
    (S.GAVE_UP, S.PENDING), (S.GAVE_UP, S.STARTING), (S.GAVE_UP, S.STOPPED),
}


@pytest.mark.parametrize("old,new", list(itertools.product(Status, Status)))
def test_every_pair_follows_the_table(old: Status, new: Status) -> None:
    if (old, new) in ALLOWED:
        check_transition(old, new)
    else:
        with pytest.raises(TransitionError, match=f"{old.value} -> {new.value}"):
            check_transition(old, new)


def test_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_backoff_doubles_to_30_s() -> None:
    assert [backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, BACKOFF_MAX, BACKOFF_MAX]


def test_stop_requested_is_stopped_whatever_the_code() -> None:
    d = decide_exit("always", -15, True, 3, 0, 1.0)
    assert d.status == S.STOPPED and d.retry_in is None


@pytest.mark.parametrize("policy", ["never", "once"])
def test_clean_exit_is_stopped_for_never_and_once(policy: str) -> None:
    d = decide_exit(policy, 0, False, 0, 0, 1.0)
    assert d.status == S.STOPPED and d.retry_in is None and not d.gave_up


def test_never_fails_without_retry() -> None:
    d = decide_exit("never", 1, False, 0, 0, 1.0)
    assert d.status == S.FAILED and d.retry_in is None and not d.gave_up


def test_once_retries_once_then_gives_up() -> None:
    first = decide_exit("once", 1, False, 0, 0, 0.1)
    assert first.status == S.FAILED and first.retry_in == 1.0
    second = decide_exit("once", 1, False, first.failures, 1, 0.1)
    assert second.retry_in is None and second.gave_up


def test_always_backs_off_and_restarts_clean_exits() -> None:
    failures, delays = 0, []
    for _ in range(7):
        d = decide_exit("always", 1, False, failures, 0, 0.1)
        failures = d.failures
        delays.append(d.retry_in)
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    clean = decide_exit("always", 0, False, 5, 0, 0.1)
    assert clean.status == S.STOPPED and clean.retry_in == 1.0


def test_stable_run_resets_the_backoff() -> None:
    d = decide_exit("always", 1, False, 6, 0, STABLE_AFTER + 1)
    assert d.retry_in == 1.0 and d.failures == 1
