"""The router's control protocol: JSON lines on `router.sock` (see paths.py).

Standard library only (managers and the CLI import it without gevent). Each line is one
UTF-8 JSON object, at most `MAX_LINE` bytes; every request gets one reply line.

- `{"op": "hello", "pid": N, "project": "/path/promenade.yaml", "version": 1}` first:
  who holds the connection (named in `name_taken` refusals to others).
- `{"op": "routes", "routes": [Route, ...]}`: REPLACES the routes this connection holds
  (`RouteWire` below; `cors_allow_origins` is an optional addition to the fixed fields).
  They are a lease: when the connection closes (its process killed included) they are
  gone at once. Refused whole (`name_taken`, `invalid_routes`) or applied whole.
- `{"op": "info"}`: `{"ok": true, "pid", "https_port", "http_port", "ca_trusted",
  "routes"}` (`http_port` null when there is no HTTP redirect).

Replies: `{"ok": true, ...}` or `{"ok": false, "code": "...", "message": "..."}`.
Codes: `bad_request` (not JSON, not an object, line too long), `unknown_op`,
`hello_first`, `unsupported_version`, `invalid_routes`, `name_taken`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

VERSION = 1
MAX_LINE = 64 * 1024
#: a route's name: a DNS name (labels of letters, digits and hyphens), lower-case
_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+")
MAX_ROUTES = 1000


class _RouteRequired(TypedDict):
    name: str
    port: int | None
    service: str
    status: str
    status_reason: str | None
    tls: bool


class RouteWire(_RouteRequired, total=False):
    #: Optional (absent or null: the router is transparent). A list of extra allowed
    #: origins: the router applies the CORS proxy's policy on this name, as
    #: `cors_proxy: true` does on its second port (local origins always allowed).
    cors_allow_origins: list[str] | None


class HelloRequest(TypedDict):
    op: Literal["hello"]
    pid: int
    project: str
    version: int


class RoutesRequest(TypedDict):
    op: Literal["routes"]
    routes: list[RouteWire]


class InfoReply(TypedDict):
    ok: Literal[True]
    pid: int
    https_port: int
    http_port: int | None
    ca_trusted: bool
    routes: list[RouteWire]


class ErrorReply(TypedDict):
    ok: Literal[False]
    code: str
    message: str


@dataclass(frozen=True)
class Route:
    """One name a manager asks the router to serve."""

    name: str
    port: int | None
    service: str
    status: str
    status_reason: str | None = None
    tls: bool = True
    cors_allow_origins: tuple[str, ...] | None = None

    @property
    def up(self) -> bool:
        """Whether requests can go to the service now (else the not-up page)."""
        return self.port is not None and self.status == "running"

    def wire(self) -> RouteWire:
        out: RouteWire = {"name": self.name, "port": self.port, "service": self.service,
                          "status": self.status, "status_reason": self.status_reason,
                          "tls": self.tls}
        if self.cors_allow_origins is not None:
            out["cors_allow_origins"] = list(self.cors_allow_origins)
        return out


class ProtocolError(Exception):
    """A request the router refuses; `code` goes on the wire."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error(code: str, message: str) -> ErrorReply:
    return {"ok": False, "code": code, "message": message}


def encode(message: object) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """One request line as an object with a string `op`; ProtocolError otherwise."""
    if len(line) > MAX_LINE:
        raise ProtocolError("bad_request", f"line longer than {MAX_LINE} bytes")
    message = _json(line, "bad_request", "not JSON")
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("bad_request", "expected a JSON object with a string 'op'")
    return message


def _json(line: bytes, code: str, what: str) -> Any:
    """`line` parsed; ProtocolError(code) saying `what` when it is not JSON."""
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(code, f"{what}: {exc}") from None


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_hello(message: dict[str, Any]) -> tuple[int, str]:
    """(pid, project) from a hello; ProtocolError when it is not one we speak."""
    if message.get("version") != VERSION:
        raise ProtocolError("unsupported_version",
                            f"protocol version {message.get('version')!r} is not {VERSION}; "
                            "update Promenade so the manager and the router match")
    pid, project = message.get("pid"), message.get("project")
    if not isinstance(pid, int) or isinstance(pid, bool) or not isinstance(project, str) \
            or not project:
        raise ProtocolError("bad_request", "hello needs an integer 'pid' and a 'project' path")
    return pid, project


def parse_route(item: object, index: int) -> Route:
    """One route from the wire; ProtocolError naming the index and the field."""
    where = f"routes[{index}]"
    if not isinstance(item, dict):
        raise ProtocolError("invalid_routes", f"{where} is not an object")
    name, port = item.get("name"), item.get("port")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProtocolError("invalid_routes", f"{where}.name {name!r} is not a lower-case "
                            "DNS name such as 'api.myapp.localhost'")
    if port is not None and not (_int(port) and 1 <= port <= 65535):
        raise ProtocolError("invalid_routes", f"{where}.port {port!r} is not 1-65535 or null")
    service, status = item.get("service"), item.get("status")
    reason, tls = item.get("status_reason"), item.get("tls", True)
    if not isinstance(service, str) or not isinstance(status, str):
        raise ProtocolError("invalid_routes", f"{where} needs string 'service' and 'status'")
    if reason is not None and not isinstance(reason, str):
        raise ProtocolError("invalid_routes", f"{where}.status_reason must be a string or null")
    if not isinstance(tls, bool):
        raise ProtocolError("invalid_routes", f"{where}.tls must be true or false")
    cors = item.get("cors_allow_origins")
    if cors is not None and not (isinstance(cors, list)
                                 and all(isinstance(o, str) for o in cors)):
        raise ProtocolError("invalid_routes",
                            f"{where}.cors_allow_origins must be a list of strings or null")
    return Route(name, port, service, status, reason, tls,
                 None if cors is None else tuple(cors))


def parse_routes(message: dict[str, Any]) -> tuple[Route, ...]:
    """Every route of a `routes` request, or ProtocolError for the first bad one."""
    items = message.get("routes")
    if not isinstance(items, list):
        raise ProtocolError("invalid_routes", "'routes' must be a list")
    if len(items) > MAX_ROUTES:
        raise ProtocolError("invalid_routes", f"more than {MAX_ROUTES} routes")
    routes = tuple(parse_route(item, i) for i, item in enumerate(items))
    seen: set[str] = set()
    for route in routes:
        if route.name in seen:
            raise ProtocolError("invalid_routes", f"name {route.name!r} is listed twice")
        seen.add(route.name)
    return routes


def decode_reply(line: bytes) -> dict[str, Any]:
    """One reply line as an object with a boolean `ok`; ProtocolError otherwise."""
    reply = _json(line, "bad_reply", "the router's reply is not JSON")
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ProtocolError("bad_reply", "the router's reply has no boolean 'ok'")
    return reply
