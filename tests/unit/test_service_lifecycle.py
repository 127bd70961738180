"""`Service` driven through its whole life with a fake `ProcessOps` and a fake clock.

No process is started and nothing really sleeps: a "process" is a pair of pipes and an
exit result the test sets, signals go to a fake `killpg` that can fail with a chosen
errno, and back-off delays, stop grace and dependency timeouts pass when the test
advances the clock.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import gevent
import gevent.event
import pytest

from promenade_core.config.choices import Condition, ReadyType, RestartPolicy, StopSignal
from promenade_core.config.model import ReadyCheck, ServiceConfig
from promenade_core.supervise import service as service_module
from promenade_core.supervise.clock import Clock
from promenade_core.supervise.osproc import ProcessOps, Spawned
from promenade_core.supervise.policy import STABLE_AFTER
from promenade_core.supervise.service import Service
from promenade_core.supervise.states import Health, Status
from tests.support.fakes import FakeHost

pytestmark = pytest.mark.timeout(30)

STOP_TIMEOUT = 5.0   # stop_timeout's default


class FakeClock(Clock):
    """Time passes only when the test calls `advance`; sleepers wake when it is due."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.waits: list[float] = []
        self._due: list[tuple[float, gevent.event.Event]] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def _timer(self, seconds: float) -> gevent.event.Event:
        wake = gevent.event.Event()
        self._due.append((self.now + seconds, wake))
        return wake

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._timer(seconds).wait()

    def wait(self, event: gevent.event.Event, timeout: float) -> bool:
        self.waits.append(timeout)
        if not event.is_set() and timeout > 0:
            gevent.wait([event, self._timer(timeout)], count=1)
        return event.is_set()

    def wait_any(self, events: list[gevent.event.Event], timeout: float) -> None:
        self.waits.append(timeout)
        if not any(e.is_set() for e in events) and timeout > 0:
            gevent.wait([*events, self._timer(timeout)], count=1)

    @property
    def sleeping(self) -> int:
        return sum(not wake.is_set() for _, wake in self._due)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for due, wake in list(self._due):
            if due <= self.now:
                wake.set()
                self._due.remove((due, wake))
        for _ in range(5):
            gevent.idle()


class FakeProcess:
    """One run: its pipes, its exit, and whether it heeds SIGTERM."""

    def __init__(self, pid: int, ignores_term: bool) -> None:
        self.pid = pid
        self.ignores_term = ignores_term
        self.alive = True
        out_r, self._out_w = os.pipe()
        err_r, self._err_w = os.pipe()
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        popen = cast(subprocess.Popen[bytes],
                     type("Popen", (), {"pid": pid, "returncode": None})())
        self.spawned = Spawned(popen, out_r, err_r, gevent.event.AsyncResult())

    def exit(self, code: int) -> None:
        if self.alive:
            self.alive = False
            os.close(self._out_w)
            os.close(self._err_w)
            self.spawned.exited.set(code)


class FakeOps(ProcessOps):
    """Processes that exist only as `FakeProcess`es; `killpg` fails as told."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[FakeProcess] = []
        self.signals: list[int] = []
        #: signal -> errno the fake `killpg` fails with for that signal
        self.kill_errors: dict[int, int] = {}
        self.ignore_term = False
        self.spawn_error: OSError | None = None

    @property
    def last(self) -> FakeProcess:
        return self.runs[-1]

    def spawn(self, command: str, cwd: Path, env: dict[str, str], tty: bool) -> Spawned:
        if self.spawn_error is not None:
            raise self.spawn_error
        run = FakeProcess(4000 + len(self.runs), self.ignore_term)
        self.runs.append(run)
        return run.spawned

    def _killpg(self, pgid: int, sig: int) -> None:
        run = next(r for r in self.runs if r.pid == pgid)
        if sig:
            self.signals.append(sig)
        code = self.kill_errors.get(sig)
        if code == errno.ESRCH:
            run.exit(-sig)       # it died on its own just before the signal
        if code is not None:
            raise OSError(code, os.strerror(code))
        if not run.alive:
            raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))
        if sig == signal.SIGKILL or (sig == signal.SIGTERM and not run.ignores_term):
            run.exit(-sig)


def service_config(name: str = "api", policy: str = "never", **settings: Any) -> ServiceConfig:
    return replace(ServiceConfig(
        name=name, command="serve", directory=Path("/"), port=None, hostname=None,
        env={}, own_env={}, env_file=None, depends_on=(),
        restart_policy=RestartPolicy(policy), ready_check=None,
    ), **settings)


class Rig:
    def __init__(self, policy: str = "never", depends_on: tuple[str, ...] = (),
                 **settings: Any) -> None:
        self.ops = FakeOps()
        self.clock = FakeClock()
        self.host = FakeHost(self.ops)
        config = service_config("api", policy, depends_on=depends_on, **settings)
        self.service = Service(config, cast(Any, self.host), clock=self.clock)

    def dependency(self, name: str, policy: str = "never", **settings: Any) -> Service:
        """Another service on the same fake host, for `api` to depend on."""
        service = Service(service_config(name, policy, **settings), cast(Any, self.host),
                          clock=self.clock)
        self.host.deps[name] = service
        return service

    def command(self, name: str) -> gevent.event.AsyncResult:
        return self.service.submit(getattr(self.service, name))

    def start(self) -> None:
        self.command("start").get(timeout=10)

    def crash(self, code: int = 1) -> None:
        self.ops.last.exit(code)

    def said(self, level: str, text: str) -> bool:
        return (level, text) in self.host.messages


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the hub run the service's greenlets until `condition` holds."""
    with gevent.Timeout(timeout, AssertionError("condition not reached")):
        while not condition():
            gevent.idle()


def status_is(rig: Rig, status: Status) -> Callable[[], bool]:
    return lambda: rig.service.status == status


# -- start and exit -------------------------------------------------------------------

def test_start_runs_the_process_and_reports_it() -> None:
    rig = Rig()
    rig.start()
    assert rig.service.status == Status.RUNNING
    info = rig.service.describe(None)
    assert info["pid"] == 4000 and info["started_at"] == 1000.0
    assert rig.said("info", "api started (pid 4000)")
    rig.clock.advance(12.0)
    assert rig.service.describe(None)["uptime_seconds"] == 12.0


def test_every_message_names_its_service() -> None:
    """The dashboard found a message's service by parsing its prose."""
    rig = Rig("once")
    rig.start()
    rig.crash(1)
    until(status_is(rig, Status.RETRYING))
    rig.command("stop").get(timeout=10)
    assert len(rig.host.messages) >= 2 and rig.host.about == {"api"}


def test_crash_under_never_fails_without_retry() -> None:
    rig = Rig("never")
    rig.start()
    rig.crash(3)
    until(status_is(rig, Status.FAILED))
    assert rig.service.last_exit_code == 3 and rig.service.pid is None
    assert rig.said("error", "api exited with code 3")
    assert rig.clock.sleeps == [] and len(rig.ops.runs) == 1


def test_clean_exit_under_never_and_once_is_stopped() -> None:
    for policy in ("never", "once"):
        rig = Rig(policy)
        rig.start()
        rig.crash(0)
        until(status_is(rig, Status.STOPPED))
        assert rig.said("info", "api exited with code 0")
        assert rig.clock.sleeps == [] and rig.service.restart_count == 0


def test_killed_by_a_signal_is_named() -> None:
    rig = Rig("never")
    rig.start()
    rig.crash(-signal.SIGSEGV)
    until(status_is(rig, Status.FAILED))
    assert rig.said("error", "api was killed by SIGSEGV")
    assert rig.service.last_exit_code == -signal.SIGSEGV


def test_health_is_reset_to_unknown_when_the_process_exits() -> None:
    rig = Rig("never")
    rig.start()
    rig.crash(1)
    until(status_is(rig, Status.FAILED))
    assert rig.service.health == Health.UNKNOWN
    assert rig.service.describe(None)["health"] == "unknown"


# -- retries and back-off ---------------------------------------------------------------

def test_once_retries_after_one_second_then_gives_up() -> None:
    rig = Rig("once")
    rig.start()
    rig.crash(1)
    until(status_is(rig, Status.RETRYING))
    assert rig.clock.sleeps == [1.0]
    assert rig.said("warning", "api exited with code 1; retrying in 1 s")
    rig.clock.advance(1.0)
    until(status_is(rig, Status.RUNNING))
    assert rig.service.restart_count == 1 and len(rig.ops.runs) == 2
    rig.crash(1)
    until(status_is(rig, Status.GAVE_UP))
    assert rig.said("error", "api exited with code 1; gave up after 1 retry")
    assert rig.clock.sleeps == [1.0]


def test_no_restart_before_the_back_off_has_passed() -> None:
    rig = Rig("once")
    rig.start()
    rig.crash(1)
    until(status_is(rig, Status.RETRYING))
    rig.clock.advance(0.9)
    assert rig.service.status == Status.RETRYING and len(rig.ops.runs) == 1
    rig.clock.advance(0.1)
    until(status_is(rig, Status.RUNNING))
    assert len(rig.ops.runs) == 2


def test_always_backs_off_1_2_4_8_on_the_fake_clock() -> None:
    rig = Rig("always")
    rig.start()
    for delay in (1.0, 2.0, 4.0, 8.0):
        rig.crash(1)
        until(status_is(rig, Status.RETRYING))
        assert rig.clock.sleeps[-1] == delay
        assert rig.said("warning", f"api exited with code 1; retrying in {delay:g} s")
        rig.clock.advance(delay)
        until(status_is(rig, Status.RUNNING))
    assert rig.clock.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert rig.service.restart_count == 4


def test_always_restarts_a_clean_exit_after_one_second() -> None:
    rig = Rig("always")
    rig.start()
    rig.crash(0)
    until(status_is(rig, Status.RETRYING))
    assert Status.STOPPED in rig.host.changes
    assert rig.clock.sleeps == [1.0]
    rig.clock.advance(1.0)
    until(status_is(rig, Status.RUNNING))


def test_a_stable_run_resets_the_back_off() -> None:
    rig = Rig("always")
    rig.start()
    for delay in (1.0, 2.0, 4.0):
        rig.crash(1)
        until(status_is(rig, Status.RETRYING))
        rig.clock.advance(delay)
        until(status_is(rig, Status.RUNNING))
    rig.clock.advance(STABLE_AFTER)      # ran long enough to count as fine
    rig.crash(1)
    until(status_is(rig, Status.RETRYING))
    assert rig.clock.sleeps[-1] == 1.0


def test_spawn_failure_counts_for_the_back_off() -> None:
    rig = Rig("always")
    rig.ops.spawn_error = OSError(errno.EMFILE, os.strerror(errno.EMFILE))
    rig.start()
    assert rig.service.status == Status.RETRYING
    assert rig.said("error", "api could not start: spawning 'serve' failed: "
                    + os.strerror(errno.EMFILE))
    rig.clock.advance(1.0)
    until(lambda: len(rig.clock.sleeps) == 2)
    assert rig.clock.sleeps == [1.0, 2.0]


def test_stop_during_the_back_off_cancels_the_retry() -> None:
    rig = Rig("always")
    rig.start()
    rig.crash(1)
    until(status_is(rig, Status.RETRYING))
    rig.command("stop").get(timeout=10)
    assert rig.service.status == Status.STOPPED
    rig.clock.advance(60.0)
    assert rig.service.status == Status.STOPPED and len(rig.ops.runs) == 1


# -- stop ---------------------------------------------------------------------------

def test_stop_sends_sigterm_and_is_not_a_failure_even_under_always() -> None:
    rig = Rig("always")
    rig.start()
    rig.command("stop").get(timeout=10)
    assert rig.service.status == Status.STOPPED
    assert rig.ops.signals == [signal.SIGTERM]
    assert rig.service.last_exit_code == -signal.SIGTERM
    assert rig.said("info", "api stopped") and rig.clock.sleeps == []
    assert Status.STOPPING in rig.host.changes


def test_term_ignoring_child_gets_sigkill_after_the_grace() -> None:
    rig = Rig()
    rig.ops.ignore_term = True
    rig.start()
    stop = rig.command("stop")
    until(lambda: rig.clock.sleeping == 1)
    assert rig.service.status == Status.STOPPING
    rig.clock.advance(STOP_TIMEOUT - 0.1)
    until(lambda: rig.clock.sleeping == 1)
    assert rig.ops.signals == [signal.SIGTERM]        # not killed before the grace
    rig.clock.advance(0.1)
    stop.get(timeout=10)
    assert rig.ops.signals == [signal.SIGTERM, signal.SIGKILL]
    assert rig.said("warning", "api did not stop within 5 s of SIGTERM; sending SIGKILL")
    assert rig.service.status == Status.STOPPED
    assert rig.service.last_exit_code == -signal.SIGKILL


def test_sigterm_refused_with_eperm_counts_as_delivered_then_sigkill() -> None:
    """EPERM: part of the group is not ours to signal, but the group is alive."""
    rig = Rig()
    rig.ops.kill_errors[signal.SIGTERM] = errno.EPERM
    rig.start()
    stop = rig.command("stop")
    until(lambda: rig.clock.sleeping == 1)
    rig.clock.advance(STOP_TIMEOUT)
    stop.get(timeout=10)
    assert rig.ops.signals == [signal.SIGTERM, signal.SIGKILL]
    assert rig.service.status == Status.STOPPED


def test_group_already_gone_at_sigterm_stops_without_sigkill() -> None:
    """ESRCH: the process died just before the stop's signal; nothing is left to kill."""
    rig = Rig("always")
    rig.ops.kill_errors[signal.SIGTERM] = errno.ESRCH
    rig.start()
    rig.command("stop").get(timeout=10)
    assert rig.ops.signals == [signal.SIGTERM]
    assert rig.service.status == Status.STOPPED
    assert rig.said("info", "api stopped") and rig.clock.sleeps == []


def test_restart_stops_then_starts_a_new_run() -> None:
    rig = Rig()
    rig.start()
    rig.command("restart").get(timeout=10)
    assert rig.service.status == Status.RUNNING
    assert [r.alive for r in rig.ops.runs] == [False, True]
    assert rig.service.restart_count == 0      # only the policy's restarts count


# -- dependencies -----------------------------------------------------------------------

#: A check that never probes (tcp without a port): health stays `waiting` until a
#: test sets it.
NEVER_PROBED = ReadyCheck(ReadyType.TCP)


def test_a_running_dependency_is_not_waited_for() -> None:
    rig = Rig(depends_on=("db",))
    db = rig.dependency("db")
    db.submit(db.start).get(timeout=5)
    rig.start()
    assert rig.service.status == Status.RUNNING and rig.clock.waits == []


def test_starting_a_service_starts_its_stopped_dependency_first() -> None:
    rig = Rig(depends_on=("db",))
    db = rig.dependency("db")
    rig.start()
    until(status_is(rig, Status.RUNNING))
    assert db.status == Status.RUNNING
    assert [r.pid for r in rig.ops.runs] == [4000, 4001]   # db first


def test_start_waits_for_a_healthy_dependency_and_says_so() -> None:
    rig = Rig(depends_on=("db",))
    db = rig.dependency("db", ready_check=NEVER_PROBED)
    rig.start()
    until(lambda: db.status == Status.RUNNING and rig.service.status == Status.PENDING)
    assert rig.said("info", "api waiting for db (healthy)")
    assert rig.service.describe(None)["status_reason"] == "waiting for db (healthy)"
    assert db.describe(None)["status_reason"] == "waiting for its ready_check (tcp)"
    rig.clock.advance(30.0)
    db.set_health(Health.HEALTHY)
    until(status_is(rig, Status.RUNNING))
    assert rig.service.describe(None)["status_reason"] is None
    assert not any(level == "warning" for level, _ in rig.host.messages)


def test_a_list_dependency_never_ready_times_out_and_starts_anyway() -> None:
    rig = Rig(depends_on=("db",))
    rig.host.timeout = 20.0
    rig.dependency("db", ready_check=NEVER_PROBED)
    rig.start()
    rig.clock.advance(19.0)
    assert rig.service.status == Status.PENDING
    rig.clock.advance(1.0)
    until(status_is(rig, Status.RUNNING))
    assert rig.said("warning", "api: db is not healthy after 20 s; starting anyway")


def test_a_written_condition_never_met_fails_at_the_timeout() -> None:
    rig = Rig(depends_on=("db",), conditions={"db": Condition.HEALTHY})
    rig.host.timeout = 20.0
    rig.dependency("db", ready_check=NEVER_PROBED)
    rig.start()
    rig.clock.advance(20.0)
    until(status_is(rig, Status.FAILED))
    assert rig.service.reason == "db is not healthy after 20 s" and rig.ops.runs[1:] == []


def test_dependencies_share_one_deadline() -> None:
    rig = Rig(depends_on=("db", "cache"))
    rig.dependency("db", ready_check=NEVER_PROBED)
    rig.dependency("cache", ready_check=NEVER_PROBED)
    rig.start()
    until(lambda: rig.service.reason == "waiting for db (healthy), cache (healthy)")
    rig.clock.advance(60.0)
    until(status_is(rig, Status.RUNNING))
    assert rig.said("warning", "api: cache is not healthy after 60 s; starting anyway")


def test_a_task_must_complete_before_its_dependant_starts() -> None:
    rig = Rig(depends_on=("migrate",), conditions={
        "migrate": Condition.COMPLETED_SUCCESSFULLY})
    migrate = rig.dependency("migrate")
    rig.start()
    until(lambda: migrate.status == Status.RUNNING)
    assert rig.service.status == Status.PENDING
    assert rig.service.reason == "waiting for migrate (completed successfully)"
    rig.ops.runs[0].exit(0)
    until(status_is(rig, Status.RUNNING))
    assert migrate.status == Status.STOPPED and migrate.completed
    assert migrate.describe(None)["status_reason"] == "completed: exited with code 0"
    assert migrate.last_exit_code == 0


def test_a_failed_task_fails_its_dependant_with_the_reason() -> None:
    rig = Rig(depends_on=("migrate",), conditions={
        "migrate": Condition.COMPLETED_SUCCESSFULLY})
    migrate = rig.dependency("migrate")
    rig.start()
    until(lambda: migrate.status == Status.RUNNING)
    rig.ops.runs[0].exit(1)
    until(status_is(rig, Status.FAILED))
    assert rig.service.reason == "dependency migrate exited with code 1"
    assert rig.said("error", "api not started: dependency migrate exited with code 1")
    assert len(rig.ops.runs) == 1    # api never ran


def test_a_retried_task_is_waited_for_until_it_gives_up() -> None:
    rig = Rig(depends_on=("migrate",), conditions={
        "migrate": Condition.COMPLETED_SUCCESSFULLY})
    migrate = rig.dependency("migrate", policy="once")
    rig.start()
    until(lambda: migrate.status == Status.RUNNING)
    rig.ops.runs[0].exit(3)
    until(lambda: migrate.status == Status.RETRYING)
    assert rig.service.status == Status.PENDING   # a retry may still succeed
    rig.clock.advance(1.0)
    until(lambda: migrate.status == Status.RUNNING)
    rig.ops.runs[1].exit(3)
    until(status_is(rig, Status.FAILED))
    assert migrate.status == Status.GAVE_UP
    assert migrate.reason == "exited with code 3; gave up after 1 retry"
    assert rig.service.reason == "dependency migrate exited with code 3; gave up after 1 retry"


def test_a_failure_propagates_down_a_chain() -> None:
    rig = Rig(depends_on=("b",), conditions={"b": Condition.STARTED})
    a = rig.dependency("a", ready_check=NEVER_PROBED)
    b = rig.dependency("b", depends_on=("a",), conditions={"a": Condition.HEALTHY})
    rig.start()
    until(lambda: a.status == Status.RUNNING)
    rig.ops.runs[0].exit(2)
    until(status_is(rig, Status.FAILED))
    assert b.reason == "dependency a exited with code 2"
    assert rig.service.reason == "dependency b failed (dependency a exited with code 2)"


def test_stop_while_waiting_for_a_dependency() -> None:
    rig = Rig(depends_on=("db",))
    rig.dependency("db", ready_check=NEVER_PROBED)
    rig.start()
    rig.command("stop").get(timeout=10)
    assert rig.service.status == Status.STOPPED
    assert rig.service.reason == "stopped on request"
    rig.clock.advance(120.0)
    assert rig.service.status == Status.STOPPED


def test_reasons_of_a_failing_service() -> None:
    rig = Rig(policy="once")
    rig.start()
    rig.crash(3)
    until(status_is(rig, Status.RETRYING))
    assert rig.service.reason == "exited with code 3; retrying in 1 s"
    rig.clock.advance(1.0)
    until(lambda: len(rig.ops.runs) == 2)
    rig.crash(3)
    until(status_is(rig, Status.GAVE_UP))
    assert rig.service.describe(None)["status_reason"] == \
        "exited with code 3; gave up after 1 retry"


def test_autostart_false_is_stopped_with_its_reason() -> None:
    rig = Rig(autostart=False)
    doc = rig.service.describe(None)
    assert (doc["status"], doc["autostart"]) == ("stopped", False)
    assert doc["status_reason"] == "autostart: false; start it by hand"
    rig.start()
    assert rig.service.status == Status.RUNNING and rig.service.reason is None


# -- stop control -----------------------------------------------------------------------

def test_stop_signal_and_stop_timeout_are_used() -> None:
    rig = Rig(stop_signal=StopSignal.INT, stop_timeout=2.0)
    rig.start()
    rig.ops.last.ignores_term = True
    stopping = rig.command("stop")
    until(lambda: signal.SIGINT in rig.ops.signals)
    rig.clock.advance(1.9)
    assert signal.SIGKILL not in rig.ops.signals
    rig.clock.advance(0.2)
    stopping.get(timeout=5)
    assert rig.ops.signals[:2] == [signal.SIGINT, signal.SIGKILL]
    assert rig.said("warning", "api did not stop within 2 s of SIGINT; sending SIGKILL")


# -- port: auto -----------------------------------------------------------------------

@pytest.fixture
def ports_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """The port preflight without sockets: every port is free."""
    monkeypatch.setattr(service_module.ports, "port_in_use", lambda port: False)


def test_an_auto_port_is_picked_at_each_start_from_the_last(ports_free: None) -> None:
    """Every start asks the host again, naming the last run's port (which the host keeps
    when still free); the status object shows the run's port and that it is automatic."""
    rig = Rig("once", port_auto=True)
    rig.host.auto_ports = [41000, 41000, 42000]
    assert (rig.service.port, rig.service.describe(None)["port_auto"]) == (None, True)
    rig.start()
    assert rig.service.port == 41000 and rig.service.describe(None)["port"] == 41000
    assert rig.said("info", "api started (pid 4000, port 41000 (auto))")
    rig.crash(1)                               # the policy's retry is a start too
    until(status_is(rig, Status.RETRYING))
    assert rig.service.port == 41000           # a stopped service still shows its last
    rig.clock.advance(1.0)
    until(status_is(rig, Status.RUNNING))
    rig.command("stop").get(timeout=10)
    rig.start()
    assert rig.host.auto_asked == [None, 41000, 41000]
    assert rig.service.port == 42000


def test_no_free_port_fails_the_start_and_says_why(ports_free: None) -> None:
    rig = Rig(port_auto=True)
    rig.start()
    assert rig.service.status == Status.FAILED and not rig.ops.runs
    assert rig.service.reason == "could not start: no free loopback port found for port: auto"
