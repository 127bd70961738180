"""supervise/waiting.py: when a service counts as up, failed, not started or still on
its way, for `promenade wait`, the bus's `wait`, GET /api/wait and `start SERVICE`."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest

from promenade_core.bus.protocol import DEFAULT_WAIT, MAX_WAIT, StatusObject
from promenade_core.supervise import waiting
from promenade_core.supervise.waiting import Verdict


def status(name: str = "api", state: str = "running", health: str = "unknown",
           **extra: Any) -> StatusObject:
    doc: dict[str, Any] = {"name": name, "status": state, "health": health, "pid": None,
                           "status_reason": None, "autostart": True, "completed": False,
                           "ready_check": None, **extra}
    return cast(StatusObject, doc)


UP, PENDING, FAILED, NOT_STARTED = (Verdict.UP, Verdict.PENDING, Verdict.FAILED,
                                    Verdict.NOT_STARTED)


@pytest.mark.parametrize(("doc", "verdict"), [
    # running: up unless a ready_check has not passed yet
    (status(state="running"), UP),
    (status(state="running", health="healthy", ready_check="http"), UP),
    (status(state="running", health="waiting", ready_check="http"), PENDING),
    (status(state="running", health="unknown", ready_check="log"), PENDING),
    (status(state="running", health="unhealthy", ready_check="exec"), PENDING),
    # a service without a check is up whatever health says
    (status(state="running", health="unhealthy"), UP),
    # on the way
    (status(state="pending", status_reason="waiting for db (healthy)"), PENDING),
    (status(state="starting"), PENDING),
    (status(state="retrying", status_reason="exited with code 1; retrying in 1 s"), PENDING),
    (status(state="stopping"), PENDING),
    # given up
    (status(state="failed", status_reason="dependency migrate exited with code 1"), FAILED),
    (status(state="gave_up", status_reason="exited with code 3; gave up after 1 retry"),
     FAILED),
    # stopped: a task that completed, or nobody started it
    (status(state="stopped", completed=True, last_exit_code=0), UP),
    (status(state="stopped", completed=False, status_reason="not started (autostart: false)"),
     NOT_STARTED),
    (status(state="stopped", completed=False), NOT_STARTED),
    # a status a newer manager may add is waited on, not failed
    (status(state="hibernating"), PENDING),
])
def test_judge(doc: StatusObject, verdict: Verdict) -> None:
    assert waiting.judge(doc) is verdict


def test_a_completed_task_restarted_is_judged_by_its_status_again() -> None:
    assert waiting.judge(status(state="starting", completed=True)) is PENDING
    assert waiting.judge(status(state="failed", completed=True)) is FAILED


def test_after_start_counts_retrying_as_failed() -> None:
    """`promenade start api` must not report a service that crashed at once as fine."""
    assert waiting.after_start(status(state="retrying")) is FAILED
    assert waiting.after_start(status(state="running")) is UP
    assert waiting.after_start(status(state="pending")) is PENDING
    # an `always` service that ended cleanly and is about to run again is not a crash
    assert waiting.after_start(status(state="retrying", completed=True)) is PENDING


def test_assess_everything_up() -> None:
    statuses = {"db": status("db"), "migrate": status("migrate", "stopped", completed=True)}
    progress = waiting.assess(["db", "migrate"], statuses)
    assert progress.done and not progress.failed and not progress.waiting
    result = waiting.result(progress, statuses, ["db", "migrate"])
    assert result == {"ok": True, "timed_out": False, "failed": [], "waiting": [],
                      "services": statuses}


def test_assess_one_failed_ends_the_wait_even_while_others_wait() -> None:
    statuses = {"api": status("api", "pending", status_reason="waiting for migrate "
                              "(completed_successfully)"),
                "migrate": status("migrate", "failed", status_reason="exited with code 1")}
    progress = waiting.assess(["api", "migrate"], statuses)
    assert progress.done
    assert progress.failed == ({"service": "migrate", "status": "failed",
                                "status_reason": "exited with code 1", "verdict": "failed"},)
    result = waiting.result(progress, statuses, ["api", "migrate"], timed_out=True)
    assert (result["ok"], result["timed_out"]) == (False, False)
    assert [e["service"] for e in result["waiting"]] == ["api"]


def test_assess_not_started_is_a_failure() -> None:
    statuses = {"worker": status("worker", "stopped", autostart=False)}
    progress = waiting.assess(["worker"], statuses)
    assert progress.failed[0]["verdict"] == "not_started"


def test_assess_still_waiting_then_timed_out() -> None:
    statuses = {"api": status("api", "running", "waiting", ready_check="http"),
                "db": status("db")}
    progress = waiting.assess(["api", "db"], statuses)
    assert not progress.done
    assert [e["service"] for e in progress.waiting] == ["api"]
    assert waiting.result(progress, statuses, ["api", "db"])["timed_out"] is False
    result = waiting.result(progress, statuses, ["api", "db"], timed_out=True)
    assert (result["ok"], result["timed_out"], result["failed"]) == (False, True, [])


def test_a_service_removed_during_a_wait_fails_it() -> None:
    progress = waiting.assess(["gone"], {})
    assert progress.failed == ({"service": "gone", "status": "removed",
                                "status_reason": "no longer in the config",
                                "verdict": "failed"},)
    assert waiting.result(progress, {}, ["gone"])["services"] == {}


def test_result_lists_only_the_named_services() -> None:
    statuses = {"api": status("api"), "other": status("other", "failed")}
    progress = waiting.assess(["api"], statuses)
    assert waiting.result(progress, statuses, ["api"])["services"] == {"api": statuses["api"]}


@pytest.mark.parametrize(("entry", "text"), [
    ({"service": "api", "status": "gave_up", "status_reason":
      "exited with code 3; gave up after 1 retry", "verdict": "failed"},
     "api: gave_up (exited with code 3; gave up after 1 retry)"),
    ({"service": "api", "status": "starting", "status_reason": None, "verdict": "pending"},
     "api: starting"),
    ({"service": "tool", "status": "stopped", "status_reason": "autostart is false",
      "verdict": "not_started"},
     "tool: stopped (autostart is false); start it with `promenade start tool`"),
    ({"service": "tool", "status": "stopped", "status_reason": None,
      "verdict": "not_started"},
     "tool: stopped (not started); start it with `promenade start tool`"),
])
def test_explain(entry: Any, text: str) -> None:
    assert waiting.explain(entry) == text


@pytest.mark.parametrize(("doc", "line"), [
    (status(pid=123), "api: running (pid 123)"),
    (status(pid=123, ready_check="http", health="healthy"), "api: running (pid 123; healthy)"),
    (status(state="failed", status_reason="exited with code 3; gave up after 1 retry"),
     "api: failed (exited with code 3; gave up after 1 retry)"),
    (status("migrate", "stopped", completed=True), "migrate: stopped (completed)"),
    (status("migrate", "stopped", completed=True, status_reason="exited with code 0"),
     "migrate: stopped (exited with code 0)"),
    (status(state="stopped"), "api: stopped"),
])
def test_status_line(doc: StatusObject, line: str) -> None:
    assert waiting.status_line(doc) == line


@pytest.mark.parametrize("value", [1, 0.5, 30, MAX_WAIT])
def test_wait_timeout_takes_positive_numbers_up_to_the_cap(value: float) -> None:
    assert waiting.wait_timeout(value) == float(value)


def test_wait_timeout_defaults() -> None:
    assert waiting.wait_timeout(None) == DEFAULT_WAIT == 120.0


@pytest.mark.parametrize("value", [0, -1, MAX_WAIT + 1, math.inf, math.nan, True, "30",
                                   [30], {"s": 1}])
def test_wait_timeout_refuses_the_rest(value: Any) -> None:
    with pytest.raises(ValueError, match="timeout must be"):
        waiting.wait_timeout(value)


@pytest.mark.parametrize(("doc", "proven"), [
    (status(uptime_seconds=0.3), False),          # may die a second from now
    (status(uptime_seconds=1.5), True),
    (status(uptime_seconds=None), False),
    (status(health="healthy", ready_check="http", uptime_seconds=0.1), True),
    (status("migrate", "stopped", completed=True), True),
    (status(state="retrying"), False),
    (status(state="starting"), False),
])
def test_proven_up(doc: StatusObject, proven: bool) -> None:
    assert waiting.proven_up(doc, steady=1.5) is proven
