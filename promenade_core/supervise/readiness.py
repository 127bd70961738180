"""A service's ready_check while it runs: probing its port, and what the results mean
for its health.

The service starts one `Readiness` per run (after its process is up) and stops it when
the process exits or the check is edited; `lines` sees every output line, for checks
that read output. The service stays the one place health changes (`set_health`).
"""

from __future__ import annotations

from typing import Protocol

import gevent

from promenade_core.bus.protocol import Level
from promenade_core.config.model import ReadyCheck, ServiceConfig
from promenade_core.supervise import health
from promenade_core.supervise.clock import Clock
from promenade_core.supervise.states import Health


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


class Readiness:
    """One run's ready_check: a probing greenlet while the process runs."""

    def __init__(self, service: Checked, check: ReadyCheck) -> None:
        self.service = service
        self.check = check
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self.check.needs_port and self.service.port is not None:
            self._greenlet = gevent.spawn(self._probe_loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def lines(self, lines: list[str]) -> None:
        """Every output line of the run, both streams (checks that read output)."""

    def _probe_loop(self) -> None:
        service, check = self.service, self.check
        port = service.port
        assert port is not None  # only started with one
        clock = service.clock
        deadline = clock.monotonic() + check.timeout
        streak = 0  # healthy probes in a row: they space out (health.next_probe_delay)
        while True:
            result = health.probe(check, port)
            if result.healthy:
                streak += 1
                service.set_health(Health.HEALTHY)
            else:
                streak = 0
                service.say(f"{service.name}: health probe failed: {result.detail}", "debug")
                if service.health == Health.HEALTHY or (
                    service.health == Health.WAITING and clock.monotonic() > deadline
                ):
                    if service.health == Health.WAITING:
                        service.say(
                            f"{service.name} is not healthy after {check.timeout:g} s",
                            "warning")
                    service.set_health(Health.UNHEALTHY)
            clock.sleep(health.next_probe_delay(streak, check.interval))
