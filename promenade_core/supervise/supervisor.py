"""The supervisor: every service of one config, their output, and what the world sees.

It owns the services, numbers and routes their log lines (buffer, bus, terminal),
publishes state changes, and keeps the reaper told which process groups exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import gevent
import gevent.event

from promenade_core.bus import protocol
from promenade_core.bus.server import Publisher
from promenade_core.config import profiles
from promenade_core.config.environment import service_environment, with_pipe_variables
from promenade_core.config.model import Config, ServiceConfig, dependency_order
from promenade_core.masking import mask_command
from promenade_core.supervise import autoport
from promenade_core.supervise.logfiles import LogFileWriter
from promenade_core.supervise.logs import Batch, LogStore, iso_timestamp
from promenade_core.supervise.osproc import ENV_INSTANCE, ENV_SERVICE, ProcessOps
from promenade_core.supervise.procstats import TreeSampler
from promenade_core.supervise.rawstream import Leases
from promenade_core.supervise.reload_plan import RESTART, START, STOP, ReloadPlan, ServiceChange
from promenade_core.supervise.service import Service
from promenade_core.supervise.states import ALIVE, Status
from promenade_core.supervise.terminal import Printer

#: The reason of a service `promenade start api web` did not name.
NOT_NAMED = profiles.NOT_NAMED


class Attachments(Protocol):
    """Things that follow a service's process: hostnames and CORS proxies."""

    def on_started(self, service: Service) -> None: ...
    def on_stopped(self, service: Service) -> None: ...
    def on_updated(self, service: Service, old: ServiceConfig) -> None: ...


def _never(name: str) -> bool:
    return False


def _unrouted(name: str) -> str | None:
    return None


@dataclass(frozen=True)
class HostnamePolicy:
    """Whether a configured hostname leads to this machine now, and so which URL a
    service gets: the two answers come from hosts/ (hostsd's lease, the resolver)."""

    #: whether hostsd has the hostname of the service of this name
    mapped: Callable[[str], bool] = _never
    #: whether a hostname resolves to loopback addresses only
    resolves_to_loopback: Callable[[str], bool] = _never
    #: the service's URL on the router while it holds the service's route, else None
    #: (router/client.py RouterLink.url_for)
    routed: Callable[[str], str | None] = _unrouted

    def is_local(self, name: str, hostname: str | None) -> bool:
        """Whether service `name`'s `hostname` leads to this machine now: hostsd mapped
        it, or it resolves to loopback only. Only then may pages served under it count
        as local origins (a configured name nobody mapped resolves anywhere)."""
        return bool(hostname) and (self.mapped(name) or
                                   self.resolves_to_loopback(hostname or ""))

    def url(self, svc: ServiceConfig, port: int | None, mode: str) -> str | None:
        """The router's `https://SERVICE.DOMAIN` while it holds the route; else by
        hostname only where the name resolves: mapped by hostsd, or added by hand in
        `manual` mode; otherwise localhost, so the link always works. `port` is the
        run's (`Service.port`: for `port: auto`, the one picked)."""
        if port is None:
            return None
        routed = self.routed(svc.name)
        if routed is not None:
            return routed
        mapped = bool(svc.hostname) and (
            mode == "manual" or (mode == "auto" and self.mapped(svc.name)))
        return f"http://{svc.hostname if mapped else 'localhost'}:{port}"


class Supervisor:
    def __init__(
        self,
        config: Config,
        printer: Printer,
        publisher: Publisher,
        instance: str,
        ops: ProcessOps | None = None,
        track: Callable[[int, bool], None] = lambda pgid, alive: None,
        attachments: Sequence[Attachments] = (),
        hostnames: HostnamePolicy = HostnamePolicy(),
        active_profiles: Collection[str] = (),
        log_files: LogFileWriter | None = None,
    ) -> None:
        self.config = config
        #: the profiles `promenade start` activated; fixed for the manager's life
        self.active_profiles = tuple(active_profiles)
        self.printer = printer
        self.publisher = publisher
        self.instance = instance
        self.ops = ops or ProcessOps()
        self._track = track
        #: told of every service start, stop and update, in this order
        self.attachments = tuple(attachments)
        self.hostnames = hostnames
        #: the log files (None: not written at all, the folder could not be made)
        self.log_files = log_files
        self._local_hostname: dict[str, bool] = {}
        self.sampler = TreeSampler()
        #: every service's buffered lines (the bus's `logs` and `snapshot` read them)
        self.logs = LogStore(config.manager.log_buffer_lines)
        #: who is attached to which service (their raw output is published meanwhile)
        self.leases = Leases()
        self.services: dict[str, Service] = {}
        #: called with the new config after each `apply` (the file watchers follow it)
        self.after_apply: list[Callable[[Config], None]] = []
        #: called after each state event of a service (the router's routes follow them)
        self.after_change: list[Callable[[Service], None]] = []
        for name, svc in config.services.items():
            self.services[name] = Service(svc, self)

    # -- the Host protocol that services call -----------------------------------

    def service(self, name: str) -> Service:
        return self.services[name]

    def environment(self, service: Service) -> dict[str, str]:
        """What `promenade run SERVICE` gives too (config/environment.py), plus the
        colour-forcing variables on pipes and the markers that tell this manager's
        processes from any other."""
        env = service_environment(service.config, os.environ, service.port,
                                  self.config.manager)
        if not service.config.tty:
            env = with_pipe_variables(env)
        env[ENV_INSTANCE] = self.instance
        env[ENV_SERVICE] = service.name
        return env

    def dependency_timeout(self) -> float:
        return self.config.manager.dependency_timeout

    def on_lines(self, service: Service, stream: str, lines: list[str]) -> None:
        """The hot path: one call per read of one stream."""
        batch = Batch(self.publisher.next_seqs(len(lines)), iso_timestamp(), stream, lines)
        self.logs.append(service.name, batch)
        if self.log_files is not None:  # before publishing: see LogFileWriter.mark
            self.log_files.write(service.name, stream, batch.timestamp, lines)
        self.publisher.publish_batch(service.name, batch)
        self.printer.lines(service.name, stream, batch.timestamp, lines)

    def on_raw(self, service: Service, stream: str, data: bytes) -> None:
        """The bytes of one read, as read: on `raw/<service>/` while anyone is attached."""
        if self.leases.watched(service.name):
            self.publisher.publish_raw(service.name, stream, data)

    def on_change(self, service: Service) -> None:
        self.publisher.publish(protocol.state_topic(service.name),
                               {"service": service.name, "status": self.describe(service)})
        for listener in self.after_change:
            listener(service)

    def emit(self, message: str, level: protocol.Level = "info",
             service: str | None = None) -> None:
        """A manager message for the terminal and the bus; `service` names the service
        it is about, so clients need not find it in the prose. Debug messages (a failed
        probe every interval, each spawn, hostsd traffic) reach neither unless `-v` asked
        for them, so they never flood the dashboard's log view."""
        if level == "debug" and not self.printer.verbose:
            return
        self.printer.message(message, level)
        if self.log_files is not None:
            self.log_files.event(iso_timestamp(), level, message)
        self.publisher.publish(protocol.MANAGER_TOPIC, {
            "event": "message", "message": message, "level": level, "service": service})

    def track_group(self, pgid: int, alive: bool) -> None:
        self._track(pgid, alive)

    def auto_port(self, service: Service, previous: int | None) -> int | None:
        """A free port for a `port: auto` service (autoport.pick): never one the config
        names, nor one another service of this manager runs on or last ran on (two auto
        services starting together must not both get the port neither has bound yet)."""
        claimed = autoport.claimed_ports(self.config)
        claimed.update(s.port for s in self.services.values()
                       if s is not service and s.port is not None)
        return autoport.pick(previous, claimed)

    def on_started(self, service: Service) -> None:
        for attachment in self.attachments:
            attachment.on_started(service)

    def on_stopped(self, service: Service) -> None:
        for attachment in self.attachments:
            attachment.on_stopped(service)

    def on_updated(self, service: Service, old: ServiceConfig) -> None:
        for attachment in self.attachments:
            attachment.on_updated(service, old)

    # -- what clients see ---------------------------------------------------------

    def configured_hostnames(self) -> list[str | None]:
        """Every service's hostname in the running config (None where it has none)."""
        return [svc.hostname for svc in self.config.services.values()]

    def local_hostnames(self) -> list[str]:
        """The configured hostnames that are local now (HostnamePolicy.is_local)."""
        return [svc.hostname for name, svc in self.config.services.items()
                if svc.hostname and self.hostnames.is_local(name, svc.hostname)]

    def publish_all(self) -> None:
        """A state event for every service: their URLs changed (the router came or
        went), and clients learn status objects only from events and snapshots."""
        for service in list(self.services.values()):
            self.publisher.publish(protocol.state_topic(service.name),
                                   {"service": service.name, "status": self.describe(service)})

    def publish_hostname_changes(self) -> None:
        """A state event for each service whose hostname started or stopped leading
        here, so that the web process's guard follows (it learns from state events)."""
        for name, service in self.services.items():
            local = self.hostnames.is_local(name, service.config.hostname)
            if self._local_hostname.get(name, False) != local:
                self._local_hostname[name] = local
                self.on_change(service)

    def describe(self, service: Service, stats: tuple[float | None, int | None] = (None, None),
                 ) -> protocol.StatusObject:
        doc = service.describe(self.hostnames.url(
            service.config, service.port, self.config.manager.hosts_management))
        doc["command"] = mask_command(doc["command"])  # shown by the dashboard and CLI
        doc["hostname_mapped"] = self.hostnames.is_local(service.name, service.config.hostname)
        doc["cpu_percent"], doc["memory_bytes"] = stats
        return doc

    def _stats(self) -> dict[str, tuple[float | None, int | None]]:
        """CPU and memory of every service, from the one sampler: sampling a subset
        would make the sampler forget the others' previous readings."""
        pids = {name: (s.pid if s.status in ALIVE else None) for name, s in self.services.items()}
        return self.sampler.sample(pids)

    def describe_all(self) -> dict[str, protocol.StatusObject]:
        stats = self._stats()
        return {name: self.describe(s, stats.get(name, (None, None)))
                for name, s in self.services.items()}

    def describe_sampled(self, service: Service) -> protocol.StatusObject:
        """One status object with its CPU and memory, as describe_all gives them."""
        return self.describe(service, self._stats().get(service.name, (None, None)))

    # -- whole-config actions -------------------------------------------------------

    def order(self) -> tuple[str, ...]:
        return dependency_order(self.config.services)

    def start_all(self, targets: Collection[str] | None = None) -> None:
        """Start every active `autostart` service, or the `targets` named (`promenade
        start api web`), and what they depend on (config/profiles.py decides); each
        service waits for its own dependencies. The others say why they are stopped."""
        selection = profiles.select(self.config.services, self.active_profiles, targets)
        for name, users in selection.pulled_in.items():
            why = profiles.inactive_reason(self.config.services[name], self.active_profiles)
            verb = "depends" if len(users) == 1 else "depend"
            self.emit(f"{name}: {why}, but {', '.join(users)} {verb} on it: starting it",
                      service=name)
        for name in selection.start:
            service = self.services[name]
            service.submit(service.start)
        for name, reason in selection.reasons.items():
            self.services[name].set_reason(reason)

    def default_targets(self) -> tuple[str, ...]:
        """What `start_all()` asks for: the active autostart services (a `wait`
        without names waits for these)."""
        return profiles.default_targets(self.config.services, self.active_profiles)

    def stop_many(self, names: Collection[str]) -> None:
        """Stop services, dependants before what they depend on; independent ones in
        parallel, so twenty unrelated services stop in one grace period, not twenty."""
        stopped = {name: gevent.event.Event() for name in names}

        def stop_one(name: str) -> None:
            service = self.services[name]
            try:
                for user in users.get(name, ()):
                    if user in stopped:
                        stopped[user].wait()
                service.submit(service.stop).get()
            finally:
                stopped[name].set()

        users = self._dependants()
        gevent.joinall([gevent.spawn(stop_one, name) for name in stopped])

    def _dependants(self) -> dict[str, list[str]]:
        """Who depends on whom among the services running now: from each service's
        own config, so a service a reload removes still stops after its dependants."""
        found: dict[str, list[str]] = {name: [] for name in self.services}
        for name, service in self.services.items():
            for dep in service.config.depends_on:
                if dep in found:
                    found[dep].append(name)
        return found

    def restart_all(self) -> list[str]:
        """Stop everything (ordered), then start again what was up or on its way, or
        the autostart services when nothing was."""
        names = list(self.order())
        was_up = [n for n in names
                  if self.services[n].status != Status.STOPPED or self.services[n].completed]
        self.stop_many(names)
        self.start_all(was_up or None)
        return names

    def shutdown(self) -> None:
        for name, service in self.services.items():
            if service.status in ALIVE:
                self.printer.message(f"stopping {name}")
        self.stop_many(list(self.services))
        for service in self.services.values():
            service.close()

    def add_service(self, svc: ServiceConfig) -> Service:
        service = Service(svc, self)
        self.logs.resize(svc.name, self.config.manager.log_buffer_lines)
        self.services[svc.name] = service
        return service

    def apply(self, plan: ReloadPlan, config: Config) -> None:
        """Take the running services to `config` as `plan` (reload_plan) decided: stops
        first and waited for, so a port moving between services is free, then restarts
        and in-place updates, then starts; none of these waits for a service to be up."""
        self.config = config
        self.stop_many([c.service for c in plan.changes if c.action == STOP])
        for change in plan.changes:
            self._apply_change(change, config)
        for name, size in plan.buffer_resize.items():
            if name in self.services:
                self.logs.resize(name, size)
        for listener in self.after_apply:
            listener(config)

    def _apply_change(self, change: ServiceChange, config: Config) -> None:
        if change.action == STOP:
            service = self.services.pop(change.service)
            service.close()
            self.logs.drop(change.service)
            self.leases.forget(change.service)
        elif change.action == START:
            service = self.add_service(config.services[change.service])
            inactive = profiles.inactive_reason(service.config, self.active_profiles)
            if inactive is not None:
                service.set_reason(inactive)
            elif service.config.autostart:
                service.submit(service.start)
        else:
            service = self.services[change.service]
            old, new = service.config, config.services[change.service]
            service.submit(partial(service.reconfigure, new,
                                   restart=change.action == RESTART))
            if old.profiles != new.profiles:
                service.submit(partial(self._profiles_changed, service, old))

    def _profiles_changed(self, service: Service, old: ServiceConfig) -> None:
        """A reload changed the service's `profiles`: it is neither started nor stopped
        for that (the user decides), but a stopped service's reason follows."""
        if service.status == Status.STOPPED:
            service.set_reason(profiles.reason_after_reload(
                old, service.config, self.active_profiles, service.reason))
