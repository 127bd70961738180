"""What a hot reload has to do, decided from the old and new Config alone (no I/O).

A service restarts only when something its process sees changed: the command, the
folder, the merged environment (so an edited env_file counts) or the port (a number, or
`auto`: an auto service whose `port: auto` stays keeps the port it runs on). Settings the
supervisor applies around the process (hostname, ready_check, restart_policy,
depends_on and its conditions, autostart, the stop settings, watch, CORS proxy,
profiles) are updated in place, so editing a hostname does not kill a dev
server mid-request. Manager settings that are bound at start (ports, sockets, hosts mode)
are reported as needing a restart of promenade instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from promenade_core.config.choices import AUTO_PORT, Word
from promenade_core.config.model import Config, FrozenMap, ServiceConfig, dependency_order


class ReloadAction(Word):
    """What a reload does to one service (its value is the word on the wire)."""

    START = "start"       # new in the config
    STOP = "stop"         # gone from the config
    RESTART = "restart"   # something the process sees changed
    UPDATE = "update"     # only what the supervisor applies around the process changed


START, STOP, RESTART, UPDATE = (ReloadAction.START, ReloadAction.STOP, ReloadAction.RESTART,
                                ReloadAction.UPDATE)
RESTART_FIELDS = ("command", "directory", "env", "port", "tty")
UPDATE_FIELDS = (
    "hostname",
    "ready_check",
    "restart_policy",
    "depends_on",
    "cors_proxy",
    "cors_proxy_port",
    "cors_allow_origins",
    "conditions",
    "autostart",
    "stop_signal",
    "stop_timeout",
    "stop_command",
    "watch",
    "profiles",   # starts and stops nothing: only a stopped service's reason follows
)
MANAGER_RESTART_FIELDS = ("port", "host", "bus_tcp", "hostsd_socket", "hosts_management",
                          "domain", "router")
MANAGER_LIVE_FIELDS = ("log_buffer_lines", "config_poll_interval", "dependency_timeout",
                       "log_files")
_MAX_ENV_NAMES = 5
_SUMMARY_ORDER = (STOP, START, RESTART, UPDATE)


@dataclass(frozen=True)
class ServiceChange:
    service: str
    action: ReloadAction
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # a plain word ("restart") is accepted and kept as the Enum member
        object.__setattr__(self, "action", ReloadAction(self.action))

    def describe(self) -> str:
        """One clause of the summary: `restarted api (command changed)`."""
        if self.action == UPDATE:
            names = [r.removesuffix(" updated") for r in self.reasons]
            return f"{_join(names)} of {self.service} updated"
        done = {START: "started", STOP: "stopped", RESTART: "restarted"}[self.action]
        reasons = f" ({', '.join(self.reasons)})" if self.reasons else ""
        return f"{done} {self.service}{reasons}"

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "action": self.action.value,
                "reasons": list(self.reasons)}


@dataclass(frozen=True)
class ReloadPlan:
    changes: tuple[ServiceChange, ...] = ()  # stops, then restarts/updates, then starts
    manager_changes: tuple[str, ...] = ()  # every manager change, as a sentence
    buffer_resize: Mapping[str, int] = field(default_factory=FrozenMap)

    @property
    def empty(self) -> bool:
        return not (self.changes or self.manager_changes or self.buffer_resize)

    def summary(self) -> str:
        """`reload: started worker2; restarted api (command changed); hostname of web updated`.

        Clauses follow SPEC.md's reload steps (stopped, started, restarted, updated), then
        manager changes; `changes` itself is in the order of execution.
        """
        if self.empty:
            return "reload: no changes"
        ordered = sorted(self.changes, key=lambda c: _SUMMARY_ORDER.index(c.action))
        parts = [c.describe() for c in ordered] + list(self.manager_changes)
        return "reload: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [c.to_dict() for c in self.changes],
            "manager_changes": list(self.manager_changes),
            "buffer_resize": dict(self.buffer_resize),
            "summary": self.summary(),
        }


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """The steps that take the running `old` config to `new`."""
    old_order = dependency_order(old.services)
    new_order = dependency_order(new.services)
    stops = [ServiceChange(n, STOP) for n in reversed(old_order) if n not in new.services]
    in_place = [
        change
        for n in new_order
        if n in old.services and (change := _service_change(old.services[n], new.services[n]))
    ]
    starts = [ServiceChange(n, START) for n in new_order if n not in old.services]
    resize: dict[str, int] = {}
    if old.manager.log_buffer_lines != new.manager.log_buffer_lines:
        resize = {name: new.manager.log_buffer_lines for name in new.services}
    return ReloadPlan(
        changes=(*stops, *in_place, *starts),
        manager_changes=tuple(_manager_changes(old, new)),
        buffer_resize=FrozenMap(resize),
    )


def _service_change(old: ServiceConfig, new: ServiceConfig) -> ServiceChange | None:
    restart = [_restart_reason(old, new, name) for name in RESTART_FIELDS]
    restart_reasons = [r for r in restart if r]
    updates = [
        f"{name} updated" for name in UPDATE_FIELDS if getattr(old, name) != getattr(new, name)
    ]
    if restart_reasons:
        return ServiceChange(new.name, RESTART, (*restart_reasons, *updates))
    if updates:
        return ServiceChange(new.name, UPDATE, tuple(updates))
    return None


def _restart_reason(old: ServiceConfig, new: ServiceConfig, name: str) -> str | None:
    before, after = getattr(old, name), getattr(new, name)
    if name == "port":
        before, after = _written_port(old), _written_port(new)
    if before == after:
        return None
    if name == "env":
        changed = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
        more = " …" if len(changed) > _MAX_ENV_NAMES else ""
        shown = ", ".join(changed[:_MAX_ENV_NAMES]) + more
        return f"env changed: {shown}"  # names only: values may be secrets
    if name == "port":
        return f"port changed ({before} -> {after})"
    return f"{name} changed"


def _written_port(svc: ServiceConfig) -> int | str | None:
    """`port:` as written: a change between a number and `auto` restarts the service
    (its PORT changes); an auto service left as it was keeps its running port."""
    return AUTO_PORT if svc.port_auto else svc.port


def _manager_changes(old: Config, new: Config) -> list[str]:
    messages = []
    for name in (*MANAGER_RESTART_FIELDS, *MANAGER_LIVE_FIELDS):
        before, after = getattr(old.manager, name), getattr(new.manager, name)
        if before == after:
            continue
        message = f"manager.{name} changed ({before} -> {after})"
        if name in MANAGER_RESTART_FIELDS:
            message += ": takes effect after a restart of promenade"
        messages.append(message)
    return messages


def _join(names: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
