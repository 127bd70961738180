"""Fakes for the unit tier: the supervisor as one `Service` sees it (its `Host`)."""

from __future__ import annotations

from typing import Any, cast

from promenade_core.config.model import ServiceConfig
from promenade_core.supervise.osproc import ProcessOps
from promenade_core.supervise.service import Service
from promenade_core.supervise.states import Status


class FakeHost:
    """Records what a service tells its supervisor: messages (and whom they were
    about), output lines and status changes; `deps` are the services it may wait for."""

    def __init__(self, ops: ProcessOps) -> None:
        self.ops = ops
        self.messages: list[tuple[str, str]] = []
        self.about: set[str | None] = set()
        self.lines: list[str] = []
        self.changes: list[Status] = []
        self.deps: dict[str, Any] = {}
        self.timeout = 60.0
        #: what `auto_port` hands out, in turn (None: no free port); the previous
        #: ports it was given are recorded in `auto_asked`
        self.auto_ports: list[int | None] = []
        self.auto_asked: list[int | None] = []

    def service(self, name: str) -> Service:
        return cast(Service, self.deps[name])

    def environment(self, service: Service) -> dict[str, str]:
        return {}

    def dependency_timeout(self) -> float:
        return self.timeout

    def on_lines(self, service: Service, stream: str, lines: list[str]) -> None:
        self.lines += lines

    def on_raw(self, service: Service, stream: str, data: bytes) -> None:
        pass

    def on_change(self, service: Service) -> None:
        self.changes.append(service.status)

    def emit(self, message: str, level: str = "info", service: str | None = None) -> None:
        self.messages.append((level, message))
        self.about.add(service)

    def track_group(self, pgid: int, alive: bool) -> None:
        pass

    def on_started(self, service: Service) -> None:
        pass

    def on_stopped(self, service: Service) -> None:
        pass

    def on_updated(self, service: Service, old: ServiceConfig) -> None:
        pass

    def auto_port(self, service: Service, previous: int | None) -> int | None:
        self.auto_asked.append(previous)
        return self.auto_ports.pop(0) if self.auto_ports else None
