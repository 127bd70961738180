"""The bus server: the PUB events feed and the control socket, on ZeroMQ ipc.

The supervisor never blocks on a subscriber: PUB drops at its high-water mark (the
messages carry seq, so subscribers see the gap and can rejoin with a snapshot).
Control requests are answered on a ROUTER socket, each in its own greenlet, so a slow
command (a 5 s stop) never delays a `ping`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import gevent
import zmq as plain_zmq
import zmq.green as zmq

from promenade_core.bus import protocol, tcpfeed
from promenade_core.supervise.logs import Batch

#: ZeroMQ bounds a subscriber's queue by message count, so log messages are capped in
#: size (a big read is published as several messages): a stalled subscriber costs this
#: process at most about HWM x MAX_LOG_MESSAGE (8 MB). A subscriber that keeps up on
#: average still falls behind while it is off the CPU: at a million lines a second on
#: two cores, 250 messages of slack lost a whole-feed subscriber 1-5 % of a flood's
#: lines (scripts/bench `bus`), 500 none.
EVENTS_HWM = 500
MAX_LOG_MESSAGE = 16 * 1024
#: Requests larger than this never reach the handler; libzmq drops the peer.
MAX_WIRE_BYTES = 1024 * 1024

Handler = Callable[[dict[str, Any]], Any]
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE) | int(zmq.NOBLOCK)


class Publisher:
    """Stamps every message with `v` and a strictly increasing `seq`, then publishes.

    Events other than log batches also carry the manager's `run_id`: a subscriber that
    outlives its manager sees a restart (seq back at 0) on the first event of the next
    run. Log batches leave it out, to keep the flood path lean.
    """

    def __init__(self, context: zmq.Context, endpoints: list[str], run_id: str = "") -> None:
        # A plain socket, not a green one: a non-blocking PUB send never waits, and
        # the green wrapper's event bookkeeping cost ~40 µs a message in a flood.
        self._socket = plain_zmq.Socket(context, zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, EVENTS_HWM)
        for endpoint in endpoints:
            self._socket.bind(endpoint)
        self.seq = 0
        self.run_id = run_id
        self.dropped_reported = 0

    def bind_secure(self, endpoint: str) -> None:
        """Also publish on `endpoint`, to subscribers that give the token (tcpfeed)."""
        tcpfeed.secure_endpoint(self._socket, endpoint)

    def next_seqs(self, count: int) -> int:
        """Reserve `count` seqs; returns the first."""
        first = self.seq + 1
        self.seq += count
        return first

    def _send(self, topic: str, message: Mapping[str, Any]) -> None:
        try:
            # int flags: combining pyzmq's enum flags costs more than the send itself
            self._socket.send(topic.encode(), _MORE_NOBLOCK)
            self._socket.send(protocol.encode(message), _NOBLOCK)
        except zmq.Again:
            pass  # PUB never blocks; subscribers see the seq gap

    def publish(self, topic: str, body: protocol.EventBody) -> int:
        seq = self.next_seqs(1)
        self._send(topic, {"v": protocol.VERSION, "seq": seq, "run_id": self.run_id, **body})
        return seq

    def publish_batch(self, service: str, batch: Batch) -> None:
        topic = protocol.log_topic(service)
        lines = batch.lines
        size = sum(map(len, lines))
        step = len(lines) if size <= MAX_LOG_MESSAGE else max(
            1, len(lines) * MAX_LOG_MESSAGE // size)
        for start in range(0, len(lines), step):
            part = lines[start:start + step] if step < len(lines) else lines
            first = batch.first_seq + start
            self._send(topic, protocol.log_message(service, first, batch.timestamp,
                                                   batch.stream, part))

    def publish_raw(self, service: str, stream: str, data: bytes) -> None:
        """One read's bytes on `raw/<service>/`; no new seq (see protocol.raw_message)."""
        self._send(protocol.raw_topic(service),
                   protocol.raw_message(service, stream, data, self.seq))

    def sync(self, token: str) -> None:
        self._send(f"{protocol.SYNC_PREFIX}{token}", {"v": protocol.VERSION, "seq": self.seq})

    def close(self) -> None:
        self._socket.close(linger=0)


class ControlServer:
    """Answers `{"cmd": ...}` requests with `{"ok": ...}` replies; never crashes on input."""

    def __init__(self, context: zmq.Context, endpoint: str,
                 handlers: dict[str, Handler]) -> None:
        self._socket = context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_WIRE_BYTES)
        self._socket.bind(endpoint)
        self._handlers = handlers
        self._loop = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            frames = self._socket.recv_multipart()
            if len(frames) < 3:
                continue
            gevent.spawn(self._answer, frames[0], frames[-1])

    def _answer(self, identity: bytes, body: bytes) -> None:
        reply = self.dispatch(body)
        try:
            self._socket.send_multipart([identity, b"", protocol.encode(reply)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the client went away

    def dispatch(self, body: bytes) -> protocol.Reply:
        if len(body) > protocol.MAX_REQUEST_BYTES:
            return protocol.error(protocol.BAD_REQUEST,
                                  f"request of {len(body)} bytes is over the "
                                  f"{protocol.MAX_REQUEST_BYTES}-byte limit")
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return protocol.error(protocol.BAD_REQUEST, f"request is not valid JSON: {exc}")
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return protocol.error(protocol.BAD_REQUEST,
                                  'request must be a JSON object with a string "cmd"')
        handler = self._handlers.get(request["cmd"])
        if handler is None:
            known = ", ".join(sorted(self._handlers))
            return protocol.error(protocol.UNKNOWN_COMMAND,
                                  f"unknown command {request['cmd']!r} (known: {known})")
        try:
            return protocol.ok(handler(request))
        except CommandError as exc:
            return protocol.error(exc.code, exc.message)
        except Exception as exc:  # a bug must cost one reply, never the control socket
            return protocol.error(protocol.INTERNAL, f"{request['cmd']} failed: {exc!r}")

    def close(self) -> None:
        self._loop.kill(block=False)
        self._socket.close(linger=0)


class CommandError(Exception):
    """A control command refused: becomes `{"ok": false, "error": {code, message}}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
