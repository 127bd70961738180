"""One SUB socket on the manager's events, fanned out to every WebSocket client.

Lines the manager's PUB socket dropped (this process fell behind in a flood) are
fetched back from the manager's buffers (`logs` with `since`/`until`) where they are
still there, before the message that revealed the gap is passed on; the PUB socket
drops the newest messages, so when the feed goes quiet after lines the hub also asks
for anything newer than the last seq it had, or the end of a burst (often the line
that explains it) could be lost without a later message to reveal it. What the
buffers no longer hold becomes a `gap` marker with the count.

The hub greenlet never waits for a browser: each client has a bounded queue, and a
client whose queue is full loses its oldest queued lines (counted), replaced by one
`gap` marker, and goes on with the newest. A slow tab therefore costs
bounded memory and never delays the feed, the REST API or the other clients.
Serialisation is lazy and shared: the first client that sends an event encodes it, the
others reuse the text.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import zmq.green as zmq

from promenade_core.bus import protocol
from promenade_core.bus.client import BusError, join_feed, wait_joined
from promenade_core.origins import routed_names

#: Lines a client may have queued before it starts losing them.
CLIENT_QUEUE_LINES = 20_000
#: Lines the pump takes at a time: its working set (frames built, not yet sent).
TAKE_LINES = 1_000
#: Non-log events (rare) a client may have queued on top; beyond that it is dropped.
CLIENT_QUEUE_EVENTS = 5_000
#: Messages the SUB socket may hold (log messages are at most 16 KiB: 24 MB at worst,
#: reached only when this process is starved of CPU during a flood): past that the
#: manager's PUB drops, the clients get a gap marker and a fresh status document. At
#: 2,000 a starved web process grew by 28-32 MB in two of three 10 s floods
#: (memory_bound); at 1,000 (with the manager's 100) a client that kept up lost lines
#: when the web process was starved (tests/test_web_stream.py).
RCVHWM = 1500
#: Always followed; `log/` only while a client wants lines.
EVENT_TOPICS = (protocol.STATE_PREFIX, protocol.CONFIG_TOPIC, protocol.MANAGER_TOPIC)
#: How long the hub handles messages before letting other greenlets run.
HUB_SLICE_SECONDS = 0.002
#: How long the feed must be quiet after lines before the hub checks that it had the
#: last of them (see the module's docstring).
TAIL_CHECK_MS = 100


def _dumps(message: dict[str, Any]) -> str:
    return protocol.encode(message).decode()


def _dumps_str(text: str) -> str:
    return json.dumps(text)


class Item:
    """One event as the clients see it; decoded and encoded at most once per form.

    A log batch from the bus stays raw bytes: its header (seq, first_seq, service) is
    read without decoding the lines, and the dashboard's form is the raw JSON with a
    `type` spliced in. In a flood, that saves a full decode and re-encode per batch.
    """

    __slots__ = ("_batch_text", "_line_texts", "_message", "_raw", "first_seq", "kind",
                 "seq", "service")

    def __init__(
        self,
        kind: str,
        message: dict[str, Any] | None = None,
        *,
        raw: bytes | None = None,
        service: str | None = None,
        seq: int = 0,
        first_seq: int = 0,
    ) -> None:
        self.kind = kind  # "logs", "state", "config", "manager", "gap", "status"
        self._message = message
        self._raw = raw
        self.service = service
        self.seq = seq
        self.first_seq = first_seq
        self._batch_text: str | None = None
        self._line_texts: list[str] | None = None

    @property
    def message(self) -> dict[str, Any]:
        if self._message is None:
            assert self._raw is not None
            self._message = protocol.decode(self._raw)
        return self._message

    @property
    def lines(self) -> int:
        return self.seq - self.first_seq + 1 if self.kind == "logs" else 0

    def batch_text(self, run_id: str) -> str:
        """The typed message as one JSON object (log lines stay batched), stamped with
        the manager's `run_id` (one per web process, so the text is cached)."""
        if self._batch_text is None:
            if self._raw is not None:
                head = f'{{"type":"logs","run_id":{_dumps_str(run_id)},'
                self._batch_text = head + self._raw[1:].decode("utf-8", "replace")
            else:
                body = {k: v for k, v in self.message.items() if k != "v"}
                self._batch_text = _dumps({"type": self.kind, **body, "run_id": run_id})
        return self._batch_text

    def line_texts(self, run_id: str) -> list[str]:
        """SPEC.md's one-message-per-line form (plus `type`, `seq` and `run_id`)."""
        if self._line_texts is None:
            if self.kind == "logs":
                self._line_texts = [
                    _dumps({"type": "log", **entry, "run_id": run_id})
                    for entry in spec_lines(self.message)
                ]
            else:
                self._line_texts = [self.batch_text(run_id)]
        return self._line_texts

    def after(self, cut: int) -> Item | None:
        """This item without what a replay up to seq `cut` already delivered."""
        if self.kind != "logs":
            # State events stay: the status document sent before the replay may be
            # older than them, and a card must end on the newest state.
            return self
        if self.seq <= cut:
            return None
        if self.first_seq > cut:
            return self
        trimmed = protocol.log_after(self.message, cut)
        return None if trimmed is None else log_item(trimmed)


def log_item(message: dict[str, Any]) -> Item:
    return Item(
        "logs", message, service=message.get("service"), seq=int(message["seq"]),
        first_seq=int(message["first_seq"]),
    )


def raw_log_item(body: bytes) -> Item:
    """A log message from the bus, its lines left undecoded (see Item; the byte-level
    contract is protocol.log_header's)."""
    header = protocol.log_header(body)
    if header is None:
        return log_item(protocol.decode(body))
    return Item("logs", raw=body, service=header["service"], seq=header["seq"],
                first_seq=header["first_seq"])


def spec_lines(message: dict[str, Any]) -> list[dict[str, Any]]:
    """SPEC.md's one-object-per-line form of a log message, for the REST API's logs and
    the WebSocket's unbatched frames: the only places lines leave their message."""
    first, timestamp = message["first_seq"], message["timestamp"]
    service, stream = message["service"], message["stream"]
    return [{"seq": first + i, "timestamp": timestamp, "service": service,
             "stream": stream, "line": line}
            for i, line in enumerate(message["lines"])]


def event_item(kind: str, message: dict[str, Any]) -> Item:
    return Item(kind, message, service=message.get("service"), seq=int(message.get("seq", 0)))


def gap_item(reason: str, dropped: int, from_seq: int | None, to_seq: int | None) -> Item:
    message = {"reason": reason, "dropped": dropped, "from_seq": from_seq, "to_seq": to_seq}
    return Item("gap", message)


class Subscription:
    """One WebSocket client's bounded queue and filters.

    When the queue holds more than `max_lines` lines, the OLDEST queued lines are
    dropped and one `gap` marker takes their place at the front: a client that fell
    behind skips ahead, and the end of a burst (often the line that explains it) is
    never the part that is lost. State and config events are never dropped.
    """

    def __init__(
        self,
        services: frozenset[str] | None,
        events: bool,
        max_lines: int = CLIENT_QUEUE_LINES,
    ) -> None:
        self.services = services
        self.events = events
        self.max_lines = max_lines
        self.closed = False
        self._queue: deque[Item] = deque()
        self._queued_lines = 0
        self._queued_events = 0
        self._ready = gevent.event.Event()
        self._dropped = 0
        self._drop_from: int | None = None
        self._drop_to: int | None = None

    def offer(self, item: Item) -> None:
        """Called by the hub: never blocks, never raises."""
        if self.closed:
            return
        if item.kind == "logs":
            if self.services is not None and item.service not in self.services:
                return
            self._queued_lines += item.lines
        elif item.kind != "gap" and not self.events:
            return
        else:
            self._queued_events += 1
            if self._queued_events > CLIENT_QUEUE_EVENTS:
                self.close()  # a client that reads nothing at all: let it reconnect
                return
        self._queue.append(item)
        if self._queued_lines > self.max_lines:
            self._shed()
        self._ready.set()

    def _shed(self) -> None:
        """Drop the oldest log lines until the queue fits again."""
        kept: list[Item] = []
        while self._queued_lines > self.max_lines and self._queue:
            old = self._queue.popleft()
            if old.kind != "logs":
                kept.append(old)
                continue
            self._queued_lines -= old.lines
            self._dropped += old.lines
            if self._drop_from is None:
                self._drop_from = old.first_seq
            self._drop_to = old.seq
        self._queue.extendleft(reversed(kept))

    def take(self, timeout: float, max_lines: int = TAKE_LINES) -> list[Item]:
        """Queued items (up to about `max_lines` lines), waiting up to `timeout`."""
        if not self._queue and not self.closed:
            self._ready.clear()
            self._ready.wait(timeout)
        out: list[Item] = []
        if self._dropped:
            # Everything dropped is older than everything still queued.
            out.append(gap_item("slow_client", self._dropped, self._drop_from, self._drop_to))
            self._dropped = 0
            self._drop_from = self._drop_to = None
        lines = 0
        while self._queue and lines < max_lines:
            item = self._queue.popleft()
            lines += item.lines
            if item.kind == "logs":
                self._queued_lines -= item.lines
            else:
                self._queued_events -= 1
            out.append(item)
        return out

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class Hub:
    """The events feed of one manager, shared by every client of this web process."""

    def __init__(
        self,
        events_endpoint: str,
        request: Callable[..., Any],
        context: zmq.Context,
    ) -> None:
        self._endpoint = events_endpoint
        self._request = request
        self._context = context
        self._socket: zmq.Socket | None = None
        self._subs: set[Subscription] = set()
        #: gap accounting; positioned only while `log/` is followed (see _check_gap)
        self._seqs = protocol.SeqTracker()
        #: lines were handled since the feed was last known to be complete
        self._tail_unchecked = False
        self._last_repair = -protocol.REPAIR_INTERVAL
        self._logs_on = False
        self._logs_live = gevent.event.Event()
        self._sync_waiters: dict[str, gevent.event.Event] = {}
        self.hostnames: dict[str, str] = {}
        #: per service, the routed names leading here (origins.routed_names)
        self.routed: dict[str, tuple[str, ...]] = {}
        #: The manager run this web process serves (it lives and dies with that run).
        self.run_id = ""

    def subscriber(self, topics: list[str]) -> zmq.Socket:
        """A SUB socket of the caller's own on the feed, for topics the hub does not fan
        out (a terminal's `raw/<service>/`); the caller joins it and closes it."""
        sock = self._context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, RCVHWM)
        for topic in topics:
            sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sock.connect(self._endpoint)
        return sock

    # --- joining -----------------------------------------------------------------

    def connect(self, timeout: float = 5.0) -> None:
        """Subscribe to the events (not the logs: those only while a client wants them)
        and wait until the feed is live (the slow joiner)."""
        sock = self._context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, RCVHWM)
        for topic in EVENT_TOPICS:
            sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sock.connect(self._endpoint)
        self._socket = sock
        # `ping` is the snapshot here: the run id (the hub does not replay anything).
        self.run_id = join_feed(sock, self._request, "ping", timeout=timeout).run_id
        self.refresh_hostnames()

    def _logs(self, on: bool, timeout: float = 5.0) -> None:
        """Follow `log/` only while some client wants lines: a flood then costs this
        process nothing while no dashboard is open.

        Turning it on returns once the subscription is live: a fresh `sync/<token>`
        subscription made after the `log/` one is answered only after the publisher has
        taken both, so a replay fetched after this misses nothing.
        """
        assert self._socket is not None, "connect() first"
        if on == self._logs_on:
            if on:  # another client is turning it on: its join counts for us too
                self._logs_live.wait(timeout)
            return
        self._logs_on = on
        self._seqs.reset()
        self._logs_live.clear()
        if not on:
            self._socket.setsockopt(zmq.UNSUBSCRIBE, protocol.LOG_PREFIX.encode())
            return
        self._socket.setsockopt(zmq.SUBSCRIBE, protocol.LOG_PREFIX.encode())
        # run() reads the socket: the marker reaches us through handle().
        token = os.urandom(6).hex()
        joined = self._sync_waiters[token] = gevent.event.Event()
        try:
            wait_joined(self._socket, self._request, timeout,
                        seen=lambda _token, wait: joined.wait(wait), token=token)
        except BusError:
            pass  # as before: lines flow anyway, a replay may just overlap less exactly
        finally:
            self._sync_waiters.pop(token, None)
            self._logs_live.set()

    def refresh_hostnames(self) -> None:
        try:
            status = self._request("status")
        except BusError:
            return
        services = status.get("services") or {}
        self.hostnames = {
            name: svc["hostname"]
            for name, svc in services.items()
            if svc.get("hostname") and svc.get("hostname_mapped") is True
        }
        self.routed = {name: routed_names(svc) for name, svc in services.items()}

    # --- clients -----------------------------------------------------------------

    def subscribe(self, services: frozenset[str] | None, events: bool) -> Subscription:
        sub = Subscription(services, events)
        self._subs.add(sub)
        self._logs(True)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        self._subs.discard(sub)
        if not self._subs:
            self._logs(False)

    def close_all(self) -> None:
        for sub in list(self._subs):
            self.unsubscribe(sub)

    # --- the feed ----------------------------------------------------------------

    def run(self) -> None:
        """Receive forever; the greenlet the web process spawns once."""
        assert self._socket is not None, "connect() first"
        sock = self._socket
        while True:
            # No timeout once the feed is known complete: an idle dashboard never wakes.
            wait = TAIL_CHECK_MS if self._tail_unchecked else None
            if not sock.poll(wait, zmq.POLLIN):
                self._check_tail()
                continue
            if self._drain(sock):
                # Behind: the PUB socket may be dropping the newest messages.
                self._tail_unchecked = True
            gevent.idle()  # let the rest run; not sleep(0), which starves timers and I/O

    def _drain(self, sock: zmq.Socket) -> bool:
        """Handle queued messages for one slice; True when some were left."""
        slice_end = time.monotonic() + HUB_SLICE_SECONDS
        while time.monotonic() < slice_end:
            try:
                topic, body = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return False
            self.handle(topic.decode("utf-8", "replace"), body)
        return True

    def handle(self, topic: str, body: bytes) -> None:
        kind, service = protocol.parse_topic(topic)
        if kind == "sync":
            joined = self._sync_waiters.get(service or "")
            if joined is not None:
                joined.set()
            return
        if kind == "log":
            try:
                item = raw_log_item(body)  # the header only: cheap for unwanted lines too
            except ValueError:
                print(f"promenade_web: undecodable event on {topic!r}", file=sys.stderr)
                return
            if self._seqs.old(item.first_seq):
                # A repair fetched these lines already (they were in flight, not lost).
                fresh = item.after(self._seqs.last or 0)
                if fresh is None:
                    return
                item = fresh
            # Every service's lines count, wanted or not: a seq not seen is a loss.
            self._check_gap(item.seq, item.first_seq)
            if not self._wanted(service or ""):
                return
        else:
            try:
                message = protocol.decode(body)
            except ValueError:
                print(f"promenade_web: undecodable event on {topic!r}", file=sys.stderr)
                return
            seq = int(message.get("seq", 0))
            self._check_gap(seq, seq)
            item = event_item(kind, message)
            if kind == "state":
                self._note_hostname(message)
            elif kind == "config" and message.get("event") == "reloaded":
                gevent.spawn(self.refresh_hostnames)
        self._offer(item)

    def _wanted(self, service: str) -> bool:
        return any(sub.services is None or service in sub.services for sub in self._subs)

    def _note_hostname(self, message: protocol.StateMessage) -> None:
        """Follow which hostnames are local origins: only those the manager reports as
        mapped to this machine (`hostname_mapped`), never merely configured ones."""
        status = message.get("status")
        name = message.get("service")
        hostname = status.get("hostname") if status else None
        if not name:
            return
        self.routed[name] = routed_names(status) if status else ()
        if hostname and status and status.get("hostname_mapped") is True:
            self.hostnames[name] = hostname
        else:
            self.hostnames.pop(name, None)

    def _check_gap(self, seq: int, first: int) -> None:
        if not self._logs_on:
            # without `log/` the seqs of log messages are missing from what we see
            self._seqs.reset()
            return
        start = self._seqs.last
        missed = self._seqs.advance(seq, first)
        if missed and start is not None:
            self._tail_unchecked = True  # the end of this burst may be lost too
            recovered: list[Item] = []
            now = time.monotonic()
            if now - self._last_repair >= protocol.REPAIR_INTERVAL:
                self._last_repair = now
                recovered = self._fetch(since=start, until=first - 1)
            self._fill(start, first - 1, missed, recovered)

    def _fill(self, start: int, end: int, missed: int, recovered: list[Item]) -> None:
        """Messages start+1..end never arrived: offer what the manager's buffers still
        held of them (`recovered`, the newest), after a gap marker for the rest."""
        lost = missed - sum(item.lines for item in recovered)
        if lost > 0:
            # Seqs no buffer accounts for: lines trimmed since, or events (hence the
            # fresh status document).
            self._offer(gap_item("bus", lost, start + 1, end))
            gevent.spawn(self._report_gap, lost)
            gevent.spawn(self._resync)
        for item in recovered:
            self._offer(item)

    def _check_tail(self) -> None:
        """The feed went quiet after lines: fetch any the PUB socket dropped at the end
        of the burst (lines still in flight are fetched too, and cut when they come)."""
        self._tail_unchecked = False
        start = self._seqs.last
        if not self._logs_on or start is None:
            return
        recovered = self._fetch(since=start, until=None)
        if not recovered:
            return
        end = recovered[-1].seq
        self._seqs.advance(end, start + 1)  # every seq up to `end` is accounted for now
        self._fill(start, end, end - start, recovered)

    def _fetch(self, since: int, until: int | None) -> list[Item]:
        """The buffered lines after `since` up to `until` (protocol.repair_request)."""
        try:
            result = self._request("logs", **protocol.repair_request(since, until))
        except BusError:
            return []
        return [log_item(message) for message in result.get("messages") or ()]

    def _offer(self, item: Item) -> None:
        for sub in list(self._subs):
            sub.offer(item)

    def _resync(self) -> None:
        """After lost messages, state events may be among them: send the event clients
        a fresh status document so no card stays on a stale state."""
        try:
            status = self._request("status")
        except BusError:
            return
        item = event_item("status", {"status": status})
        for sub in list(self._subs):
            if sub.events:
                sub.offer(item)

    def _report_gap(self, missed: int) -> None:
        with contextlib.suppress(BusError):
            self._request("gap", count=missed)
