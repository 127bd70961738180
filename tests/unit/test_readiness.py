"""What ready_check results mean (pure), log-pattern matching, and exec check details."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from promenade_core.config.choices import ReadyType
from promenade_core.config.model import ReadyCheck
from promenade_core.supervise import execcheck
from promenade_core.supervise.clock import Clock
from promenade_core.supervise.descendants import STRAYS, Descendants
from promenade_core.supervise.health import (
    HEALTHY_INTERVAL_MAX,
    Tally,
    Verdict,
    check_delay,
    first_match,
    judge,
    restart_reason,
)
from promenade_core.supervise.procstats import ProcStat
from promenade_core.supervise.readiness import Readiness
from promenade_core.supervise.states import Health

H = Health


def run_checks(results: str, restart_after: int | None, timeout_at: int = 99,
               ) -> list[Verdict]:
    """Judge a run's checks in turn, as the check loop does: `results` is one letter per
    check (p: passed, f: failed); the run's timeout passes before check `timeout_at`."""
    tally, health, verdicts = Tally(), H.WAITING, []
    for i, letter in enumerate(results):
        verdict = judge(tally, health, letter == "p", i >= timeout_at, restart_after)
        tally, health = verdict.tally, verdict.health
        verdicts.append(verdict)
    return verdicts


def test_healthy_service_failing_n_checks_in_a_row_is_restarted_at_the_nth() -> None:
    verdicts = run_checks("pfff", restart_after=3)
    assert [v.restart for v in verdicts] == [False, False, False, True]
    assert [v.health for v in verdicts] == [H.HEALTHY, H.UNHEALTHY, H.UNHEALTHY, H.UNHEALTHY]
    assert verdicts[-1].tally.failures == 3


def test_a_pass_in_between_starts_the_count_again() -> None:
    verdicts = run_checks("pffpff" "f", restart_after=3)
    assert [v.restart for v in verdicts] == [False] * 6 + [True]


def test_failures_before_the_first_pass_never_restart() -> None:
    """A service slow to start must not be restarted for it: its timeout reports it."""
    verdicts = run_checks("f" * 20, restart_after=3, timeout_at=5)
    assert not any(v.restart for v in verdicts)
    assert [v.overdue for v in verdicts].count(True) == 1 and verdicts[5].overdue


def test_without_restart_after_failures_only_health_changes() -> None:
    verdicts = run_checks("p" + "f" * 50, restart_after=None)
    assert not any(v.restart for v in verdicts)
    assert verdicts[-1].health == H.UNHEALTHY


def test_restart_after_one_failure() -> None:
    assert [v.restart for v in run_checks("pf", restart_after=1)] == [False, True]


def test_waiting_stays_waiting_until_timeout_then_unhealthy_once() -> None:
    verdicts = run_checks("fffff", restart_after=None, timeout_at=3)
    assert [v.health for v in verdicts] == [H.WAITING] * 3 + [H.UNHEALTHY] * 2
    assert [v.overdue for v in verdicts] == [False, False, False, True, False]


def test_a_pass_after_being_reported_unhealthy_makes_it_healthy() -> None:
    verdicts = run_checks("ffp", restart_after=None, timeout_at=0)
    assert [v.health for v in verdicts] == [H.UNHEALTHY, H.UNHEALTHY, H.HEALTHY]
    assert verdicts[-1].tally == Tally(passes=1, failures=0, was_healthy=True)


def test_passes_in_a_row_set_the_pace_of_port_probes_only() -> None:
    http = ReadyCheck(ReadyType.HTTP, interval=1.0)
    exec_ = ReadyCheck(ReadyType.EXEC, interval=1.0, command="true")
    streaks = [v.tally.passes for v in run_checks("pppfp", None)]
    assert streaks == [1, 2, 3, 0, 1]
    assert [check_delay(http, n) for n in streaks] == [2.0, 4.0, 8.0, 1.0, 2.0]
    assert [check_delay(exec_, n) for n in streaks] == [1.0] * 5
    assert check_delay(http, 1000) == HEALTHY_INTERVAL_MAX


def test_restart_reason_names_the_streak_and_the_last_failure() -> None:
    detail = "GET http://127.0.0.1:5001/health: HTTP 500"
    assert restart_reason(3, detail) == (
        "unhealthy: 3 failed checks in a row (GET http://127.0.0.1:5001/health: HTTP 500)")
    assert restart_reason(1, "x") == "unhealthy: 1 failed check (x)"


VITE = re.compile(r"ready in \d+ ms")


def test_pattern_matches_a_line_once_colour_codes_are_stripped() -> None:
    """Vite colours the number: the raw line has escape codes inside "312"."""
    coloured = "  \x1b[32m\x1b[1mVITE\x1b[22m v5.0.0\x1b[39m  ready in \x1b[1m312\x1b[22m ms"
    assert VITE.search(coloured) is None
    assert first_match(VITE, ["starting", coloured, "ready in 9 ms"]) == (
        "  VITE v5.0.0  ready in 312 ms")


def test_pattern_not_found_in_other_lines() -> None:
    assert first_match(VITE, ["ready in soon ms", "\x1b[31mready\x1b[0m in 3 s", ""]) is None
    assert first_match(VITE, []) is None


class InstantClock(Clock):
    """Sleeps return at once, recording how long they were meant to be."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


class FakeService:
    """A service as a log check sees it (readiness.Checked without the config, which
    only an exec check reads), recording what it is told."""

    name = "vite"
    port = None

    def __init__(self) -> None:
        self.clock = InstantClock()
        self.health = H.WAITING
        self.said: list[tuple[str, str]] = []
        self.restarts: list[str] = []

    def set_health(self, value: Health) -> None:
        self.health = value

    def say(self, message: str, level: str = "info") -> None:
        self.said.append((level, message))

    def check_environment(self) -> dict[str, str]:
        return {}

    def restart_unhealthy(self, reason: str) -> None:
        self.restarts.append(reason)


def test_log_check_turns_healthy_on_the_first_matching_line_then_stops_matching() -> None:
    service = FakeService()
    readiness = Readiness(service, ReadyCheck(ReadyType.LOG, pattern=r"ready in \d+ ms"))
    readiness.lines(["compiling…", "\x1b[33mready in soon ms\x1b[0m"])
    assert service.health == H.WAITING
    readiness.lines(["\x1b[32mready in \x1b[1m88\x1b[0m ms"])
    assert service.health == H.HEALTHY
    service.health = H.UNHEALTHY   # no later line is looked at: the hot path is free
    readiness.lines(["ready in 1 ms"])
    assert service.health == H.UNHEALTHY


def test_log_check_reported_unhealthy_once_at_its_timeout_and_healthy_on_a_later_match(
        ) -> None:
    service = FakeService()
    readiness = Readiness(service, ReadyCheck(ReadyType.LOG, pattern=r"ready in \d+ ms",
                                              timeout=20))
    readiness.lines(["starting"])
    readiness._log_timeout()
    assert service.clock.slept == [20]
    assert service.health == H.UNHEALTHY
    assert service.said == [("warning", r"vite is not healthy after 20 s "
                                        r"(no output line matched 'ready in \d+ ms')")]
    readiness.lines(["ready in 4000 ms"])
    assert service.health == H.HEALTHY
    assert service.restarts == []


def test_log_check_that_matched_in_time_is_not_reported() -> None:
    service = FakeService()
    readiness = Readiness(service, ReadyCheck(ReadyType.LOG, pattern="listening"))
    readiness.lines(["listening on :3000"])
    readiness._log_timeout()
    assert service.health == H.HEALTHY and service.said == []


def test_stopped_log_check_ignores_lines() -> None:
    service = FakeService()
    readiness = Readiness(service, ReadyCheck(ReadyType.LOG, pattern="up"))
    readiness.stop()
    readiness.lines(["up"])
    assert service.health == H.WAITING


def test_last_stderr_line_is_safe_to_print() -> None:
    """Shown with `-v`: no escape sequence reaches the terminal, no inline secret is
    shown, and a long line is cut."""
    data = b"first\n\x1b[31merror:\x1b[0m PGPASSWORD=hunter2 refused\x1b]0;title\x07\n\n  \n"
    assert execcheck.last_line(data) == "error: PGPASSWORD=**** refused"
    assert execcheck.last_line(b"") == ""
    assert execcheck.last_line(b"\xff\xfe bad utf-8") == "\ufffd\ufffd bad utf-8"
    long = execcheck.last_line(b"x" * 10_000)
    assert len(long) == execcheck.SHOWN_MAX and long.endswith("…")


def test_exit_details() -> None:
    cmd = "pg_isready -h 127.0.0.1"
    assert execcheck.exit_detail(cmd, 0, "") == "exec 'pg_isready -h 127.0.0.1': exited with code 0"
    assert execcheck.exit_detail(cmd, 2, "no response") == (
        "exec 'pg_isready -h 127.0.0.1': exited with code 2: no response")
    assert execcheck.exit_detail(cmd, -signal.SIGSEGV, "") == (
        "exec 'pg_isready -h 127.0.0.1': killed by SIGSEGV")
    assert "s3cret" not in execcheck.exit_detail("curl http://me:s3cret@db/", 7, "")


@pytest.mark.parametrize(("exc", "why"), [
    (FileNotFoundError(2, "No such file or directory"), "No such file or directory"),
    (ValueError("embedded null byte"), "embedded null byte"),
])
def test_spawn_failure_is_a_failed_check_with_the_reason(exc: Exception, why: str) -> None:
    result = execcheck.spawn_failure("pg_isready", Path("/srv/db"), exc)
    assert not result.healthy
    assert result.detail == f"exec 'pg_isready': could not run /bin/sh in /srv/db: {why}"


def test_a_running_check_command_is_not_taken_for_an_orphan() -> None:
    """The manager's own child (pid 30, an exec check) while it runs, then a pid 30 that
    is a real orphan once the check is over and its number reused."""
    table: dict[int, ProcStat] = {}
    told: list[tuple[int, bool]] = []
    tracker = Descendants(5, "inst", lambda pgid, alive: told.append((pgid, alive)),
                          scan=lambda: dict(table))
    table[30] = ProcStat(pid=30, ppid=5, pgrp=30, ticks=0, starttime=1, rss_pages=0,
                         state="S")
    tracker.ignore(30)
    tracker.refresh()
    assert tracker.groups(STRAYS) == set() and told == []
    tracker.unignore(30)
    tracker.refresh()
    assert tracker.groups(STRAYS) == {30} and told == [(30, True)]
