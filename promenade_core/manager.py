"""One running Promenade: config, supervisor, bus, dashboard, reaper — and shutdown.

`Manager.run()` is what `promenade start` runs in the foreground (or as the daemon).
It is wiring only: it builds the parts, hands each its collaborators through its
constructor (the bus commands get the supervisor, reloader and publisher, never the
manager) and takes them down in order. What the parts do lives in the parts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import gevent
import gevent.event
import zmq.green as zmq

from promenade_core import __version__, listener, runtime
from promenade_core.bus import protocol, tcpfeed
from promenade_core.bus.server import ControlServer, Publisher
from promenade_core.config.audit import security_warnings
from promenade_core.config.load import load_config
from promenade_core.config.model import Config, ServiceConfig
from promenade_core.config.profiles import check_profiles
from promenade_core.control import Commands, RunInfo
from promenade_core.errors import PromenadeError
from promenade_core.hosts.client import HostsManager
from promenade_core.hosts.mapped_names import MappedNames
from promenade_core.masking import mask_command
from promenade_core.proxy.attach import Proxies
from promenade_core.router import names
from promenade_core.router.client import RouterLink, ca_problem
from promenade_core.router.protocol import RouteWire
from promenade_core.supervise import cgroups, loghistory, osproc, waiting
from promenade_core.supervise.descendants import Descendants
from promenade_core.supervise.keys import Keys
from promenade_core.supervise.logfiles import LogFileWriter
from promenade_core.supervise.logs import iso_timestamp
from promenade_core.supervise.reloader import Reloader
from promenade_core.supervise.supervisor import Attachments, HostnamePolicy, Supervisor
from promenade_core.supervise.terminal import Printer
from promenade_core.supervise.watcher import Watchers
from promenade_core.supervise.webproc import WebProcess

#: How long a thread holding the GIL keeps it when another asks (Python's default is
#: 5 ms). The log-file writer thread and the hub share it: during a flood each waited
#: up to 5 ms for the other, the hub with a quiet service's line in hand.
SWITCH_INTERVAL = 0.001
#: The dashboard starts once the services being started are up, or after this long.
WEB_AFTER_SERVICES = 1.0
#: How often that is looked at meanwhile.
WEB_POLL = 0.05


class AlreadyRunning(PromenadeError):
    pass


class Manager:
    def __init__(self, config_path: Path, printer: Printer, port: int | None = None,
                 no_ui: bool = False, hostsd_socket: str | None = None,
                 extra_configs: tuple[Path, ...] = (),
                 targets: Sequence[str] | None = None,
                 profiles: Sequence[str] = ()) -> None:
        self.config_path = config_path
        #: files merged on top of config_path (`-c` given more than once)
        self.extra_configs = extra_configs
        self.printer = printer
        self.port_override = port
        self.no_ui = no_ui
        #: a private hostsd's socket (`sudo promenade start`), else the config's
        self.hostsd_socket = hostsd_socket
        #: `promenade start api web`: only these and what they depend on start; None:
        #: every autostart service
        self.targets = list(targets) if targets else None
        #: the active profiles (`--profile`, PROMENADE_PROFILES), kept for reloads
        self.profiles = tuple(profiles)
        self.pid = os.getpid()
        self.version = __version__
        self.stopping = False
        self.started_at = time.time()
        #: Tells this run from a restarted manager, whose seq starts again at 0.
        self.run_id = uuid.uuid4().hex
        self._stop = gevent.event.Event()
        self._reaper_fd: int | None = None
        self.web: WebProcess | None = None
        self.tcp_feed: tcpfeed.TcpFeed | None = None
        self.zap: tcpfeed.ZapHandler | None = None
        #: What a `bus_tcp` subscriber must give (in manager.json, 0600 in a 0700 folder).
        self.tcp_token: str | None = None
        #: the keys typed in the foreground (None unless stdin is our terminal)
        self.keys: Keys | None = None
        #: the log files' writer (None until started, or when its folder is unusable)
        self.log_files: LogFileWriter | None = None
        #: the lease on the user's router (None with `manager.router: false`)
        self.router: RouterLink | None = None
        self._leading: frozenset[str] = frozenset()

    # -- start-up ---------------------------------------------------------------

    def _lock(self) -> None:
        self.folder = runtime.runtime_dir(self.config_path)
        self.lock = runtime.InstanceLock(self.folder)
        if not self.lock.acquire():
            info = runtime.read_manager_json(self.folder) or {}
            raise AlreadyRunning(
                f"Promenade is already running for {self.config_path} "
                f"(pid {info.get('pid', '?')}, dashboard {info.get('dashboard_url') or 'off'})")

    def _clear_leftovers(self, instance: str) -> None:
        found = osproc.find_leftovers(instance)
        for pid, service, cmd in found:
            self._note(
                f"found pid {pid} ({mask_command(cmd)}) of service {service} left over from "
                "an earlier run of this config; stopping it", "warning")
        if found:
            osproc.kill_pids([pid for pid, _, _ in found], signal.SIGTERM)
            gevent.sleep(0.3)
            osproc.kill_pids([pid for pid, _, _ in found], signal.SIGKILL)

    def _track(self, pgid: int, alive: bool) -> None:
        """Tell the reaper a process group exists (or is gone)."""
        if self._reaper_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._reaper_fd, f"{'+' if alive else '-'}{pgid}\n".encode())

    def _open_bus(self, config: Config) -> None:
        self.endpoints = runtime.endpoints(self.folder)
        self.context = zmq.Context()
        self.publisher = Publisher(self.context, [self.endpoints["events"]], self.run_id)
        if config.manager.bus_tcp:
            self._open_tcp_feed(config.manager.bus_tcp)

    def _open_tcp_feed(self, bus_tcp: str) -> None:
        """The events on TCP: a capped relay to a token-guarded ipc endpoint (tcpfeed)."""
        host, _, port = bus_tcp.rpartition(":")
        self.tcp_token = tcpfeed.new_token()
        self.zap = tcpfeed.ZapHandler(self.context, self.tcp_token)
        relay = self.endpoints["events_tcp_relay"]
        self.publisher.bind_secure(relay)
        self.tcp_feed = tcpfeed.TcpFeed(
            host, int(port), relay[len("ipc://"):],
            self._warn)

    def _warn(self, message: str) -> None:
        self._emit(message, "warning")

    def _emit(self, message: str, level: protocol.Level = "info",
              service: str | None = None) -> None:
        """To the terminal and the bus once the supervisor exists, else the terminal:
        the parts built before it (hosts, proxies, the TCP feed) emit through here."""
        supervisor: Supervisor | None = getattr(self, "supervisor", None)
        if supervisor is not None:
            supervisor.emit(message, level, service)
        else:
            self._note(message, level)

    def _note(self, message: str, level: protocol.Level = "info") -> None:
        """To the terminal and promenade.log (the bus carries the manager's start and
        stop as events of their own; before the supervisor there is no bus yet)."""
        self.printer.message(message, level)
        if self.log_files is not None:
            self.log_files.event(iso_timestamp(), level, message)

    def _debug(self, message: str) -> None:
        self._emit(message, "debug")

    def run(self, loaded: Config | None = None) -> int:
        """Run until stopped; `loaded` is the config when the caller has just loaded
        and validated it (`promenade start` does, to fail before forking)."""
        config = loaded or load_config(self.config_path, self.extra_configs)
        check_profiles(self.profiles, config.services)
        self._lock()
        try:
            return self._run(config)
        finally:
            # Under the lock no other manager uses these files: remove them all, so a
            # stop leaves no stale sockets, manager.json or lock behind.
            runtime.remove_runtime_files(self.folder)
            self.lock.release(remove=True)

    def _run(self, config: Config) -> int:
        instance = runtime.instance_id(self.config_path)
        sys.setswitchinterval(SWITCH_INTERVAL)
        # First: what follows reaches promenade.log (with -d, the only place it shows).
        self.log_files = loghistory.start_writer(self.config_path, config.manager.log_files,
                                                 self._emit)
        for warning in security_warnings(config):
            self._note(warning, "warning")
        # Every listener is capped, but the default soft limit (often 1,024) is low.
        listener.raise_fd_limit()
        osproc.become_subreaper()
        self._clear_leftovers(instance)
        self._open_bus(config)
        ops = self._process_ops(instance)
        reaper, self._reaper_fd = osproc.start_reaper(ops.cgroups.path if ops.cgroups else None)
        if ops.tracker is not None:
            ops.tracker.ignore(reaper.pid)
        self.supervisor = self._supervisor(config, instance, ops)
        self.supervisor.after_apply.append(self._log_files_settings)
        self.watchers = Watchers(self.supervisor)
        self.supervisor.after_apply.append(self.watchers.sync)
        self.reloader = Reloader(self.config_path, self.supervisor, self.publisher,
                                 self.extra_configs)
        self.web = self._web(config)
        self.control = ControlServer(self.context, self.endpoints["control"],
                                     self._commands().table())
        try:
            if self.web:
                self.web.check_port()   # a taken dashboard port is an error before anything
            self._announce()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                gevent.signal_handler(sig, self._on_signal, sig)
            self.mapped_names.start()
            if self.router is not None:
                self.router.start()   # beside the services: they never wait for it
                self._map_dashboard()
            self.supervisor.start_all(self.targets)
            self.keys = Keys.for_stdin(self.printer, lambda: list(self.supervisor.services),
                                       self._restart_by_key)
            self.watchers.sync(self.supervisor.config)
            if self.web:
                gevent.spawn(self._launch_web, self.web)
            self.reloader.start()
            self._stop.wait()
        finally:
            if self.keys:
                self.keys.close()   # the terminal as it was, whatever happens next
            self._shutdown()
            os.close(self._reaper_fd)
            self._reaper_fd = None
            reaper.wait()
        return 0

    def _launch_web(self, web: WebProcess) -> None:
        """The dashboard, once the services being started are up (or after at most
        WEB_AFTER_SERVICES): importing Flask takes a core for about 0.15 s, and on a
        small machine it was that much CPU the services' own start-up did not get."""
        deadline = time.monotonic() + WEB_AFTER_SERVICES
        while time.monotonic() < deadline and not self.stopping and any(
                waiting.judge(self.supervisor.describe(service)) is waiting.Verdict.PENDING
                for service in self.supervisor.services.values()):
            gevent.sleep(WEB_POLL)
        url = web.url
        web.launch(lambda: self.printer.message(f"dashboard {url}"))

    def _restart_by_key(self, name: str) -> None:
        service = self.supervisor.services.get(name)
        if service is not None and not self.stopping:
            service.submit(service.restart)

    def _process_ops(self, instance: str) -> osproc.ProcessOps:
        """A cgroup per service run when one can be had, else the descendant tracker."""
        root = cgroups.open_root(instance)
        if root is not None:
            self.printer.message(f"services run in cgroups under {root.path}", "debug")
            return osproc.ProcessOps(cgroups=root)
        self.printer.message(
            "no cgroup available (`systemd-run --user --scope -p Delegate=yes promenade "
            "start` gives one): following services' processes through /proc", "debug")
        return osproc.ProcessOps(
            tracker=Descendants(os.getpid(), instance, self._track, notify=self._debug))

    def _supervisor(self, config: Config, instance: str, ops: osproc.ProcessOps) -> Supervisor:
        """The supervisor and what follows its services. Hosts, proxies and the names'
        lookups come first and reach the supervisor through the methods below, which
        they call only once services run."""
        self.hosts = HostsManager(config.manager.hosts_management,
                                  self.hostsd_socket or config.manager.hostsd_socket,
                                  self._emit, debug=self._debug, name_of=self._hosts_name)
        self.proxies = Proxies(self._emit, self._local_hostnames)
        self.mapped_names = MappedNames(self._configured_hostnames, self._hostnames_refreshed)
        if config.manager.router:
            domain = config.manager.domain
            self.router = RouterLink(self.config_path, self._routes, self._emit,
                                     self._urls_changed, debug=self._debug,
                                     leads_here=self._leads_here,
                                     prepare=lambda: ca_problem(domain))
        policy = HostnamePolicy(mapped=self._hostname_mapped,
                                resolves_to_loopback=self.mapped_names.resolves_to_loopback,
                                routed=self._routed_url)
        # After hosts: a service's start has reached hostsd when the names are checked.
        attachments: list[Attachments] = [self.hosts, self.proxies, self.mapped_names]
        if self.router is not None:
            attachments.append(self.router)
        supervisor = Supervisor(config, self.printer, self.publisher, instance, ops=ops,
                                track=self._track, attachments=attachments,
                                hostnames=policy, active_profiles=self.profiles,
                                log_files=self.log_files)
        if self.router is not None:
            # every state event: the router shows why a service is not up
            supervisor.after_change.append(self.router.touch)
            supervisor.after_apply.append(self.router.touch)
        return supervisor

    def _routes(self) -> list[RouteWire]:
        """The routes this manager holds now: its services and the dashboard."""
        views = [names.ServiceView(s.config, s.port, s.status.value, s.status_reason())
                 for s in self.supervisor.services.values()]
        return names.route_set(self.supervisor.config.manager, views,
                               self.web.port if self.web else None)

    def _hosts_name(self, svc: ServiceConfig) -> str | None:
        """The name hostsd maps for a running service: its hostname, or its routed name
        outside `.localhost` (router/names.py)."""
        return names.hosts_entry_name(self.supervisor.config.manager, svc)

    def _leads_here(self, service: str, name: str) -> bool:
        """Whether a routed name reaches this machine now (HostnamePolicy's rule)."""
        return (not names.needs_hosts_entry(name)
                or self.hosts.mapped().get(service) == name
                or self.mapped_names.resolves_to_loopback(name))

    def _map_dashboard(self) -> None:
        """The dashboard's bare domain, outside `.localhost`, is mapped like a service's
        name (under the reserved service name of the manager's events)."""
        name = names.dashboard_entry_name(self.supervisor.config.manager)
        if name is not None and self.web is not None:
            self.hosts.map(names.DASHBOARD_SERVICE, name)

    def _routed_url(self, service: str) -> str | None:
        return self.router.url_for(service) if self.router is not None else None

    def _urls_changed(self) -> None:
        self.supervisor.publish_all()

    def _log_files_settings(self, config: Config) -> None:
        if self.log_files is not None:
            self.log_files.configure(config.manager.log_files)

    def _hostname_mapped(self, service: str) -> bool:
        return service in self.hosts.mapped()

    def _local_hostnames(self) -> list[str]:
        return self.supervisor.local_hostnames()

    def _configured_hostnames(self) -> list[str | None]:
        """What the resolver is asked about: hostnames, and routed names that need an
        entry (one added by hand in `manual` mode makes their URL the routed one)."""
        manager = self.supervisor.config.manager
        return [*self.supervisor.configured_hostnames(),
                *(names.hosts_entry_name(manager, svc)
                  for svc in self.supervisor.config.services.values() if not svc.hostname)]

    def _hostnames_refreshed(self) -> None:
        self.supervisor.publish_hostname_changes()
        if self.router is not None:
            leading = self._routed_leading()
            if leading != self._leading:
                self._leading = leading
                self.supervisor.publish_all()   # their URLs changed

    def _routed_leading(self) -> frozenset[str]:
        """The services whose routed URL is in use now (RouterLink.url_for)."""
        router = self.router
        return frozenset(s for s in self.supervisor.services
                         if router is not None and router.url_for(s) is not None)

    def _commands(self) -> Commands:
        run = RunInfo(pid=self.pid, version=self.version, run_id=self.run_id,
                      started_at=self.started_at, config_path=self.config_path,
                      dashboard_url=self.web.url if self.web else None)
        return Commands(run, self.supervisor, self.reloader, self.publisher,
                        request_stop=self.request_stop, stopping=lambda: self.stopping)

    def _track_web(self, pgid: int, alive: bool) -> None:
        """The dashboard is our child but no service's: never an orphan to kill."""
        if alive and self.supervisor.ops.tracker is not None:
            self.supervisor.ops.tracker.ignore(pgid)
        self._track(pgid, alive)

    def _web(self, config: Config) -> WebProcess | None:
        """The dashboard's process, not started yet (None with --no-ui)."""
        if self.no_ui:
            return None
        port = self.port_override or config.manager.port
        return WebProcess(config.manager.host, port, self.endpoints,
                          self.supervisor.emit, self._track_web)

    def _announce(self) -> None:
        runtime.write_manager_json(self.folder, {
            "pid": self.pid,
            "version": self.version,
            "config_path": str(self.config_path),
            "events": self.endpoints["events"],
            "control": self.endpoints["control"],
            "dashboard_url": self.web.url if self.web else None,
            "started_at": iso_timestamp(self.started_at),
            "run_id": self.run_id,
            "events_tcp": self.tcp_feed.endpoint if self.tcp_feed else None,
            "events_tcp_token": self.tcp_token,
            "profiles": list(self.profiles),
        })
        self._note(f"config {self.config_path}")
        if self.profiles:
            self._note(f"profiles {', '.join(self.profiles)}")
        self.publisher.publish(protocol.MANAGER_TOPIC, {"event": "started", "pid": self.pid,
                                                          "level": "info", "service": None})

    # -- shutdown -------------------------------------------------------------------

    def _on_signal(self, sig: int) -> None:
        if self.stopping:
            self.printer.message("second signal: killing every service now", "warning")
            self.supervisor.ops.kill_all()
            return
        self.request_stop(f"received {signal.Signals(sig).name}")

    def request_stop(self, reason: str) -> None:
        if not self.stopping:
            self.stopping = True
            self._note(f"{reason}: stopping every service")
            self.publisher.publish(protocol.MANAGER_TOPIC,
                                   {"event": "stopping", "message": reason,
                                    "level": "info", "service": None})
            self._stop.set()

    def _shutdown(self) -> None:
        self.stopping = True
        self.reloader.stop()
        self.watchers.close()   # before the stops: no restart for a change seen now
        self.supervisor.shutdown()
        if self.router is not None:
            self.router.close()   # the router drops our routes with the connection
        self.proxies.close()
        self.mapped_names.close()
        self.hosts.close()
        if self.web:
            self.web.stop()
        self.supervisor.ops.close()
        self.control.close()
        if self.tcp_feed:
            self.tcp_feed.close()
        self.publisher.close()
        if self.zap:
            self.zap.close()
        runtime.remove_manager_json(self.folder)
        self.context.term()
        self._note("all services stopped")
        if self.log_files is not None:
            self.log_files.close()
