"""Drive-by protection and CORS for the dashboard and its API.

SPEC.md wants `Access-Control-Allow-Origin: *` so that the user's own local pages can
call the API; DESIGN.md adds that a foreign page must neither read logs nor stop
services. Both hold because the check is on the request, not on the response: a
request whose `Origin` is not local is refused before any handler runs (REST and
WebSocket handshakes alike), and a `Host` that is not local is refused so that a
DNS-rebinding page cannot pose as same-origin. Requests without `Origin` (curl, the
CLI, scripts) are served.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, request

from promenade_core.origins import is_local_host_header, is_local_origin, split_host_header
from promenade_web.errors import FORBIDDEN_HOST, FORBIDDEN_ORIGIN, error_response

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "*",
}

# The dashboard itself loads nothing from elsewhere and must not be framed: a foreign
# page could otherwise overlay it and trick a click on "Stop".
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class Guard:
    """Decides which Hosts and Origins may talk to this web process."""

    def __init__(self, bind_host: str, managed: Callable[[], Iterable[str]]) -> None:
        self.bind_host = bind_host.strip("[]").lower()
        self._managed = managed
        # Bound on all interfaces, the user wants the dashboard reachable by address.
        # An address literal cannot be rebound, so any is safe; names still are not.
        self._any_ip = self.bind_host in ("0.0.0.0", "::", "")

    def host_allowed(self, host_header: str | None) -> bool:
        if is_local_host_header(host_header, self._managed()):
            return True
        if not host_header:
            return False
        host = split_host_header(host_header).lower()
        return host == self.bind_host or (self._any_ip and _ip_literal(host))

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None or is_local_origin(origin, self._managed()):
            return True
        # The dashboard's own origin (e.g. reached by its LAN address) is allowed
        # once its Host passed host_allowed.
        parts = urlsplit(origin)
        return bool(host_header) and parts.netloc.lower() == (host_header or "").lower()


def install(app: Flask, guard: Guard) -> None:
    @app.before_request
    def refuse_foreign() -> Response | None:
        host = request.headers.get("Host")
        if not guard.host_allowed(host):
            return error_response(
                403, FORBIDDEN_HOST,
                f"Host {host!r} is not a local name; open the dashboard via "
                "http://127.0.0.1 or localhost (DNS-rebinding protection)",
            )
        origin = request.headers.get("Origin")
        if not guard.origin_allowed(origin, host):
            return error_response(
                403, FORBIDDEN_ORIGIN,
                f"requests from {origin!r} are refused: only pages served from this "
                "machine (localhost, 127.0.0.1, *.localhost, configured hostnames while "
                "they are mapped to 127.0.0.1) may use "
                "the Promenade API",
            )
        if request.method == "OPTIONS":
            return Response(status=204)  # preflight: the CORS headers are added below
        return None

    @app.after_request
    def add_headers(response: Response) -> Response:
        for name, value in CORS_HEADERS.items():
            response.headers[name] = value
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
