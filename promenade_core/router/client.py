"""The manager's lease on the user's router: its routes, kept equal to its services.

One connection for the manager's life (JSON lines, router/protocol.py): `hello`, then
`info` (the router's ports and whether the CA is trusted), then a `routes` message
whenever the route set changes (it REPLACES the set the connection holds). The routes
are leased to the connection, so whatever happens to the manager, SIGKILL included,
the router drops them at once. One greenlet owns the socket; everything else only
marks the set dirty, so no caller ever waits on the router.

A router that is not there is started (router/launch.py, in gevent's thread pool: it
spawns and polls), and if that fails the manager warns once and carries on with the
URLs it had before the router existed; it tries again later, and again when a router it
used goes away. Services' URLs name the router only while it holds their routes.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.socket

from promenade_core.bus.protocol import Emit
from promenade_core.errors import PromenadeError
from promenade_core.router import names
from promenade_core.router.protocol import MAX_LINE, VERSION, RouteWire

#: seconds between `info` requests on an idle connection: how soon a router that died
#: is noticed (and started again), and a CA trusted meanwhile is seen
KEEPALIVE = 2.0
#: first wait before trying again after the router could not be reached or started;
#: doubled up to RETRY_MAX, so a machine where it cannot start is not asked every second
RETRY = 5.0
RETRY_MAX = 60.0
#: the pause before connecting again after a connection that worked broke
RECONNECT = 0.5
#: Seconds `close` gives the worker to let go of the router (twice at most).
CLOSE_WAIT = 0.5
TRUST_HINT = ("the local CA is not trusted yet: browsers will warn about the "
              "https:// URLs until you run `promenade trust`")


class RouterGone(Exception):
    """The connection broke, or the router said something we cannot use."""


class Refused(Exception):
    """The router answered `{"ok": false, ...}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def held_names(routes: list[RouteWire]) -> dict[str, str]:
    """service -> routed name, the first route of each service (as the router keeps
    the first of a name): one lookup per `url_for` instead of a walk over every route,
    which made each status of N routed services cost N x N."""
    found: dict[str, str] = {}
    for route in routes:
        found.setdefault(route["service"], route["name"])
    return found


def launch_router() -> None:
    """Start the router unless one answers (router/launch.py; blocking, so the caller
    runs it in a thread)."""
    from promenade_core.router.launch import ensure_router

    ensure_router()


def ca_problem(domain: str) -> str | None:
    """Makes sure the user's CA may sign `domain`'s names (blocking: run in a thread).

    Outside `*.localhost` the CA must permit the domain (names.ca_domain): with no CA
    yet, it is made here with that domain, before the router starts and would make one
    for `localhost` alone; an existing CA without it is never replaced behind the user's
    back, so the text returned says exactly what to run (tls/ca.py's error)."""
    wanted = names.ca_domain(domain)
    if wanted is None:
        return None   # `*.localhost`: the router's own CA; cryptography stays unimported
    from promenade_core.tls.ca import ensure_ca

    try:
        ensure_ca([wanted])
    except (PromenadeError, OSError) as exc:   # OSError: an unreadable CA folder
        return (f"https://*.{domain} cannot be served: {exc}; then stop every project "
                "so that the router exits and loads the new CA")
    return None


def default_socket_path() -> Path:
    from promenade_core.router.paths import router_socket_path

    return router_socket_path()


class RouterLink:
    """The supervisor's attachment for the router (see the module)."""

    def __init__(self, project: Path, routes: Callable[[], list[RouteWire]], emit: Emit,
                 changed: Callable[[], None],
                 socket_path: Callable[[], Path] = default_socket_path,
                 launch: Callable[[], None] = launch_router,
                 timeout: float = 3.0, keepalive: float = KEEPALIVE,
                 retry: float = RETRY,
                 debug: Callable[[str], None] = lambda text: None,
                 leads_here: Callable[[str, str], bool] = lambda service, name: True,
                 prepare: Callable[[], str | None] = lambda: None) -> None:
        self.project = project
        self.routes = routes        # the route set wanted now (names.route_set)
        self.emit = emit
        self.changed = changed      # URLs may differ: the manager republishes them
        self.socket_path = socket_path
        self.launch = launch
        self.timeout = timeout
        self.keepalive = keepalive
        self.retry = retry
        self.debug = debug   # each request and reply, for `promenade start -v`
        #: whether (service, routed name) reaches this machine now: always for
        #: `*.localhost`, else once hostsd mapped it or it resolves to loopback
        self.leads_here = leads_here
        #: run in a thread before each connection (and so before starting a router):
        #: the manager makes sure the CA permits its domain; a text is a warning
        self.prepare = prepare
        self._prepare_told: str | None = None
        #: the routes the router holds for us (None: none, or not connected)
        self._held: list[RouteWire] | None = None
        #: service -> its routed name in `_held`: what URLs depend on (url_for's index)
        self._names: dict[str, str] = {}
        #: the router's `info` while connected
        self._info: dict[str, Any] | None = None
        #: a set the router refused: not sent again until the wanted set changes
        self._refused: list[RouteWire] | None = None
        self._dirty = gevent.event.Event()
        self._closed = gevent.event.Event()
        self._warned = False
        self._trust_told = False
        self._worker: gevent.Greenlet | None = None

    # -- what the manager and the supervisor call -------------------------------------

    def start(self) -> None:
        if self._worker is None:
            self._worker = gevent.spawn(self._run)

    def close(self) -> None:
        """At shutdown: the connection closes, and the router drops our routes with it.

        A worker holding a lease leaves its loop at once; one waiting for a router that
        is slow to start (or fails to) is not waited for: it is killed, which closes
        whatever it has open, so a stop never waits out a launch's timeouts."""
        self._closed.set()
        self._dirty.set()
        if self._worker is not None:
            self._worker.join(CLOSE_WAIT)
            self._worker.kill(block=True, timeout=CLOSE_WAIT)

    def touch(self, *_: object) -> None:
        """Something a route depends on may have changed (a state, a port, a reload)."""
        self._dirty.set()

    on_started = on_stopped = touch

    def on_updated(self, service: object, old: object) -> None:
        self._dirty.set()

    def url_for(self, service: str) -> str | None:
        """`https://api.myapp.localhost[:port]` while the router holds the service's
        route; None otherwise (the caller falls back to today's URL)."""
        info = self._info
        if info is None or self._held is None:
            return None
        name = self._names.get(service)
        if name is None or not self.leads_here(service, name):
            return None
        return names.url(name, int(info["https_port"]))

    # -- the connection's greenlet -------------------------------------------------------

    def _run(self) -> None:
        wait = self.retry
        while not self._closed.is_set():
            sock = self._open()
            if sock is not None and self._lease(sock):
                wait = self.retry   # it worked a while: a new router may be up at once
                self._closed.wait(RECONNECT)
                continue
            # nothing there, or a router that will not take us (another version):
            # ask again later, less and less often
            self._closed.wait(wait)
            wait = min(wait * 2, RETRY_MAX)

    def _lease(self, sock: gevent.socket.socket) -> bool:
        """Hold the lease until the connection breaks or we close; whether the router
        took our hello (a refused one is no reason to reconnect at once)."""
        greeted = False
        stream = sock.makefile("rb")
        try:
            greeted = self._hello(sock, stream)
            self._serve(sock, stream)
        except (OSError, RouterGone, Refused) as exc:
            if not self._closed.is_set():
                self._unavailable(f"lost the router ({exc or type(exc).__name__})")
        finally:
            stream.close()
            sock.close()
            self._forget()
        return greeted

    def _open(self) -> gevent.socket.socket | None:
        """A connection to the router, starting it first when nothing answers."""
        self._prepared(gevent.get_hub().threadpool.apply(self.prepare))
        try:
            path = str(self.socket_path())
            sock = self._connect(path)
            if sock is None:
                gevent.get_hub().threadpool.apply(self.launch)
                sock = self._connect(path)
        except (PromenadeError, OSError, ImportError) as exc:
            self._unavailable(f"the router could not be started: {exc}")
            return None
        if sock is None:
            self._unavailable(f"nothing answers at {path} after starting the router")
        return sock

    def _prepared(self, problem: str | None) -> None:
        """Says `prepare`'s problem once (again only when it changes)."""
        if problem is not None and problem != self._prepare_told:
            self.emit(f"Warning: {problem}", "warning")
        self._prepare_told = problem

    def _connect(self, path: str) -> gevent.socket.socket | None:
        sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            return None
        return sock

    def _unavailable(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            self.emit(f"Warning: {why}; service URLs keep their ports until it is back",
                      "warning")

    def _serve(self, sock: gevent.socket.socket, stream: Any) -> None:
        while not self._closed.is_set():
            self._dirty.clear()
            self._sync(sock, stream)
            if not self._dirty.wait(self.keepalive):
                self._update_info(self._ask(sock, stream, {"op": "info"}))

    def _hello(self, sock: gevent.socket.socket, stream: Any) -> bool:
        """hello, then info; RouterGone (so never True) when the router refuses us."""
        try:
            self._ask(sock, stream, {"op": "hello", "pid": os.getpid(),
                                     "project": str(self.project), "version": VERSION})
            info = self._ask(sock, stream, {"op": "info"})
        except Refused as exc:
            raise RouterGone(f"{exc.code}: {exc}") from None
        if self._warned:
            self._warned = False
            self.emit("connected to the router: services get named HTTPS URLs again")
        self._update_info(info)
        return True

    def _update_info(self, info: dict[str, Any]) -> None:
        port = info.get("https_port")
        if not isinstance(port, int) or isinstance(port, bool):
            raise RouterGone(f"info without an https_port: {info!r}")
        before, self._info = self._info, info
        if before is None or before.get("https_port") != port:
            self.changed()
        if info.get("ca_trusted") is False and not self._trust_told:
            self._trust_told = True
            self.emit(f"Warning: {TRUST_HINT}", "warning")

    def _sync(self, sock: gevent.socket.socket, stream: Any) -> None:
        wanted = self.routes()
        if wanted == self._held or wanted == self._refused:
            return
        try:
            self._ask(sock, stream, {"op": "routes", "routes": wanted})
        except Refused as exc:
            self._refused = wanted
            self.emit(f"Warning: the router refused this project's names ({exc.code}): "
                      f"{exc}", "warning")
            return
        self._refused = None
        first = self._held is None
        names_before, self._held = self._names, wanted
        self._names = held_names(wanted)
        if first or self._names != names_before:
            self.changed()   # a route's status alone changes no URL: no event for all
        if first:
            self._announce(wanted)

    def _announce(self, held: list[RouteWire]) -> None:
        dashboard = next((r for r in held if r["service"] == names.DASHBOARD_SERVICE), None)
        if dashboard is not None and self._info is not None:
            self.emit(f"dashboard {names.url(dashboard['name'], self._info['https_port'])}")

    def _ask(self, sock: gevent.socket.socket, stream: Any,
             request: dict[str, Any]) -> dict[str, Any]:
        """One request, one reply line; Refused for `ok: false`."""
        text = json.dumps(request, separators=(",", ":"))
        if request.get("op") != "info" or self._info is None:   # not every keepalive
            self.debug(f"router <- {text}")
        sock.sendall(text.encode() + b"\n")
        line = stream.readline(MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise RouterGone("the connection closed" if not line else "reply too long")
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise RouterGone(f"not a JSON object: {line[:80]!r}")
        if reply.get("ok") is not True:
            self.debug(f"router -> {line.decode(errors='replace').strip()}")
            raise Refused(str(reply.get("code")), str(reply.get("message")))
        return reply

    def _forget(self) -> None:
        """The connection is gone, and with it every route it held."""
        had = self._info is not None or self._held is not None
        self._info = self._held = self._refused = None
        self._names = {}
        if had and not self._closed.is_set():
            self.changed()
