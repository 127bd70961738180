"""The supervisor's side of hostnames: a lease held on promenade-hostsd, or instructions.

In `auto` mode the manager holds ONE connection to hostsd for its whole life; every name it
adds without `persist` is leased to that connection, so whatever happens to the manager
(clean exit, crash, SIGKILL) hostsd removes the names when the connection closes. The
manager never needs root, and never hangs on hostsd: every request has a timeout, and a
missing hostsd is a warning, not an error — the service starts, its name is just not mapped.

`HostsManager` is gevent-cooperative (`gevent.socket`; the supervisor is not
monkey-patched). `hostsd_request` is the plain blocking call for the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.lock
import gevent.socket

from promenade_core.bus.protocol import Emit
from promenade_core.config.choices import HostsMode, words
from promenade_core.errors import PromenadeError
from promenade_core.supervise.states import ALIVE
from promenade_hostsd.hostnames import resolves_by_itself

#: sudo's default `secure_path`: a `promenade` elsewhere (a virtualenv, pipx's
#: ~/.local/bin) is not found under sudo, so the hint gives its full path.
SUDO_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
#: How often an idle manager checks that hostsd (and so its lease) is still there.
KEEPALIVE = 5.0


class HostsdUnavailable(PromenadeError):
    """No hostsd answers at the socket, or we may not use it."""


class HostsdRefused(PromenadeError):
    """hostsd answered with an error (`code` is its error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def install_command() -> str:
    """`sudo promenade hosts install`, a command that works from a pip install."""
    found = shutil.which("promenade")
    program = found if found and os.path.dirname(found) not in SUDO_PATH else "promenade"
    return f"sudo {program} hosts install"


def unavailable_message(socket_path: str, exc: OSError) -> str:
    """What to do about a hostsd we cannot reach, for the manager and the CLI alike."""
    if isinstance(exc, PermissionError):
        return (f"no permission to use promenade-hostsd at {socket_path}: you are not in "
                f"its group 'promenade'; `{install_command()}` adds you (and creates the "
                "group), then log in again or run `newgrp promenade`")
    return (f"promenade-hostsd is not running (nothing answers at {socket_path}): install "
            f"it with `{install_command()}`")


def host_lines(hostname: str) -> list[str]:
    """The lines hostsd writes, without its marker: `.local` also gets `::1`, since macOS
    sends `.local` to mDNS and waits seconds for an IPv6 answer otherwise."""
    addresses = ["127.0.0.1", "::1"] if hostname.lower().endswith(".local") else ["127.0.0.1"]
    return [f"{address}  {hostname}" for address in addresses]


def manual_instructions(hostnames: list[str]) -> str:
    lines = [line for hostname in hostnames for line in host_lines(hostname)]
    body = "\n".join(f"  {line}" for line in lines)
    printf = "\\n".join(lines)
    return (f"add these lines to /etc/hosts:\n{body}\n"
            f"for example: printf '{printf}\\n' | sudo tee -a /etc/hosts")


def hostsd_request(socket_path: str, request: dict[str, Any], timeout: float = 5.0
                   ) -> dict[str, Any]:
    """One request on a fresh connection (plain blocking sockets, for the CLI).

    Returns hostsd's reply, `{"ok": false, …}` included; raises HostsdUnavailable when
    nothing (usable) answers.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
            sock.sendall(json.dumps(request).encode() + b"\n")
            with sock.makefile("rb") as stream:
                line = stream.readline()
        except OSError as exc:
            raise HostsdUnavailable(unavailable_message(socket_path, exc)) from None
    return decode_reply(socket_path, line)


def decode_reply(socket_path: str, line: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise HostsdUnavailable(f"no valid reply from promenade-hostsd at {socket_path} "
                                f"(got {line[:80]!r})")
    return reply


def refusal(reply: dict[str, Any]) -> HostsdRefused:
    """The error of a `{"ok": false, …}` reply, as an exception to raise or to quote."""
    error = reply.get("error")
    if isinstance(error, dict):
        return HostsdRefused(str(error.get("code")), str(error.get("message")))
    return HostsdRefused("unknown", str(error))


class _ServiceLike(Protocol):
    name: str
    status: Any

    @property
    def config(self) -> Any: ...


def _hostname(config: Any) -> str | None:
    hostname: str | None = config.hostname
    return hostname


class HostsManager:
    """Keeps hostsd's entries equal to what the running services want.

    `map`/`unmap` record the wish and then reconcile; a lost connection (hostsd restarted)
    loses the leases, so a keepalive greenlet reconnects and maps everything again.
    """

    def __init__(self, mode: HostsMode | str, socket_path: str, emit: Emit,
                 timeout: float = 3.0, keepalive: float = KEEPALIVE,
                 debug: Callable[[str], None] = lambda text: None,
                 name_of: Callable[[Any], str | None] = _hostname) -> None:
        if mode not in words(HostsMode):
            raise ValueError(f"hosts_management must be one of {words(HostsMode)}, "
                             f"not {mode!r}")
        self.mode = HostsMode(mode)
        self.socket_path = socket_path
        self.emit = emit
        self.debug = debug  # each request and reply, for `promenade start -v`
        #: the name a service's config asks to map: its `hostname`, or (the manager
        #: passes router/names.py hosts_entry_name) its routed name outside .localhost
        self.name_of = name_of
        self.timeout = timeout
        self.keepalive = keepalive
        self._wanted: dict[str, str] = {}
        self._mapped: dict[str, str] = {}
        self._builtin: dict[str, str] = {}  # `*.localhost`: resolves with no entry at all
        self._refused: dict[str, str] = {}  # not retried until the hostname changes
        self._told: set[str] = set()  # manual mode: hostnames already explained
        self._sock: gevent.socket.socket | None = None
        self._stream: Any = None
        self._lock = gevent.lock.RLock()
        self._warned = False
        self._closed = gevent.event.Event()
        self._keeper: gevent.Greenlet | None = None

    # -- what the supervisor calls -----------------------------------------------------

    def map(self, service: str, hostname: str) -> None:
        """On service start; idempotent; a new hostname replaces the service's old one.

        A `*.localhost` name is never sent to hostsd (it would refuse it: no entry is
        needed) and never explained in `manual` mode: it counts as mapped at once."""
        if self.mode is HostsMode.DISABLED or self._closed.is_set():
            return
        if resolves_by_itself(hostname):
            self._builtin[service] = hostname
            self._forget(service)  # a reload may have put it in place of a hostsd name
            return
        self._builtin.pop(service, None)
        if self.mode is HostsMode.MANUAL:
            if hostname.lower() not in self._told:
                self._told.add(hostname.lower())
                self.emit(f"hostname {hostname} for service '{service}' is not mapped "
                          f"(hosts_management: manual); {manual_instructions([hostname])}",
                          service=service)
            return
        self._wanted[service] = hostname
        self._sync()
        if self._keeper is None:
            self._keeper = gevent.spawn(self._keep)

    def unmap(self, service: str) -> None:
        """On service stop."""
        self._builtin.pop(service, None)
        self._forget(service)

    def _forget(self, service: str) -> None:
        if self._wanted.pop(service, None) is not None:
            self._sync()

    def close(self) -> None:
        """At shutdown: remove everything; closing the connection would remove it too."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wanted.clear()
        self._builtin.clear()
        with self._lock:  # waits for a request in flight (bounded by the timeout)
            if self._sock is not None and self._mapped:
                self._request({"op": "clear"})
            self._disconnect()
        if self._keeper is not None:
            self._keeper.join(self.timeout)

    def mapped(self) -> dict[str, str]:
        """Names that resolve now: service -> hostname, as hostsd confirmed them (`auto`),
        plus every `*.localhost` name (`auto` and `manual`)."""
        return {**self._mapped, **self._builtin}

    # The supervisor's Attachments protocol, so the manager can attach us directly.
    def on_started(self, service: _ServiceLike) -> None:
        name = self.name_of(service.config)
        if name:
            self.map(service.name, name)

    def on_stopped(self, service: _ServiceLike) -> None:
        self.unmap(service.name)

    def on_updated(self, service: _ServiceLike, old: Any) -> None:
        """A reload changed a service in place; a running one follows its new hostname."""
        new = self.name_of(service.config)
        if new == self.name_of(old):
            return
        if new and service.status in ALIVE:
            self.map(service.name, new)
        else:
            self.unmap(service.name)

    # -- reconciliation ----------------------------------------------------------------

    def _sync(self) -> None:
        with self._lock:
            if not self._connect():
                return
            for service in [s for s in self._mapped if s not in self._wanted]:
                reply = self._request({"op": "remove", "service": service})
                if reply is None:
                    return
                self._mapped.pop(service, None)
            for service, hostname in list(self._wanted.items()):
                if self._mapped.get(service) == hostname or self._refused.get(service) == hostname:
                    continue
                reply = self._request({"op": "add", "service": service, "hostname": hostname})
                if reply is None:
                    return
                if reply.get("ok"):
                    self._mapped[service] = hostname
                else:
                    self._refused[service] = hostname
                    self._mapped.pop(service, None)
                    self.emit(f"Warning: hostname {hostname} for service '{service}' not "
                              f"mapped: {refusal(reply)}", "warning", service=service)

    def _connect(self) -> bool:
        if self._sock is not None:
            return True
        sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            if not self._warned:
                self._warned = True
                self.emit(f"Warning: hostnames are not mapped: "
                          f"{unavailable_message(self.socket_path, exc)}", "warning")
            return False
        self._sock, self._stream = sock, sock.makefile("rb")
        self._refused.clear()
        if self._warned:
            self._warned = False
            self.emit(f"connected to promenade-hostsd at {self.socket_path}: mapping hostnames")
        return True

    def _request(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """Send one request on the lease; None (and disconnected) when hostsd is gone."""
        assert self._sock is not None
        self.debug(f"hostsd <- {json.dumps(request)}")
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            line = self._stream.readline()
            reply = decode_reply(self.socket_path, line)
            self.debug(f"hostsd -> {json.dumps(reply)}")
            return reply
        except (OSError, HostsdUnavailable) as exc:
            self.debug(f"hostsd -> no reply: {exc}")
            self._disconnect()
            if not self._closed.is_set() and not self._warned:
                self._warned = True
                self.emit(f"Warning: lost promenade-hostsd at {self.socket_path} ({exc}); "
                          "hostnames are unmapped until it is back", "warning")
            return None

    def _disconnect(self) -> None:
        """hostsd drops a closed connection's leases: nothing of ours is mapped any more."""
        if self._sock is not None:
            self._stream.close()
            self._sock.close()
        self._sock = self._stream = None
        self._mapped.clear()

    def _keep(self) -> None:
        """Notice a restarted hostsd (our leases died with the old one) and map again."""
        while not self._closed.wait(self.keepalive):
            with self._lock:
                if self._sock is not None:
                    self._request({"op": "ping"})
                if self._wanted and not self._closed.is_set():
                    self._sync()
