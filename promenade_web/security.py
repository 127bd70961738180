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

import hmac
import ipaddress
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, g, request

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


#: The page's own headers: no CORS (other origins must not read the token in it), no
#: caching, and a CSP that lets xterm.js style its rows (it injects <style> elements).
PRIVATE_PAGE_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"].replace(
        "default-src 'self';", "default-src 'self'; style-src 'self' 'unsafe-inline';"),
    "Cache-Control": "no-store",
}
#: Where a request that types into a service carries the page token.
TOKEN_HEADER = "X-Promenade-Token"
FORBIDDEN_TOKEN = "forbidden_token"


class PageTokens:
    """The tokens rendered into dashboard pages, each valid for input.

    A page that another origin loads cannot read them: the dashboard page is the only
    response served without `Access-Control-Allow-Origin` (install()), and foreign
    Origins are refused anyway. A fresh token per page served; the newest `keep` stay
    valid, so a tab opened long ago needs a reload after many newer ones.
    """

    def __init__(self, keep: int = 256) -> None:
        self._keep = keep
        self._tokens: OrderedDict[str, None] = OrderedDict()

    def issue(self) -> str:
        token = secrets.token_urlsafe(24)
        self._tokens[token] = None
        while len(self._tokens) > self._keep:
            self._tokens.popitem(last=False)
        return token

    def valid(self, token: str | None) -> bool:
        if not token or len(token) > 64:
            return False
        return any(hmac.compare_digest(token, known) for known in self._tokens)


def private_page() -> None:
    """Mark this response as the dashboard page itself (PRIVATE_PAGE_HEADERS)."""
    g.private_page = True


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
        if g.get("private_page"):
            response.headers.update(PRIVATE_PAGE_HEADERS)
            return response
        for name, value in CORS_HEADERS.items():
            response.headers[name] = value
        for name, value in PAGE_HEADERS.items():
            response.headers.setdefault(name, value)
        return response
