"""A service's ready_check while it runs: the checks, and what they mean for its health.

The service starts one `Readiness` per run (after its process is up) and stops it when
the process exits or the check is edited; `lines` sees every output line. http, tcp and
exec checks run in a greenlet, one after another, `health.judge` deciding what each
result means (health, the "not healthy" warning, `restart_after_failures`); a log check
only reads output, with a greenlet that reports it not healthy at its timeout. The
service stays the one place health changes (`set_health`) and restarts happen
(`restart_unhealthy`, a queued command).
"""

from __future__ import annotations

import re
from typing import Protocol

import gevent

from promenade_core.bus.protocol import Level
from promenade_core.config.choices import ReadyType
from promenade_core.config.model import ReadyCheck, ServiceConfig
from promenade_core.supervise import execcheck, health
from promenade_core.supervise.children import SideCommand
from promenade_core.supervise.clock import Clock
from promenade_core.supervise.states import Health

#: How long `stop` waits for the checking greenlet to end (it never blocks: a running
#: exec command is killed first).
STOP_WAIT = 1.0


class Checked(Protocol):
    """What a readiness check needs from its service."""

    name: str
    clock: Clock
    health: Health
    config: ServiceConfig   # its directory: where an exec check runs

    @property
    def port(self) -> int | None: ...
    def set_health(self, value: Health) -> None: ...
    def say(self, message: str, level: Level = "info") -> None: ...
    def check_environment(self) -> dict[str, str]: ...
    def restart_unhealthy(self, reason: str) -> None: ...
    def own_child(self, pid: int, alive: bool) -> None: ...


class Readiness:
    """One run's ready_check."""

    def __init__(self, service: Checked, check: ReadyCheck) -> None:
        self.service = service
        self.check = check
        self._greenlet: gevent.Greenlet | None = None
        #: the exec command running now, killed by `stop`
        self._run: SideCommand | None = None
        #: a log check's pattern, compiled once per run; None once a line matched (or
        #: for other types), so `lines` costs nothing more on the hot path
        self._pattern: re.Pattern[str] | None = (
            re.compile(check.pattern)
            if check.type == ReadyType.LOG and check.pattern is not None else None)

    def start(self) -> None:
        if self.check.type == ReadyType.LOG:
            self._greenlet = gevent.spawn(self._log_timeout)
        elif not self.check.needs_port:
            self._greenlet = gevent.spawn(self._check_loop, None)
        elif self.service.port is not None:
            self._greenlet = gevent.spawn(self._check_loop, self.service.port)

    def stop(self) -> None:
        """End the checks; a command still running is killed (its whole group) now,
        before this returns, even at shutdown."""
        self._pattern = None
        if self._run is not None:
            self._run.close()
        if self._greenlet is not None:
            self._greenlet.kill(timeout=STOP_WAIT)
            self._greenlet = None

    def lines(self, lines: list[str]) -> None:
        """Every output line of the run, both streams: a log check's input."""
        pattern = self._pattern
        if pattern is None or health.first_match(pattern, lines) is None:
            return
        self._pattern = None
        if self._greenlet is not None:
            self._greenlet.kill(block=False)   # the timeout's report is moot
            self._greenlet = None
        self.service.set_health(Health.HEALTHY)

    def _log_timeout(self) -> None:
        """Report a log check not healthy once, `timeout` s into the run; a matching
        line later still makes it healthy."""
        service, check = self.service, self.check
        service.clock.sleep(check.timeout)
        if self._pattern is not None and service.health == Health.WAITING:
            service.say(f"{service.name} is not healthy after {check.timeout:g} s "
                        f"(no output line matched '{check.pattern}')", "warning")
            service.set_health(Health.UNHEALTHY)

    def _check_loop(self, port: int | None) -> None:
        """Check, judge, act, sleep; until stopped, or until it asked for a restart.
        `port` is the one http and tcp checks probe; None for an exec check."""
        service, check, clock = self.service, self.check, self.service.clock
        deadline = clock.monotonic() + check.timeout
        tally = health.Tally()
        while True:
            result = self._exec_once() if port is None else health.probe(check, port)
            if not result.healthy:
                service.say(f"{service.name}: health probe failed: {result.detail}", "debug")
            verdict = health.judge(tally, service.health, result.healthy,
                                   clock.monotonic() > deadline, check.restart_after_failures)
            tally = verdict.tally
            if verdict.overdue:
                service.say(f"{service.name} is not healthy after {check.timeout:g} s",
                            "warning")
            service.set_health(verdict.health)
            if verdict.restart:
                service.restart_unhealthy(health.restart_reason(tally.failures, result.detail))
                return
            clock.sleep(health.check_delay(check, tally.passes))

    def _exec_once(self) -> health.ProbeResult:
        """Run the exec check's command once, in the service's folder and environment."""
        command, cwd = self.check.command, self.service.config.directory
        if command is None:   # the config refuses it; said rather than assumed
            return health.ProbeResult(False, "exec check without a command")
        try:
            run = execcheck.run_check(command, cwd, self.service.check_environment())
        except (OSError, ValueError) as exc:
            return execcheck.spawn_failure(command, cwd, exc)
        self._run = run
        self.service.own_child(run.pid, True)
        try:
            return execcheck.check_result(run, self.check.timeout)
        finally:
            run.close()
            self._run = None
            self.service.own_child(run.pid, False)
