"""The dashboard's terminal: a service's raw output live, and keys typed into it.

- WebSocket `/api/services/<name>/terminal[?token=T]`: binary frames from the server
  are the service's bytes as it wrote them (`raw/<name>/` on the bus, published while
  this socket is attached); text frames are JSON notices `{"type": "attached"|
  "keyboard"|"error", "writer": bool, "message"}`. With a valid page token, binary
  frames from the browser are keys (sent with the `input` command) and text frames
  `{"type": "resize", "rows", "cols"}` / `{"type": "take"}` size the pty or take the
  keyboard; without a token the terminal is read-only, and a wrong token is a 403.
- `POST /api/services/<name>/input` `{"data": base64}` or `{"text": str}`, with the
  page token in `X-Promenade-Token`: one input request (403 without the token).

Typing is as powerful as a shell, so on top of the Origin and Host checks every
request (security.install) gets, input needs the page token (security.PageTokens),
which only the dashboard's own page can read: it is rendered into the page, and the
page alone is served without CORS headers.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from typing import Any

import gevent
import gevent.lock
import zmq.green as zmq
from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from wsproto.events import BytesMessage, TextMessage

from promenade_core.bus import protocol
from promenade_core.bus.client import BusError, wait_joined
from promenade_web.errors import error_response
from promenade_web.security import FORBIDDEN_TOKEN, TOKEN_HEADER, PageTokens
from promenade_web.stream import SEND_TIMEOUT, _raw_socket

bp = Blueprint("terminal", __name__, url_prefix="/api")
sock = Sock()

#: Keys arrive in small frames; anything bigger is not typing.
MAX_KEYS = 64 * 1024


def tokens() -> PageTokens:
    found: PageTokens = current_app.extensions["promenade_tokens"]
    return found


def _forbidden() -> Response:
    return error_response(403, FORBIDDEN_TOKEN,
                          "typing into a service needs the dashboard page's token: only "
                          "the Promenade dashboard itself may send input")


@bp.before_request
def check_token() -> Response | None:
    """A token that is given must be valid; input needs one."""
    given = request.headers.get(TOKEN_HEADER) or request.args.get("token")
    if given is not None and not tokens().valid(given):
        return _forbidden()
    g.can_type = given is not None
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    return None


@bp.post("/services/<name>/input")
def send_input(name: str) -> Response:
    if not g.can_type:
        return _forbidden()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error_response(400, "bad_request",
                              'send {"data": base64} or {"text": "..."} as JSON')
    data = body.get("data")
    if data is None and isinstance(body.get("text"), str):
        data = base64.b64encode(body["text"].encode()).decode("ascii")
    backend = current_app.extensions["promenade"]
    return jsonify(backend.request("input", service=name, data=data))


@sock.route("/services/<name>/terminal", bp=bp)
def terminal(ws: Any, name: str) -> None:
    backend = current_app.extensions["promenade"]
    session = _Session(ws, backend, name, g.can_type)
    raw = _raw_socket(request.environ)
    try:
        session.run()
    except (ConnectionClosed, OSError, gevent.Timeout):
        pass
    except BusError as exc:
        with contextlib.suppress(ConnectionClosed, OSError, gevent.Timeout):
            session.send({"type": "error", "code": exc.code, "message": exc.message})
    finally:
        session.close()
        with contextlib.suppress(ConnectionClosed, OSError):
            ws.close()
        if raw is not None:   # see stream.py: else the browser waits its close timeout
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)


class _Session:
    """One browser terminal: its lease, its SUB socket and its two greenlets."""

    def __init__(self, ws: Any, backend: Any, service: str, can_type: bool) -> None:
        self.ws = ws
        self.backend = backend
        self.service = service
        self.can_type = can_type
        self.lease: str | None = None
        self.writer = False
        self._lock = gevent.lock.Semaphore()
        self._sub = backend.hub.subscriber([protocol.raw_topic(service)])
        self._greenlets: list[gevent.Greenlet] = []

    def send(self, frame: dict[str, Any] | bytes) -> None:
        """One frame, completely (simple-websocket's own send ignores partial writes)."""
        event = (BytesMessage(data=frame) if isinstance(frame, bytes)
                 else TextMessage(data=json.dumps(frame)))
        with self._lock:
            if not self.ws.connected:
                raise ConnectionClosed(self.ws.close_reason, self.ws.close_message)
            data = self.ws.ws.send(event)
            with gevent.Timeout(SEND_TIMEOUT):
                self.ws.sock.sendall(data)

    def run(self) -> None:
        self.backend.request("service", service=self.service)   # 404-style error first
        wait_joined(self._sub, self.backend.request)
        grant = self.backend.request("attach", service=self.service,
                                     read_only=not self.can_type)
        self.lease = grant["lease"]
        self._grant(grant, "attached")
        renew_every = float(grant["lease_seconds"]) * 0.3
        self._greenlets = [gevent.spawn(self._renew, renew_every),
                           gevent.spawn(self._keys)]
        while self.ws.connected and not any(g.dead for g in self._greenlets):
            if self._sub.poll(1000, zmq.POLLIN):
                _, body = self._sub.recv_multipart()
                data = protocol.raw_bytes(protocol.decode(body))
                if data:
                    self.send(data)

    def _grant(self, grant: dict[str, Any], kind: str) -> None:
        writer = bool(grant["writer"]) and self.can_type
        if kind == "attached" or writer != self.writer:
            self.writer = writer
            self.send({"type": kind, "writer": writer, "can_type": self.can_type,
                       "attached": grant["attached"]})

    def _renew(self, every: float) -> None:
        """Keep the lease; ends (and with it the session) when the manager is gone."""
        with contextlib.suppress(BusError, ConnectionClosed, OSError, gevent.Timeout):
            while self.ws.connected:
                gevent.sleep(every)
                self._grant(self.backend.request("attach", service=self.service,
                                                 lease=self.lease), "keyboard")

    def _keys(self) -> None:
        """What the browser sends: keys (binary) and control messages (text); ends
        when the browser goes."""
        with contextlib.suppress(ConnectionClosed, OSError, gevent.Timeout):
            while self.ws.connected:
                frame = self.ws.receive(timeout=None)
                if frame is None or not self.can_type:
                    continue
                try:
                    self._handle(frame)
                except BusError as exc:
                    self.send({"type": "error", "code": exc.code, "message": exc.message})

    def _handle(self, frame: bytes | str) -> None:
        if isinstance(frame, bytes):
            if 0 < len(frame) <= MAX_KEYS and self.writer:
                self.backend.request("input", service=self.service, lease=self.lease,
                                     data=base64.b64encode(frame).decode("ascii"))
            return
        try:
            message = json.loads(frame)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "take":
            self._grant(self.backend.request("attach", service=self.service,
                                             lease=self.lease, take=True), "keyboard")
        elif message.get("type") == "resize" and self.writer:
            with contextlib.suppress(BusError):   # a service without a pty: no size
                self.backend.request("resize", service=self.service, lease=self.lease,
                                     rows=message.get("rows"), cols=message.get("cols"))

    def close(self) -> None:
        gevent.killall(self._greenlets, block=False)
        if self.lease is not None:
            with contextlib.suppress(BusError):
                self.backend.request("detach", lease=self.lease)
        self._sub.close(linger=0)
