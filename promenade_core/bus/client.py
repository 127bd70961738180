"""The bus client: find a running manager, send control requests, follow events.

Imports no gevent, so the CLI and users' scripts use it as it is; the web process
passes a `zmq.green` context to make it cooperative.

    info = find_manager(Path("promenade.yaml"))
    with ControlClient(info.control) as bus:
        print(bus.request("status"))
    for kind, item in follow(info):          # backlog then live, no gap, no duplicate
        ...
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from promenade_core import runtime
from promenade_core.bus import protocol
from promenade_core.errors import PromenadeError

#: Linux's largest pid_max (2**22)
MAX_PID = 4_194_304
#: How often a wait without a timeout lets Python see pending signals.
SIGNAL_CHECK_MS = 200
#: How often `follow` checks that its manager still runs: its `stopping` event can be
#: lost (PUB drops), and a dead manager's feed is just silent.
LIVENESS_EVERY = 1.0
#: After a burst of this many messages, a quiet feed is checked for a lost end: the
#: PUB socket drops only for a subscriber hundreds of messages behind.
BURST_MESSAGES = 64
#: How quiet the feed must be before that check.
TAIL_CHECK_SECONDS = 0.1
#: The PLAIN user name on the TCP events feed (only the password, the token, matters).
TCP_USERNAME = b"promenade"


def _poll(sock: zmq.Socket, timeout: float) -> bool:
    """poll() in short steps, so that Ctrl-C is seen even while a long request waits."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if sock.poll(int(min(left * 1000, SIGNAL_CHECK_MS)) or 1, zmq.POLLIN):
            return True


class BusError(PromenadeError):
    """The manager answered `{"ok": false}`; `code` is one of protocol's stable codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BusTimeout(BusError):
    def __init__(self, message: str) -> None:
        super().__init__(protocol.TIMEOUT, message)


@dataclass(frozen=True)
class ManagerInfo:
    """What `manager.json` says about a running manager."""

    pid: int
    version: str
    config_path: str
    events: str
    control: str
    dashboard_url: str | None
    started_at: str
    runtime_dir: Path
    #: Id of this manager run; a restarted manager has another (empty before 0.2).
    run_id: str = ""
    #: `manager.bus_tcp`'s endpoint and the token its subscribers must give, or None.
    events_tcp: str | None = None
    events_tcp_token: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], folder: Path) -> ManagerInfo:
        """Raises ValueError (or KeyError, TypeError) on anything not as a manager writes it."""
        return cls(
            pid=_pid(data["pid"]),
            version=_text(data.get("version", "")),
            config_path=_text(data["config_path"]),
            events=endpoint(data["events"], folder),
            control=endpoint(data["control"], folder),
            dashboard_url=_url(data.get("dashboard_url")),
            started_at=_text(data.get("started_at", "")),
            runtime_dir=folder,
            run_id=_optional_text(data.get("run_id")) or "",
            events_tcp=_optional_endpoint(data.get("events_tcp"), folder),
            events_tcp_token=_optional_text(data.get("events_tcp_token")),
        )


def _pid(value: Any) -> int:
    if type(value) is not int or not 0 < value <= MAX_PID:
        raise ValueError(f"not a pid: {value!r}")
    return value


def _text(value: Any, limit: int = 4096) -> str:
    """A string safe to print: manager.json is shown on terminals."""
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise ValueError("not a printable string")
    return value


def _url(value: Any) -> str | None:
    if value is None:
        return None
    url = _text(value)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not a dashboard URL: {url!r}")
    return url


def endpoint(value: Any, folder: Path) -> str:
    """A bus endpoint a client may connect to: an ipc socket in the (checked) runtime
    folder, or TCP on loopback; anything else in manager.json is not the manager's."""
    text = _text(value)
    if text.startswith("ipc://"):
        if Path(text[len("ipc://"):]).parent == folder:
            return text
    elif text.startswith("tcp://127.0.0.1:"):
        port = text[len("tcp://127.0.0.1:"):]
        if port.isdigit() and port.isascii() and 0 < int(port) < 65536:
            return text
    raise ValueError(f"not an endpoint of this manager: {text!r}")


def _optional_text(value: Any) -> str | None:
    return _text(value) if value else None


def _optional_endpoint(value: Any, folder: Path) -> str | None:
    return endpoint(value, folder) if value else None


def pid_alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (dead, not yet reaped by its parent) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we know
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def other_run(run_id: str, message: dict[str, Any]) -> bool:
    """True when `message` comes from another manager run than `run_id`.

    A manager restarted on the same config binds the same ipc path, so a subscriber
    reconnects to it silently; its seq starts again at 0, and only the run id tells
    the new run's events from old ones.
    """
    other = message.get("run_id")
    return bool(run_id) and isinstance(other, str) and bool(other) and other != run_id


def manager_ended(info: ManagerInfo, run_id: str, current: dict[str, Any] | None,
                  alive: bool) -> str | None:
    """Why the manager run a client follows is over (`current` is manager.json now,
    `alive` whether its pid still runs), or None while it runs."""
    if not alive:
        return f"the manager (pid {info.pid}) has exited"
    if current is None:
        return f"the manager (pid {info.pid}) has stopped"
    if current.get("pid") != info.pid or (run_id and current.get("run_id") != run_id):
        return f"the manager (pid {info.pid}) was replaced by a new run"
    return None


def _still_running(info: ManagerInfo, run_id: str) -> str | None:
    """manager_ended() on the live facts."""
    try:
        current = runtime.read_manager_json(info.runtime_dir)
    except (OSError, PromenadeError):
        current = None  # unreadable or no longer trusted: not the run we follow
    return manager_ended(info, run_id, current, pid_alive(info.pid))


def find_manager(config_path: Path) -> ManagerInfo | None:
    """The manager running for this config as this user, or None; never raises.

    Only a runtime folder and manager.json that are ours are read (runtime checks
    them). A `manager.json` whose manager is gone (lock free or pid dead), or that does
    not hold what a manager writes, is stale: it is removed so that the next reader
    does not trip on it.
    """
    folder = runtime.find_runtime_dir(config_path)
    if folder is None:
        return None
    data = runtime.read_manager_json(folder)
    if data is None:
        return None
    try:
        info = ManagerInfo.from_json(data, folder)
    except (KeyError, TypeError, ValueError):
        runtime.remove_manager_json(folder)
        return None
    if not pid_alive(info.pid) or not runtime.is_locked(folder):
        runtime.remove_manager_json(folder)
        return None
    return info


class ControlClient:
    """REQ client with a timeout; after a timeout the socket is recreated.

    A REQ socket that missed its reply refuses the next send (EFSM), which is how
    circusctl ends up hanging; a fresh socket per timeout avoids that.
    """

    def __init__(
        self, endpoint: str, timeout: float = 10.0, context: zmq.Context | None = None
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None

    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.endpoint)
            self._socket = sock
        return self._socket

    def _reset(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def request(self, cmd: str, timeout: float | None = None, **args: Any) -> Any:
        """Send `{"cmd": cmd, **args}` and return the reply's result; raise BusError."""
        sock = self._connect()
        wait = self.timeout if timeout is None else timeout
        try:
            sock.send(protocol.encode({"cmd": cmd, **args}))
            if not _poll(sock, wait):
                self._reset()
                raise BusTimeout(f"the manager did not answer {cmd!r} within {wait:g} s")
            reply = protocol.decode(sock.recv())
        except zmq.ZMQError as exc:
            self._reset()
            raise BusError(protocol.INTERNAL, f"bus error on {cmd!r}: {exc}") from exc
        if reply.get("ok"):
            return reply.get("result")
        err = reply.get("error") or {}
        raise BusError(str(err.get("code", protocol.INTERNAL)), str(err.get("message", "")))

    def close(self) -> None:
        self._reset()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventSubscriber:
    """SUB socket on the events feed; `recv` returns `(topic, message)` or None.

    `token` is the `events_tcp_token` of manager.json, needed on the TCP feed
    (`manager.bus_tcp`); `open_events(info, tcp=True)` passes it for you.
    """

    def __init__(
        self,
        endpoint: str,
        topics: Iterable[str] = ("",),
        context: zmq.Context | None = None,
        rcvhwm: int = 100_000,
        token: str | None = None,
    ) -> None:
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        if token is not None:
            self._socket.setsockopt(zmq.PLAIN_USERNAME, TCP_USERNAME)
            self._socket.setsockopt(zmq.PLAIN_PASSWORD, token.encode())
        for topic in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self._socket.connect(endpoint)

    def recv(self, timeout: float | None = None) -> tuple[str, dict[str, Any]] | None:
        if timeout is not None and not self._socket.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        # Without a timeout, wait in short polls: a signal (Ctrl-C) may be delivered to
        # one of libzmq's threads, and a blocking recv in this one would never see it.
        while timeout is None and not self._socket.poll(SIGNAL_CHECK_MS, zmq.POLLIN):
            pass
        topic, body = self._socket.recv_multipart()
        return topic.decode(), protocol.decode(body)

    def close(self) -> None:
        self._socket.close(linger=0)

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_events(
    info: ManagerInfo,
    topics: Iterable[str] = ("",),
    tcp: bool = False,
    context: zmq.Context | None = None,
    rcvhwm: int = 100_000,
) -> EventSubscriber:
    """A subscriber on the manager's events: its ipc socket, or with `tcp` its
    `manager.bus_tcp` feed, authenticated with the token from manager.json."""
    if not tcp:
        return EventSubscriber(info.events, topics, context=context, rcvhwm=rcvhwm)
    if info.events_tcp is None or info.events_tcp_token is None:
        raise PromenadeError(
            f"the manager for {info.config_path} has no TCP events feed; "
            "set manager.bus_tcp: 127.0.0.1:PORT in its config and restart it")
    return EventSubscriber(info.events_tcp, topics, context=context, rcvhwm=rcvhwm,
                           token=info.events_tcp_token)


#: How long one `sync` waits for its marker before it is sent again.
SYNC_WAIT = 0.1
#: Poll step while waiting for a marker (short: plain sockets block for it).
SYNC_POLL_MS = 20


def socket_marker(sock: zmq.Socket) -> Callable[[str, float], bool]:
    """A `seen` for wait_joined that reads `sock` itself (before anyone else does):
    True once the `sync/<token>` marker arrives within `wait` seconds. What comes
    before the marker is older than the snapshot that follows the join: dropped."""
    def seen(token: str, wait: float) -> bool:
        marker = f"{protocol.SYNC_PREFIX}{token}".encode()
        until = time.monotonic() + wait
        while time.monotonic() < until:
            # poll with a timeout, never a bare recv: cooperative on zmq.green sockets,
            # and a plain one still sees Ctrl-C between polls.
            if sock.poll(SYNC_POLL_MS, zmq.POLLIN) and sock.recv_multipart()[0] == marker:
                return True
        return False
    return seen


def wait_joined(
    sock: zmq.Socket,
    request: Callable[..., Any],
    timeout: float = 2.0,
    seen: Callable[[str, float], bool] | None = None,
    token: str | None = None,
) -> None:
    """Return once `sock`'s subscriptions are live, so a snapshot taken next loses nothing.

    A SUB socket receives nothing sent before its connection completes (the slow
    joiner), and a new subscription takes effect a little later. The `sync` command
    makes the manager publish a marker on `sync/<token>` (no seq consumed); a marker
    subscribed after the other topics proves they are all live. `request` is a control
    client's (`ControlClient.request` or the web process's pool); `seen(token, wait)`
    says whether the marker arrived (default: read `sock` for it, see socket_marker).
    Works with plain and `zmq.green` sockets alike.
    """
    token = token or os.urandom(6).hex()
    marker = f"{protocol.SYNC_PREFIX}{token}".encode()
    wait = seen or socket_marker(sock)
    sock.setsockopt(zmq.SUBSCRIBE, marker)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(BusError):  # not answered: ask again
                request("sync", token=token, timeout=min(1.0, timeout))
            if wait(token, SYNC_WAIT):
                return
    finally:
        sock.setsockopt(zmq.UNSUBSCRIBE, marker)
    raise BusTimeout(f"could not join the events feed within {timeout:g} s")


def await_subscription(sub: EventSubscriber, bus: ControlClient, timeout: float = 2.0) -> None:
    """wait_joined() for an EventSubscriber and a ControlClient (user scripts' form)."""
    wait_joined(sub._socket, bus.request, timeout)


@dataclass
class Joined:
    """What join_feed gives: the snapshot (or `logs` reply) and the gap accounting
    positioned at its seq: drop what `tracker.old(seq)` says, count what it misses."""

    snapshot: dict[str, Any]
    tracker: protocol.SeqTracker
    run_id: str


def join_feed(
    sock: zmq.Socket,
    request: Callable[..., Any],
    cmd: str = "snapshot",
    timeout: float = 2.0,
    seen: Callable[[str, float], bool] | None = None,
    **args: Any,
) -> Joined:
    """The Clone pattern's join: `sock` is subscribed already; wait until that is live,
    then take the snapshot (`cmd`: `snapshot`, or `logs` with its `args`); every event
    with seq <= the snapshot's is in it, every later one arrives on `sock`."""
    wait_joined(sock, request, timeout, seen)
    snap = request(cmd, **args)
    seq = int(snap["seq"])
    return Joined(snap, protocol.SeqTracker(seq), str(snap.get("run_id") or ""))


def follow(
    info: ManagerInfo,
    topics: Iterable[str] = (protocol.LOG_PREFIX, protocol.STATE_PREFIX),
    services: Iterable[str] | None = None,
    tail: int | None = None,
    context: zmq.Context | None = None,
    idle: float | None = None,
    rcvhwm: int = 100_000,
    join: str = "snapshot",
) -> Generator[tuple[str, dict[str, Any]], None, None]:
    """Backlog then live events, with no gap and no duplicate between them.

    The Clone pattern (join_feed): subscribe first, then take a snapshot, then drop
    every event whose seq is not newer than the snapshot's. Yields `("log", message)`
    for each log message (the `log/` shape, backlog and live alike; the backlog's first
    one may be trimmed to `tail` lines), `("state", message)`, `("config", message)`,
    `("manager", message)` and `("gap", {"missed": n})` where the feed lost messages.
    Stops after `idle` seconds without events when `idle` is given, and after
    `("end", {"reason": text})` when the manager run is over: an event of another run
    arrives, or (checked every LIVENESS_EVERY seconds, events or not) its pid is gone
    or its manager.json removed or rewritten by another run. The `stopping` event is
    not the end: the services' last lines come after it, and it may be lost anyway.

    `join` names another command to join with (it must answer `seq` and `run_id`):
    `log_mark`, whose answer is yielded first as `("joined", answer)`; the live events
    then start right after the log files' mark (`promenade logs -f`).
    """
    wanted = set(services) if services else None
    # Everything is subscribed and filtered here: seq is one counter across all
    # topics, so only the whole feed shows which gaps are real losses.
    sub = EventSubscriber(info.events, ("",), context=context, rcvhwm=rcvhwm)
    bus = ControlClient(info.control, context=context)
    try:
        joined = join_feed(sub._socket, bus.request, cmd=join)
        run_id = joined.run_id or info.run_id
        if join != "snapshot":
            yield "joined", joined.snapshot
        backlog = [m for m in joined.snapshot.get("logs", ())
                   if wanted is None or m["service"] in wanted]
        for message in protocol.log_tail(backlog, tail):
            yield "log", message
        prefixes = tuple(topics)

        def select(topic: str, service: str | None) -> bool:
            return topic.startswith(prefixes) and (
                wanted is None or service is None or service in wanted)
        for kind, item in _live(sub, joined.tracker, select, idle,
                                lambda: _still_running(info, run_id), run_id,
                                functools.partial(_fetch_lines, bus)):
            if kind == "gap":
                _report_gap(bus, item["missed"])
            yield kind, item
    finally:
        sub.close()
        bus.close()


def _fetch_lines(bus: ControlClient, since: int, until: int | None) -> list[dict[str, Any]]:
    """The buffered lines after `since` up to `until` (protocol.repair_request): what a
    subscriber missed, where the manager's buffers still hold it."""
    try:
        reply = bus.request("logs", timeout=2.0, **protocol.repair_request(since, until))
        return list(reply.get("messages") or ())
    except BusError:
        return []


def _report_gap(bus: ControlClient, missed: int) -> None:
    """Tell the manager, so lost messages show in `status` (bus.dropped): a PUB socket
    drops silently, only subscribers can see what they missed."""
    try:
        bus.request("gap", timeout=1.0, count=missed)
    except BusError:
        pass


def _live(
    sub: EventSubscriber,
    tracker: protocol.SeqTracker,
    select: Callable[[str, str | None], bool],
    idle: float | None,
    ended: Callable[[], str | None],
    run_id: str,
    fetch: Callable[[int, int | None], list[dict[str, Any]]],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The live events `select`ed by topic and service, with what the PUB socket
    dropped fetched back (`fetch(since, until)` from the manager's buffers): a stretch
    revealed by a seq jump, and the end of a burst, checked once the feed is quiet
    (the PUB socket drops the newest messages, so nothing later may reveal it)."""
    quiet_since = time.monotonic()
    next_check = quiet_since + LIVENESS_EVERY
    burst = 0
    last_repair = -protocol.REPAIR_INTERVAL
    joined_at = tracker.last  # the snapshot covers events up to here
    while True:
        now = time.monotonic()
        if now >= next_check:
            next_check = now + LIVENESS_EVERY
            reason = ended()
            if reason is not None:
                yield "end", {"reason": reason}
                return
        wait = next_check - now
        if idle is not None:
            if now - quiet_since >= idle:
                return
            wait = min(wait, idle - (now - quiet_since))
        if burst >= BURST_MESSAGES:
            wait = min(wait, TAIL_CHECK_SECONDS)
        got = sub.recv(timeout=max(wait, 0.001))
        if got is None:
            if burst >= BURST_MESSAGES and time.monotonic() - quiet_since >= TAIL_CHECK_SECONDS:
                burst = 0
                start = tracker.last
                if start is not None:
                    recovered = fetch(start, None)
                    if recovered:
                        end = recovered[-1]["seq"]
                        tracker.advance(end, start + 1)
                        yield from _filled(end - start, recovered, select)
            continue
        quiet_since = time.monotonic()
        burst += 1
        topic, msg = got
        if other_run(run_id, msg):
            yield "end", {"reason": "the manager was restarted (a new run started)"}
            return
        kind, service = protocol.parse_topic(topic)
        seq = int(msg.get("seq", 0))
        first = int(msg.get("first_seq", seq))
        if kind == "sync" or (kind != "log" and joined_at is not None and seq <= joined_at):
            continue
        if kind == "log" and tracker.old(first):
            # The snapshot or a repair had these lines (in flight, not lost): the rest.
            cut = protocol.log_after(msg, tracker.last or 0)
            if cut is None:
                continue
            msg, first = cut, int(cut["first_seq"])
        start = tracker.last
        missed = tracker.advance(seq, first)
        if missed and start is not None:
            recovered = []
            if quiet_since - last_repair >= protocol.REPAIR_INTERVAL:
                last_repair = quiet_since
                recovered = fetch(start, first - 1)
            yield from _filled(missed, recovered, select)
        if select(topic, service):
            yield kind, msg


def _filled(missed: int, recovered: list[dict[str, Any]],
            select: Callable[[str, str | None], bool]) -> Iterator[tuple[str, dict[str, Any]]]:
    """`missed` seqs were not received: a gap for those no buffer held any more (lines
    trimmed since, or events), then the recovered (newest) lines."""
    lost = missed - sum(len(m["lines"]) for m in recovered)
    if lost > 0:
        yield "gap", {"missed": lost}
    for message in recovered:
        if select(protocol.log_topic(message["service"]), message["service"]):
            yield "log", message
