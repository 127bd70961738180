"""The control commands of the bus, one small function each.

Each handler takes the decoded request and returns the reply's `result`, or raises
CommandError with a stable code. Requests are untrusted input (any local process of
the user may send them): every argument is type-checked here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gevent

from promenade_core.bus import protocol
from promenade_core.bus.server import CommandError, Handler
from promenade_core.supervise.service import Service

if TYPE_CHECKING:
    from promenade_core.manager import Manager

COMMAND_TIMEOUT = 30.0


def _arg(request: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None,
         ) -> Any:
    value = request.get(key, default)
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)) or (
        kind is bool and isinstance(value, bool)
    ):
        return value
    names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
    raise CommandError(protocol.BAD_REQUEST,
                       f"{key!r} must be {names}, got {type(value).__name__}")


class Commands:
    """The handlers table for the ControlServer, bound to one manager."""

    def __init__(self, manager: Manager) -> None:
        self.m = manager

    def table(self) -> dict[str, Handler]:
        return {name: getattr(self, f"cmd_{name}") for name in (
            "ping", "status", "service", "start", "stop", "restart", "restart_all", "logs",
            "config", "reload", "snapshot", "shutdown", "sync", "gap",
        )}

    def _service(self, request: dict[str, Any]) -> Service:
        name = _arg(request, "service", str)
        if name is None:
            raise CommandError(protocol.BAD_REQUEST, 'this command needs "service"')
        service = self.m.supervisor.services.get(name)
        if service is None:
            known = ", ".join(self.m.supervisor.services) or "none"
            raise CommandError(protocol.UNKNOWN_SERVICE,
                               f"unknown service {name!r} (known: {known})")
        return service

    def _not_stopping(self) -> None:
        if self.m.stopping:
            raise CommandError(protocol.SHUTTING_DOWN, "the manager is shutting down")

    def cmd_ping(self, request: dict[str, Any]) -> Any:
        return {"pid": self.m.pid, "version": self.m.version, "seq": self.m.publisher.seq,
                "run_id": self.m.run_id}

    def cmd_status(self, request: dict[str, Any]) -> Any:
        return self.m.status_document()

    def cmd_service(self, request: dict[str, Any]) -> Any:
        return self.m.supervisor.describe_sampled(self._service(request))

    def _run(self, request: dict[str, Any], service: Service, action: str) -> Any:
        self._not_stopping()
        wait = _arg(request, "wait", bool, True)
        describe = self.m.supervisor.describe_sampled

        def act() -> dict[str, Any]:
            getattr(service, action)()
            return describe(service)   # as this command left it, before the next one runs

        result = service.submit(act)
        if not wait:
            return describe(service)
        doc = result.get(timeout=COMMAND_TIMEOUT)
        if action != "stop" and doc["status"] == "pending":
            service.wait_settled(COMMAND_TIMEOUT)   # it was waiting for dependencies
            doc = describe(service)
        return doc

    def cmd_start(self, request: dict[str, Any]) -> Any:
        return self._run(request, self._service(request), "start")

    def cmd_stop(self, request: dict[str, Any]) -> Any:
        return self._run(request, self._service(request), "stop")

    def cmd_restart(self, request: dict[str, Any]) -> Any:
        return self._run(request, self._service(request), "restart")

    def cmd_restart_all(self, request: dict[str, Any]) -> Any:
        self._not_stopping()
        names = list(self.m.supervisor.order())
        if _arg(request, "wait", bool, False):
            self.m.supervisor.restart_all()
        else:
            gevent.spawn(self.m.supervisor.restart_all)
        return {"services": names}

    def cmd_logs(self, request: dict[str, Any]) -> Any:
        tail = _arg(request, "tail", int)
        since = _arg(request, "since", int)
        names = _arg(request, "services", list)
        if request.get("service") is not None:
            names = [self._service(request).name]
        services = self.m.supervisor.services
        for name in names or []:
            if name not in services:
                raise CommandError(protocol.UNKNOWN_SERVICE, f"unknown service {name!r}")
        messages = self.m.supervisor.logs.messages(names or services, since=since, tail=tail)
        return {"seq": self.m.publisher.seq, "run_id": self.m.run_id, "messages": messages}

    def cmd_config(self, request: dict[str, Any]) -> Any:
        return self.m.config_document()

    def cmd_reload(self, request: dict[str, Any]) -> Any:
        self._not_stopping()
        return self.m.reload(dry_run=bool(_arg(request, "dry_run", bool, False)), forced=True)

    def cmd_snapshot(self, request: dict[str, Any]) -> Any:
        sup = self.m.supervisor
        return {
            "seq": self.m.publisher.seq,
            "run_id": self.m.run_id,
            "services": sup.describe_all(),
            "logs": sup.logs.messages(sup.services),
        }

    def cmd_shutdown(self, request: dict[str, Any]) -> Any:
        gevent.spawn_later(0.05, self.m.request_stop, "shutdown requested over the bus")
        return {"stopping": True}

    def cmd_sync(self, request: dict[str, Any]) -> Any:
        token = _arg(request, "token", str)
        if not token or len(token) > 64:
            raise CommandError(protocol.BAD_REQUEST, '"token" must be a short string')
        self.m.publisher.sync(token)
        return {}

    def cmd_gap(self, request: dict[str, Any]) -> Any:
        count = _arg(request, "count", int, 0)
        if count < 0:
            raise CommandError(protocol.BAD_REQUEST, '"count" must be >= 0')
        self.m.publisher.dropped_reported += count
        return {}
