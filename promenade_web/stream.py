"""`/api/logs/stream`: live log lines (and, on request, state and config events).

Query parameters:
- `services=a,b`  only these services' lines (default: all).
- `since=SEQ`     first replay every buffered line newer than SEQ, then live: a
                  dashboard that reconnects with its last seq loses nothing.
- `tail=N`        first replay the last N buffered lines.
- `run=ID`        the manager run `since` belongs to: when the manager has been
                  restarted since (another run id, seq counted from 0 again), `since`
                  means nothing and the whole buffer (or `tail`) is replayed instead.
- `events=1`      also send `status` (once, first), `state`, `config` and `manager`.
- `batch=1`       frames are JSON arrays of typed messages and lines come batched
                  as `{"type": "logs", "first_seq", "lines": [...], ...}` (the
                  dashboard's form: far cheaper in a flood).

Without `batch`, each frame is one SPEC.md message
`{"type": "log", "timestamp", "service", "stream", "line", "seq"}`. A client too slow
for the feed loses its oldest queued lines and gets `{"type": "gap", "reason":
"slow_client", "dropped", "from_seq", "to_seq"}` in their place, then the newest lines;
`"reason": "bus"` marks lines the web process itself missed.

A stream that cannot be served ends with one error message, `{"type": "error", "code",
"message", "error": {"code", "message"}}` (the top-level pair for older clients, the
nested one in the REST API's error shape), then a close: code 4004 when `services`
names a service the manager does not have (`unknown_service`: checked before anything
is sent, so a typo is never a silent stream), 1011 when the manager failed a request.
Every message carries `run_id`, the manager run it comes from: a dashboard that
reconnects to a restarted manager sees a new one and starts afresh.

The join is the Clone pattern: the client's queue is registered with the hub first,
then the replay is fetched, then queued lines up to the replay's seq are dropped.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from typing import Any

import gevent
from flask import Blueprint, Response, current_app, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from wsproto.events import TextMessage

from promenade_core.bus import protocol
from promenade_core.bus.client import BusError
from promenade_web.api import BadParameter, bool_arg, int_arg
from promenade_web.errors import error_response
from promenade_web.hub import Hub, Item, Subscription, event_item, log_item

bp = Blueprint("stream", __name__, url_prefix="/api")
sock = Sock()

#: A browser that accepts nothing for this long is disconnected.
SEND_TIMEOUT = 30.0
#: Largest text frame in batch mode (items are joined up to about this size).
FRAME_BYTES = 256 * 1024
#: Replay never sends more than this many lines, whatever `tail`/`since` ask.
MAX_REPLAY = 50_000
#: Close codes (RFC 6455 7.4: 4000-4999 are the application's own).
CLOSE_UNKNOWN_SERVICE = 4004
CLOSE_MANAGER_ERROR = 1011


@dataclass(frozen=True)
class StreamOptions:
    services: frozenset[str] | None
    since: int | None
    tail: int | None
    events: bool
    batch: bool
    run: str | None = None

    @classmethod
    def from_request(cls) -> StreamOptions:
        raw = request.args.get("services", "")
        names = frozenset(n.strip() for n in raw.split(",") if n.strip())
        return cls(
            services=names or None,
            since=int_arg("since"),
            tail=int_arg("tail"),
            events=bool_arg("events", False),
            batch=bool_arg("batch", False),
            run=request.args.get("run") or None,
        )


@bp.before_request
def check_handshake() -> Response | None:
    try:
        g.stream_options = StreamOptions.from_request()
    except BadParameter as exc:
        return error_response(400, "bad_request", exc.message)
    # Compression costs CPU on every frame to save bandwidth on the loopback: no.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    return None


@sock.route("/logs/stream", bp=bp)
def logs_stream(ws: Any) -> None:
    backend = current_app.extensions["promenade"]
    hub: Hub = backend.hub
    options: StreamOptions = g.stream_options
    raw = _raw_socket(request.environ)
    sub = hub.subscribe(options.services, options.events)
    # The reader greenlet ends when the browser closes or vanishes: wake the pump now
    # rather than at its next line.
    ws.thread.link(lambda _: sub.close())
    run_id = hub.run_id
    try:
        _check_services(backend, options)
        if options.events:
            _send(ws, [event_item("status", {"status": backend.request("status")})],
                  options, run_id)
        cut = _replay(ws, backend, options, run_id)
        _pump(ws, sub, cut, options, run_id)
    except (ConnectionClosed, OSError, gevent.Timeout):
        pass
    except BusError as exc:
        # An unknown service, or the manager failed a request: say so, then close.
        code = (CLOSE_UNKNOWN_SERVICE if exc.code == protocol.UNKNOWN_SERVICE
                else CLOSE_MANAGER_ERROR)
        with contextlib.suppress(ConnectionClosed, OSError, gevent.Timeout):
            _send_text(ws, _error_text(exc))
            ws.close(reason=code, message=exc.code)
    finally:
        hub.unsubscribe(sub)
        with contextlib.suppress(ConnectionClosed, OSError):
            ws.close()
        # The server keeps the TCP connection after the handler returns (it waits for
        # another request on it), so the browser would wait its 10 s close timeout.
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)


def _check_services(backend: Any, options: StreamOptions) -> None:
    """Raise BusError(unknown_service) when the filter names a service that does not
    exist: such a stream would otherwise stay open and silent for ever."""
    if options.services is None:
        return
    known = backend.request("status").get("services") or {}
    unknown = sorted(options.services - set(known))
    if unknown:
        raise BusError(protocol.UNKNOWN_SERVICE,
                       f"unknown service {unknown[0]!r} in services= "
                       f"(known: {', '.join(known) or 'none'})")


def _error_text(exc: BusError) -> str:
    error = {"code": exc.code, "message": exc.message}
    return json.dumps({"type": "error", **error, "error": error})


def _raw_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The connection's socket under gevent.pywsgi (whose `wsgi.input` is the socket's
    reader itself for upgrade requests, an `Input` wrapping it otherwise)."""
    stream = environ.get("wsgi.input")
    if not hasattr(stream, "raw"):
        stream = getattr(stream, "rfile", None)
    return getattr(getattr(stream, "raw", None), "_sock", None)


def replay_since(since: int | None, client_run: str | None, run_id: str) -> int | None:
    """The `since` to replay from: none when it counts seqs of another manager run."""
    if since is not None and client_run and run_id and client_run != run_id:
        return None
    return since


def _replay(ws: Any, backend: Any, options: StreamOptions, run_id: str) -> int | None:
    since = replay_since(options.since, options.run, run_id)
    if since is None and options.tail is None and options.since is None:
        return None
    args: dict[str, Any] = {}
    if options.services is not None:
        args["services"] = sorted(options.services)
    if since is not None:
        args["since"] = since
    tail = options.tail if options.tail is not None else MAX_REPLAY
    args["tail"] = min(tail, MAX_REPLAY)
    result = backend.request("logs", **args)
    # The replay is log messages of the live shape: one path for both from here on.
    _send(ws, [log_item(message) for message in result["messages"]], options, run_id)
    return int(result["seq"])


def _pump(ws: Any, sub: Subscription, cut: int | None, options: StreamOptions,
          run_id: str) -> None:
    while ws.connected and not sub.closed:
        items = sub.take(timeout=1.0)
        if cut is not None:
            kept = [trimmed for item in items if (trimmed := item.after(cut)) is not None]
            items = kept
        if items:
            _send(ws, items, options, run_id)


def _send(ws: Any, items: list[Item], options: StreamOptions, run_id: str) -> None:
    if options.batch:
        frame: list[str] = []
        size = 0
        for item in items:
            text = item.batch_text(run_id)
            frame.append(text)
            size += len(text)
            if size >= FRAME_BYTES:
                _send_text(ws, "[" + ",".join(frame) + "]")
                frame, size = [], 0
        if frame:
            _send_text(ws, "[" + ",".join(frame) + "]")
        return
    for item in items:
        for text in item.line_texts(run_id):
            _send_text(ws, text)


def _send_text(ws: Any, text: str) -> None:
    """Send one text frame completely.

    simple-websocket's `send` ignores partial writes, which a slow reader causes;
    `sendall` under a timeout writes everything or gives up on the client.
    """
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    data = ws.ws.send(TextMessage(data=text))
    with gevent.Timeout(SEND_TIMEOUT):
        ws.sock.sendall(data)
